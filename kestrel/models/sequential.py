"""Sequential: a plain stack of layers, each with one input and one output."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from kestrel import dtype_policies
from kestrel.layers.core.input_layer import InputLayer
from kestrel.layers import training_mode
from kestrel.layers.layer import Layer
from kestrel.layers.normalization import batch_norm_folding
from kestrel.layers.naming import unique_name
from kestrel.layers.node import KerasTensor
from kestrel.models.functional import rank_matched
from kestrel.models.model import Model
from kestrel.registry import object_registry


class Sequential(Model):
    """A linear stack of layers.

    The model is built as soon as its input shape is known: from an `Input`/`InputLayer` first
    layer, from `input_shape=` on the first layer, or on the first call with real data.

    Example:
        >>> model = Sequential([Input(shape=(16,)), Dense(8, activation="relu"), Dense(1)])
        >>> model.output_shape
        (None, 1)
    """

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(trainable=trainable, name=name)
        self._stack: list[Layer] = []
        self._call_plan = None  # `call`'s steps, from the built stack (`_call_steps`)
        self._input_layer: InputLayer | None = None
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._maybe_rebuild()

    def add(self, layer, rebuild: bool = True) -> None:
        """Append a layer (or an `Input()` tensor) to the stack."""
        if isinstance(layer, KerasTensor) and isinstance(layer._keras_history[0], InputLayer):
            layer = layer._keras_history[0]
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ValueError(
                    f"Sequential model '{self.name}': an InputLayer must be the first layer.")
            self._input_layer = layer
        elif isinstance(layer, Layer):
            if any(existing.name == layer.name for existing in self._stack):
                raise ValueError(
                    f"All layers added to a Sequential model should have unique names. Name "
                    f"'{layer.name}' is already the name of a layer in model '{self.name}'.")
            self._stack.append(layer)
            self._modules[layer.name] = layer
            self._call_plan = None
        else:
            raise ValueError(
                f"Only instances of kestrel Layer can be added to a Sequential model. "
                f"Received: {layer!r} (of type {type(layer).__name__})")
        if rebuild:
            self._maybe_rebuild()

    def pop(self, rebuild: bool = True) -> Layer:
        """Remove and return the last layer."""
        if not self._stack:
            raise TypeError(f"There are no layers in model '{self.name}'.")
        layer = self._stack.pop()
        del self._modules[layer.name]
        self.built = False
        self._call_plan = None
        if rebuild:
            self._maybe_rebuild()
        return layer

    def _maybe_rebuild(self) -> None:
        if self._input_layer is None and self._stack:
            first = self._stack[0]
            shape = first._batch_input_shape
            if shape is None and len(self._stack) > 1 and _one_symbolic_input(first):
                shape = first.inputs[0].shape  # as Keras: a built model first gives its input
            if shape is not None:
                self._input_layer = InputLayer(batch_shape=shape, dtype=first.compute_dtype)
        if self._input_layer is not None and self._stack:
            self._build_graph(self._input_layer.output_tensor)

    def _build_graph(self, x: KerasTensor) -> None:
        self.inputs = [x]
        with self._open_name_scope():  # the layers' weights are `<model>/<layer>/<weight>`
            for layer in self._stack:
                x = layer(x)
        self.outputs = [x]
        self.built = True
        self._build_input_shape = self.inputs[0].shape
        unique_name("functional")  # Keras builds an inner Functional here, taking this name

    def build(self, input_shape=None) -> None:
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError(f"Sequential model '{self.name}' needs an input shape to build.")
            input_shape = self._input_layer.batch_shape
        if self._input_layer is None:
            self._input_layer = InputLayer(batch_shape=tuple(input_shape))
        self._build_graph(self._input_layer.output_tensor)

    def _build_on_call(self, first) -> None:
        # Keras keeps the first batch's size; NumPy strings (a TextVectorization's input) stay
        # on the host as strings
        strings = isinstance(first, np.ndarray) and first.dtype.kind in "USO"
        dtype = "string" if strings else str(first.dtype).replace("torch.", "")
        self._input_layer = InputLayer(batch_shape=tuple(first.shape), dtype=dtype)
        self._build_graph(self._input_layer.output_tensor)
        device = None if strings else first.device
        if device is not None and device.type != "meta" and \
                any(t.device != device for t in self.parameters()):
            self.to(device)

    def call(self, inputs, training=None, mask=None):
        x = self._match_input_rank(inputs)
        replays = training_mode.enter_graph()
        try:
            for layer, norm in self._call_plan or self._call_steps():
                x = layer._call_in_graph(x) if norm is None else \
                    batch_norm_folding.call(layer, norm, x, None)
        finally:
            training_mode.leave_graph(replays)
        return x

    def _call_steps(self) -> list:
        """`(layer, None)` per layer of the stack, or `(convolution, the BatchNormalization
        after it)` where the two may fold (`batch_norm_folding`); kept once the model is
        built."""
        steps = batch_norm_folding.pair_up(self._stack)
        if self.built:
            self._call_plan = steps
        return steps

    def _match_input_rank(self, x):
        """`x` with a trailing size-1 axis added or dropped to match the input's rank, as Keras'
        Sequential does through its inner functional (1-D data feeds `input_shape=[1]`)."""
        if not isinstance(x, torch.Tensor) or not getattr(self, "inputs", None):
            return x
        adjusted = rank_matched(x, self.inputs[0].shape)
        return x if adjusted is None else adjusted

    # Keras 2 (removed in 2.6), kept with a DeprecationWarning naming the replacement
    def predict_proba(self, x, batch_size=32, verbose=0):
        """Keras 2: the same as `predict(x)`; use `predict` instead."""
        warnings.warn("`model.predict_proba()` is deprecated: use `model.predict()` instead.",
                      DeprecationWarning, stacklevel=2)
        return self._predict_probabilities(x, batch_size, verbose)

    def predict_classes(self, x, batch_size=32, verbose=0):
        """Keras 2: the argmax of `predict(x)` over several output units, `> 0.5` (int32) for
        one; use `np.argmax(model.predict(x), axis=-1)` or
        `(model.predict(x) > 0.5).astype("int32")` instead."""
        warnings.warn("`model.predict_classes()` is deprecated: use "
                      "`np.argmax(model.predict(x), axis=-1)` for multi-class classification "
                      "(softmax) or `(model.predict(x) > 0.5).astype('int32')` for binary "
                      "classification (sigmoid) instead.", DeprecationWarning, stacklevel=2)
        proba = self._predict_probabilities(x, batch_size, verbose)
        return proba.argmax(axis=-1) if proba.shape[-1] > 1 else (proba > 0.5).astype("int32")

    def _predict_probabilities(self, x, batch_size, verbose):
        proba = self.predict(x, batch_size=batch_size, verbose=verbose)
        if proba.size and (proba.min() < 0.0 or proba.max() > 1.0):
            warnings.warn("Network returning invalid probability values: the last layer might "
                          "not normalize predictions into probabilities (like softmax or "
                          "sigmoid would).", stacklevel=3)
        return proba

    @property
    def layers(self) -> list[Layer]:
        return list(self._stack)

    @property
    def input_names(self) -> list[str]:
        return [self._input_layer.name] if self._input_layer is not None else []

    @property
    def output_names(self) -> list[str]:
        return [self._stack[-1].name] if self._stack else []

    def compute_output_spec(self, *args, **kwargs):
        return self._infer_output_spec(args, kwargs)

    def get_config(self) -> dict:
        from kestrel.registry.serialization import serialize_keras_object
        from kestrel.saving.keras_zip import compile_entry

        layers = []
        if self._input_layer is not None:
            layers.append(serialize_keras_object(self._input_layer, "layers"))
        for layer in self._stack:
            entry = serialize_keras_object(layer, "layers")
            build = layer.get_build_config()
            if build is not None:
                entry["build_config"] = build
            if hasattr(layer, "get_compile_config"):  # a nested model: as Keras, {} if not
                entry["compile_config"] = compile_entry(layer)  # compiled
            layers.append(entry)
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": dtype_policies.serialize(self.dtype_policy),
                  "layers": layers}
        if self._input_layer is not None:  # as Keras: the input's shape, batch included
            config["build_input_shape"] = list(self._input_layer.batch_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from kestrel.saving.model_config import deserialize_layer

        if isinstance(config, list):  # very old Keras: the config is the layer list itself
            config = {"layers": config}
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        rebuilds = 0
        for entry in config["layers"]:
            layer = deserialize_layer(entry, custom_objects)
            if not isinstance(layer, InputLayer) and model._input_layer is None \
                    and layer._batch_input_shape is None:
                layer.build_from_config(entry.get("build_config"))
            model.add(layer, rebuild=False)
            if model._stack and (model._input_layer is not None
                                 or model._stack[0]._batch_input_shape is not None):
                rebuilds += 1
        model._maybe_rebuild()
        for _ in range(rebuilds - 1):  # Keras rebuilds after each add, taking a name each time
            unique_name("functional")
        return model


def _one_symbolic_input(layer) -> bool:
    """Whether `layer` is a built model with one symbolic input (Keras' `input_shape`)."""
    inputs = getattr(layer, "inputs", None) if isinstance(layer, Model) and layer.built else None
    return isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], KerasTensor)


object_registry.register_builtin("layers")(Sequential)
