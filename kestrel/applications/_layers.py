"""Layers private to some applications, as Keras keeps them inside the application modules."""
from __future__ import annotations

import torch

from kestrel import initializers
from kestrel.layers.layer import Layer, register_layer


@register_layer()
class CustomScaleLayer(Layer):
    """InceptionResNetV2's residual sum: `inputs[0] + inputs[1] * scale`.

    Example:
        >>> CustomScaleLayer(0.5)([torch.ones(2), torch.ones(2)]).tolist()
        [1.5, 1.5]
    """

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        return inputs[0] + inputs[1] * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@register_layer()
class LayerScale(Layer):
    """ConvNeXt's learned per-channel scale `x * gamma`, gamma starting at `init_values`.

    Example:
        >>> LayerScale(0.1, 2)(torch.ones(1, 2)).tolist()
        [[0.10000000149011612, 0.10000000149011612]]
    """

    def __init__(self, init_values, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.init_values = init_values
        self.projection_dim = projection_dim

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(self.projection_dim,),
                                     initializer=initializers.Constant(self.init_values))

    def call(self, x):
        return x * self.gamma

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "init_values": self.init_values,
                "projection_dim": self.projection_dim}


@register_layer()
class StochasticDepth(Layer):
    """ConvNeXt's drop path: in training, zero whole samples with probability
    `drop_path_rate` and rescale the rest; the identity in inference.

    Example:
        >>> StochasticDepth(0.5)(torch.ones(2, 3)).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, drop_path_rate, **kwargs):
        super().__init__(**kwargs)
        self.drop_path_rate = drop_path_rate

    def call(self, x, training=None):
        if not training:
            return x
        keep = 1.0 - self.drop_path_rate
        mask = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype)
        return x / keep * torch.floor(keep + mask)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "drop_path_rate": self.drop_path_rate}
