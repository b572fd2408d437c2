"""TimeDistributed: apply one layer to every time step of `(batch, time, ...)` inputs."""
from __future__ import annotations

from kestrel.layers.layer import Layer, clean_config, register_layer
from kestrel.layers.node import KerasTensor, map_structure
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


@register_layer()
class TimeDistributed(Layer):
    """Applies `layer` to every temporal slice of the input, with shared weights.

    The time axis is folded into the batch (`(batch * time, ...)`), so the wrapped layer runs
    once per call. (Keras 3 loops over time steps; a layer whose training-time statistics
    depend on the batch, such as BatchNormalization, sees all steps at once here.)

    Args:
        layer: a Layer instance; its weights are this layer's weights.

    Input shape: `(batch, time, ...)`. Output shape: `(batch, time, ...layer's output)`.

    Example:
        >>> import torch
        >>> from kestrel.layers import Dense
        >>> TimeDistributed(Dense(4))(torch.ones(2, 5, 3)).shape
        torch.Size([2, 5, 4])
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed '{self.name}': layer must be a Layer instance. "
                             f"Received: layer={layer!r}")
        self.layer = layer
        self.supports_masking = True

    def _child_shape(self, input_shape) -> tuple:
        if len(input_shape) < 3:
            raise ValueError(
                f"TimeDistributed '{self.name}' expects inputs of rank >= 3 "
                f"(batch, time, ...), but got shape {tuple(input_shape)}. "
                f"Received: input shape={tuple(input_shape)}")
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape):
        child = self._child_shape(tuple(input_shape))
        if not self.layer.built:
            self.layer._build_from_shape(child)

    def compute_output_spec(self, inputs, training=None, mask=None):
        child = KerasTensor(self._child_shape(inputs.shape), inputs.dtype)
        return map_structure(
            lambda t: KerasTensor((t.shape[0], inputs.shape[1], *t.shape[1:]), t.dtype),
            self.layer.compute_output_spec(child))

    def compute_output_shape(self, input_shape):
        spec = self.compute_output_spec(KerasTensor(tuple(input_shape), self.dtype))
        return map_structure(lambda t: t.shape, spec)

    def call(self, inputs, training=None, mask=None):
        shape = tuple(inputs.shape)
        self._child_shape(shape)
        batch, steps = shape[:2]
        kwargs = {}
        if self.layer._call_accepts_training:
            kwargs["training"] = training
        if mask is not None and self.layer._call_accepts_mask:
            kwargs["mask"] = mask.reshape(batch * steps, *mask.shape[2:])
        outputs = self.layer(inputs.reshape(batch * steps, *shape[2:]), **kwargs)
        return map_structure(lambda y: y.reshape(batch, steps, *y.shape[1:]), outputs)

    def get_config(self):
        return {**super().get_config(), "layer": serialize_keras_object(self.layer, "layers")}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = deserialize_keras_object(config["layer"], "layers", custom_objects)
        return cls(**clean_config(cls, config))
