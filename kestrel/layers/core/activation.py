"""Activation, Identity and Lambda: layers that apply a function and hold no weights."""
from __future__ import annotations

import inspect
import types

import numpy as np
import torch

from kestrel import activations
import kestrel.backend.rebinding as rebinding
from kestrel.activations.activations import in_place_form, is_builtin
from kestrel.layers import in_place
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import KerasTensor, flatten, map_structure, shape_of
from kestrel.registry import object_registry
from kestrel.registry.safe_mode import dump_lambda, load_lambda
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


@register_layer()
class Activation(Layer):
    """Applies an activation function to its input.

    Args:
        activation: activation name (`"relu"`) or callable.

    Example:
        >>> Activation("relu")(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.supports_masking = True

    def call(self, inputs):
        return self.activation(inputs)

    @property
    def _output_is_fresh(self) -> bool:
        return self.activation is not activations.linear and is_builtin(self.activation)

    def _in_place(self, inputs, position=0):
        form = in_place_form(self.activation)
        return self.call(inputs) if form is None else in_place.apply(form, inputs)

    @property
    def _padded_activation(self):
        from kestrel.layers import padded_activation

        return self.activation if padded_activation.supports(self.activation) else None

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@register_layer()
class Identity(Layer):
    """Returns its input unchanged (any structure of tensors); passes masks through."""

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs, *args, **kwargs):
        return map_structure(
            lambda t: KerasTensor(t.shape, self._symbolic_input_dtype(t.dtype))
            if isinstance(t, KerasTensor) else t, inputs)


_CALLING: list = []  # the Lambda layers whose function is running, innermost last


def note_gradients_taken() -> None:
    """Called by `K.gradients` on real tensors: the running Lambda takes gradients (Keras 2's
    graph gradients, e.g. mnist_swwae), so its model keeps autograd on at inference too."""
    if _CALLING:
        _CALLING[-1].takes_gradients = True


def _names_gradients(function) -> bool:
    """Whether `function`'s code reads a name `gradients` (`K.gradients(...)`): known before
    any call, for a Lambda given an `output_shape` (never run while the model is built)."""
    code = getattr(function, "__code__", None)
    return code is not None and "gradients" in code.co_names


@register_layer()
class Lambda(Layer):
    """Wraps an arbitrary function of the inputs as a layer.

    Python lambdas are saved as bytecode, which only loads with safe mode off
    (`load_model(..., safe_mode=False)` or `kestrel.config.enable_unsafe_deserialization()`);
    named functions are saved by name and found again through `custom_objects` or
    `register_keras_serializable`.

    Args:
        function: callable taking the inputs first; may also take `mask` and `training`.
        output_shape: shape without the batch dimension, or a function of the full input
            shape; inferred by running `function` when omitted.
        mask: `None`, a callable `(inputs, mask) -> mask`, or a fixed mask tensor.
        arguments: extra keyword arguments passed to `function`.

    Example:
        >>> Lambda(lambda x: x ** 2)(torch.tensor([3.0]))
        tensor([9.])
    """

    accepts_strings = True

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise ValueError(
                f"Lambda '{self.name}': function must be callable. Received: function={function!r}")
        self.function = function
        self.takes_gradients = _names_gradients(function)
        self.arguments = dict(arguments or {})
        self.mask = mask
        self.supports_masking = mask is not None
        if isinstance(output_shape, list) and all(isinstance(d, (int, type(None)))
                                                  for d in output_shape):
            output_shape = tuple(output_shape)
        self._output_shape = output_shape
        params = _parameter_names(function)
        self._fn_expects_mask = "mask" in params
        self._fn_expects_training = "training" in params

    def call(self, inputs, mask=None, training=None):
        kwargs = dict(self.arguments)
        if self._fn_expects_mask:
            kwargs["mask"] = mask
        if self._fn_expects_training:
            kwargs["training"] = self.training if training is None else training
        _CALLING.append(self)
        try:
            if rebinding.function_needs_rebinding(self.function):  # `a *= b` in Keras 2 code
                with rebinding.rebinding():
                    return self.function(inputs, **kwargs)
            return self.function(inputs, **kwargs)
        finally:
            _CALLING.pop()

    _mask_ops_recorded = True  # a mask function written with `ops` is recorded, as in Keras

    def compute_mask(self, inputs, previous_mask=None):
        if callable(self.mask):
            return self.mask(inputs, previous_mask)
        return self.mask

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            specs = _to_keras_tensors(input_shape, self.dtype)
            return shape_of(self._infer_output_spec((specs,), {}))
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        first = input_shape[0] if _is_shape_list(input_shape) else input_shape
        return _add_batch(self._output_shape, first[0])

    def compute_output_spec(self, *args, **kwargs):
        if self._output_shape is None:
            return self._infer_output_spec(args, kwargs)
        first = args[0] if args else next(iter(kwargs.values()))
        dtype = flatten(first)[0].dtype
        shape = self.compute_output_shape(shape_of(first))
        return _to_keras_tensors(shape, dtype)

    def get_config(self):
        config = {"function": _function_config(self.function)}
        if self._output_shape is not None:
            config["output_shape"] = (_function_config(self._output_shape)
                                      if callable(self._output_shape) else self._output_shape)
        if self.mask is not None:
            config["mask"] = (_function_config(self.mask) if callable(self.mask)
                              else _tensor_config(self.mask))
        config["arguments"] = serialize_keras_object(self.arguments)
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        """Rebuild a Lambda; Python lambdas (bytecode) need safe mode off.

        Args:
            custom_objects: `{name: function}` for named functions.
            safe_mode: overrides the ambient `kestrel.registry.safe_mode` setting.
        """
        config, safe = dict(config), safe_mode
        name = config.get("name", "lambda")
        legacy_kinds = {"function": config.pop("function_type", None),
                        "output_shape": config.pop("output_shape_type", None)}
        for key in ("module", "output_shape_module"):
            config.pop(key, None)
        config["function"] = _load_function(config["function"], legacy_kinds["function"],
                                            name, safe, custom_objects)
        shape = config.get("output_shape")
        if isinstance(shape, dict) or legacy_kinds["output_shape"] in ("lambda", "function"):
            config["output_shape"] = _load_function(shape, legacy_kinds["output_shape"],
                                                    name, safe, custom_objects)
        mask = config.get("mask")
        if isinstance(mask, dict):
            config["mask"] = (_tensor_from_config(mask) if mask.get("class_name") == "__tensor__"
                              else _load_function(mask, None, name, safe, custom_objects))
        return super().from_config(config)


def _parameter_names(function) -> set[str]:
    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return set()


def _is_shape_list(shape) -> bool:
    return isinstance(shape, (list, tuple)) and bool(shape) and isinstance(shape[0], (list, tuple))


def _add_batch(shape, batch):
    if _is_shape_list(shape):
        return [_add_batch(s, batch) for s in shape]
    return (batch,) + tuple(shape)


def _to_keras_tensors(shape, dtype):
    if _is_shape_list(shape):
        return [_to_keras_tensors(s, dtype) for s in shape]
    return KerasTensor(shape, dtype)


def _function_config(fn) -> dict:
    """Keras 3's saved form of a callable: bytecode for lambdas, a name for functions."""
    if isinstance(fn, types.LambdaType) and fn.__name__ == "<lambda>":
        return {"class_name": "__lambda__", "config": dump_lambda(fn)}
    if inspect.isfunction(fn) or inspect.isbuiltin(fn):
        return {"module": "builtins", "class_name": "function",
                "config": object_registry.get_registered_name(fn), "registered_name": "function"}
    return serialize_keras_object(fn)


