"""Model: a Layer with training, inspection and saving; also the subclassing API."""
from __future__ import annotations

import functools
import inspect
import json
import warnings

from kestrel.layers.layer import Layer
from kestrel.layers.node import KerasTensor
from kestrel.trainers.trainer import Trainer

_PLAIN = (str, int, float, bool, type(None))


def _is_plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return isinstance(value, _PLAIN)


class Model(Trainer, Layer):
    """Groups layers into an object with training and inference features.

    Build it the functional way, `Model(inputs=a, outputs=b)`, or subclass it and define
    `__init__` (create layers) and `call(inputs, training=None)` (the forward pass).

    Example:
        >>> a = Input(shape=(32,))
        >>> model = Model(inputs=a, outputs=Dense(4)(a))
        >>> model.output_shape
        (None, 4)
    """

    _convert_input_args = False  # a model's layers cast their own inputs

    def __new__(cls, *args, **kwargs):
        if cls is Model and ("input" in kwargs or "output" in kwargs):
            from kestrel.models.functional import Functional

            return Functional.__new__(_keras2_functional())
        if cls is Model and (len(args) >= 2 or "outputs" in kwargs):
            from kestrel.models.functional import Functional

            return Functional.__new__(Functional)
        if cls is not Model and _functional_arguments(args, kwargs):
            _make_functional(cls)  # a subclass built from inputs and outputs
        instance = super().__new__(cls)
        instance.__dict__["_init_args"] = (args, kwargs)
        return instance

    def __init__(self, *args, **kwargs):
        if type(self) is Model:
            raise TypeError("Model() needs `inputs` and `outputs`, or subclass Model and "
                            "define call().")
        if _functional_arguments(args, kwargs):  # a subclass's __init__ passes them up
            from kestrel.models.functional import Functional

            _make_functional(type(self))
            Functional.__init__(self, *args, **kwargs)
            return
        trainable = kwargs.pop("trainable", True)
        name = kwargs.pop("name", None)
        dtype = kwargs.pop("dtype", None)
        Layer.__init__(self, name=name, trainable=trainable, dtype=dtype, **kwargs)
        Trainer.__init__(self)

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        """The model's direct sublayers, in the order they were assigned."""
        return self._sublayers()

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """Retrieve a layer by its unique name or by its index in `model.layers`."""
        if index is not None and name is not None:
            raise ValueError(f"Provide only a layer name or a layer index. "
                             f"Received: index={index}, name={name}.")
        if index is not None:
            if len(self.layers) <= index:
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model '{self.name}' "
                    f"only has {len(self.layers)} layers.")
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(
                f"No such layer: {name}. Existing layers are: {[l.name for l in self.layers]}.")
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    @property
    def input(self):
        tensors = self._graph_tensors("_inputs_struct", "inputs")
        return super().input if tensors is None else tensors

    @property
    def output(self):
        tensors = self._graph_tensors("_outputs_struct", "outputs")
        return super().output if tensors is None else tensors

    @property
    def input_shape(self):
        return self._flat_shapes("inputs") or super().input_shape

    @property
    def output_shape(self):
        return self._flat_shapes("outputs") or super().output_shape

    def _flat_shapes(self, flat_attr: str):
        """Shapes of the flat symbolic inputs/outputs (one unwrapped) as Keras 3, None if none."""
        tensors = getattr(self, flat_attr, None)
        if not tensors:
            return None
        shapes = [tuple(t.shape) for t in tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    def _graph_tensors(self, struct_attr: str, flat_attr: str):
        """The model's symbolic inputs or outputs, None if unknown: a functional model's as
        given to its constructor (`inputs=[x]` stays a list, as Keras 3), else the flat list
        with one tensor unwrapped."""
        tensors = getattr(self, struct_attr, None)
        if tensors is not None:
            return tensors
        tensors = getattr(self, flat_attr, None)
        if isinstance(tensors, list) and len(tensors) == 1:
            return tensors[0]
        return tensors

    def build(self, input_shape) -> None:
        """Build a subclassed model by running `call` once on zero tensors of `input_shape`."""
        if not self.built and type(self).call is not Model.call:
            self._build_input_shape = input_shape
            self.built = True  # set first: the run below calls the model's own layers only
            self._run_on_placeholders((_symbolic(input_shape),), {}, 2)

    def reset_states(self) -> None:
        """Keras 2: zero the states of every stateful recurrent layer, nested ones included."""
        for layer in self.layers:
            if isinstance(layer, Model) or getattr(layer, "stateful", False) and \
                    hasattr(layer, "reset_states"):
                layer.reset_states()

    def call(self, *args, **kwargs):
        raise NotImplementedError(
            f"Model {type(self).__name__} must implement call(inputs, training=None).")

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print a table of the layers, their output shapes and parameter counts."""
        from kestrel.models.summary import print_summary

        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable,
                      layer_range=layer_range)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """For subclassed models: the constructor's arguments, when they are plain data; only
        `name`, `trainable` and `dtype` for a subclass writing its own `get_config`, as Keras."""
        base = {key: value for key, value in Layer.get_config(self).items()
                if key in ("name", "trainable", "dtype")}
        if type(self).get_config is not Model.get_config:
            return base
        args, kwargs = self.__dict__.get("_init_args", ((), {}))
        signature = inspect.signature(type(self).__init__)
        try:
            values = dict(signature.bind(None, *args, **kwargs).arguments)
        except TypeError:
            values = None
        if values is not None:
            values.pop("self", None)
            for key, param in signature.parameters.items():
                if param.kind is param.VAR_KEYWORD and key in values:
                    values.update(values.pop(key))
        if values is None or not _is_plain(values):
            raise NotImplementedError(
                f"Model {type(self).__name__} cannot be serialized automatically: its "
                "constructor arguments are not plain data (str, int, float, bool, None, lists, "
                "dicts). Define get_config() (and from_config() if needed) on the class.")
        return {**base, **values}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if cls is Model or config.get("layers") is not None and "input_layers" in config:
            from kestrel.models.functional import Functional

            return Functional.from_config(config, custom_objects=custom_objects)
        params = inspect.signature(cls.__init__).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in config.items() if takes_kwargs or k in params}
        return cls(**kwargs)

    def to_json(self, **kwargs) -> str:
        """The model's config as a JSON string (Keras 3's `serialize_keras_object` form)."""
        from kestrel.saving.model_config import model_to_json_dict

        return json.dumps(model_to_json_dict(self), **kwargs)

    def to_yaml(self, **kwargs) -> str:
        """The model's config as YAML (plain data only; read back with `model_from_yaml`)."""
        import yaml

        from kestrel.saving.model_config import model_to_json_dict

        return yaml.safe_dump(json.loads(json.dumps(model_to_json_dict(self))), **kwargs)

    # ------------------------------------------------------------------ saving
    def save(self, filepath, overwrite: bool = True, **kwargs) -> None:
        """Save the whole model: `.keras` (Keras 3 zip) or `.h5` (legacy HDF5)."""
        from kestrel.saving.api import save_model

        save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite: bool = True, max_shard_size=None,
                     save_format=None) -> None:
        """Save weights: `.weights.h5` (Keras 3 layout) or `.h5` (Keras 2 layout); with
        `max_shard_size` (GB), a `.weights.json` index and shards of at most that size; a
        tf.keras 2 checkpoint path (no Keras suffix, or `save_format`) gets the Keras 2 layout."""
        from kestrel.saving.api import save_weights

        save_weights(self, filepath, overwrite=overwrite, max_shard_size=max_shard_size,
                     save_format=save_format)

    def export(self, filepath, format: str = "onnx", verbose=None, input_signature=None,
               **kwargs) -> None:
        """Export the forward pass for inference: ONNX, TorchScript or torch.export (`.pt2`)."""
        from kestrel.export import export_model

        export_model(self, filepath, format=format, verbose=verbose,
                     input_signature=input_signature, **kwargs)

    def load_weights(self, filepath, by_name: bool = False, skip_mismatch: bool = False,
                     **kwargs) -> None:
        """Load weights saved by Kestrel, Keras 2 or Keras 3."""
        from kestrel.saving.api import load_weights

        objects_to_skip = kwargs.pop("objects_to_skip", None)  # a keyword of Keras' **kwargs
        if kwargs:  # e.g. TF's `options=` (zero_dce forwards it): Keras' ValueError
            raise ValueError(f"Invalid keyword arguments: {kwargs}")
        load_weights(self, filepath, by_name=by_name, skip_mismatch=skip_mismatch,
                     objects_to_skip=objects_to_skip)


