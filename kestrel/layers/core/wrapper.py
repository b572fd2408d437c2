"""Wrapper: the base of layers that take another layer and change how it runs."""
from __future__ import annotations

from kestrel.layers.layer import Layer, clean_config, register_layer
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


@register_layer()
class Wrapper(Layer):
    """Abstract base of wrappers: holds `layer` (its weights are the wrapper's weights),
    builds it on the wrapper's input shape and serializes it in the config.

    Args:
        layer: the wrapped Layer instance.

    Example:
        >>> class Twice(Wrapper):
        ...     def call(self, x):
        ...         return self.layer(self.layer(x))
    """

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"{type(self).__name__}: layer must be a Layer instance. "
                             f"Received: layer type={type(layer).__name__}")
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer._build_from_shape(input_shape)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(),
                "layer": serialize_keras_object(self.layer, "layers")}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = deserialize_keras_object(config.pop("layer"), "layers", custom_objects)
        return cls(layer, **clean_config(cls, config))