def _load_function(config, legacy_kind, layer_name: str, safe: bool | None, custom_objects):
    """A callable from its saved form (Keras 3 dicts, or Keras 2 `function_type` values)."""
    owner = f"Lambda '{layer_name}'"
    if isinstance(config, dict) and config.get("class_name") == "__lambda__":
        inner = config["config"]
        return load_lambda(inner["code"], inner.get("defaults"), inner.get("closure"),
                           owner=owner, safe_mode=safe)
    if legacy_kind == "lambda":
        code, defaults, closure = config
        return load_lambda(code, defaults, closure, owner=owner, safe_mode=safe)
    if isinstance(config, dict) and config.get("class_name") == "function":
        config = config["config"]
    if isinstance(config, str):
        fn = object_registry.lookup(config, None, custom_objects)
        if fn is None:  # a TypeError, as Keras' "Could not locate function"
            raise TypeError(
                f"{owner}: could not find the function '{config}'. Pass it in "
                f"custom_objects={{'{config}': {config.split('>')[-1]}}} or decorate it with "
                f"@kestrel.saving.register_keras_serializable(). Received: function={config!r}")
        return fn
    return deserialize_keras_object(config, "layers", custom_objects)


def _tensor_config(value) -> dict:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    return {"class_name": "__tensor__",
            "config": {"value": array.tolist(), "dtype": str(array.dtype)}}


def _tensor_from_config(config: dict) -> torch.Tensor:
    inner = config["config"]
    return torch.as_tensor(np.asarray(inner["value"], dtype=inner["dtype"]))