@functools.cache
def _keras2_functional():
    """A `Functional` that takes Keras 2's singular `input=` / `output=` keywords, with a
    DeprecationWarning, and then is a plain `Functional`."""
    from kestrel.models.functional import Functional

    class Keras2Functional(Functional):
        def __init__(self, *args, **kwargs):
            renamed = {"input": "inputs", "output": "outputs"}
            for old, new in renamed.items():
                if old in kwargs and new in kwargs:
                    raise TypeError(f"Model() got both `{old}` and `{new}`: pass `{new}` only.")
            warnings.warn("Model(input=..., output=...) uses Keras 2's keywords: pass "
                          "`inputs=` and `outputs=` instead.", DeprecationWarning, stacklevel=2)
            object.__setattr__(self, "__class__", Functional)
            Functional.__init__(self, *args, **{renamed.get(k, k): v for k, v in kwargs.items()})

    return Keras2Functional


def _functional_arguments(args, kwargs) -> bool:
    """Whether a Model subclass is called as Keras' functional constructor, with symbolic
    `inputs` and `outputs` (positional or keyword)."""
    if len(args) == 2:
        inputs, outputs = args
    elif len(args) == 1 and "outputs" in kwargs:
        inputs, outputs = args[0], kwargs["outputs"]
    elif not args and "inputs" in kwargs and "outputs" in kwargs:
        inputs, outputs = kwargs["inputs"], kwargs["outputs"]
    else:
        return False
    from kestrel.layers.node import flatten

    leaves = flatten(inputs) + flatten(outputs)
    return bool(leaves) and all(isinstance(t, KerasTensor) for t in leaves)


def _make_functional(cls) -> None:
    """Put `Functional` in place of `Model` among the bases of `cls` and its ancestors (as
    Keras does), so that `MyModel(inputs, outputs)` is a graph model that keeps the subclass's
    methods (e.g. its `train_step`) and stays an instance of `MyModel` (pickling works)."""
    from kestrel.models.functional import Functional

    if issubclass(cls, Functional):
        return
    for base in cls.__bases__:
        if base is not Model and issubclass(base, Model):
            _make_functional(base)
    if Model in cls.__bases__:
        cls.__bases__ = tuple(Functional if base is Model else base for base in cls.__bases__)
    cls._read_call_signature()  # Functional's `call` takes `training` and `mask`


def _symbolic(shape):
    if isinstance(shape, dict):
        return {k: _symbolic(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [_symbolic(s) for s in shape]
    return KerasTensor(tuple(shape))
