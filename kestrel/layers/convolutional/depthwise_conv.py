"""DepthwiseConv1D, DepthwiseConv2D: each input channel convolved with its own filters.

Runs as one grouped torch convolution (`groups = channels`); output channel `c * mult + m`
comes from input channel `c` and Keras kernel slice `[..., c, m]`.
"""
from __future__ import annotations

from kestrel import constraints, initializers, regularizers
from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.convolutional.base_conv import ConvLayerBase
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import register_layer


class BaseDepthwiseConv(ConvLayerBase):
    """N-d depthwise convolution: `activation(depthwise_conv(inputs, kernel) + bias)`.

    Args:
        kernel_size, strides, padding: see `ConvLayerBase`.
        depth_multiplier: output channels per input channel (positive int).
        data_format, dilation_rate, activation, use_bias: see `ConvLayerBase`.
        depthwise_initializer / bias_initializer: `"glorot_uniform"` / `"zeros"` by default.
        depthwise_regularizer / bias_regularizer / activity_regularizer: optional regularizers.
        depthwise_constraint / bias_constraint: optional constraints.

    The kernel has Keras' layout `(*kernel_size, in_channels, depth_multiplier)`, the bias
    `(in_channels * depth_multiplier,)`.
    """

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, bias_constraint,
                         activity_regularizer=activity_regularizer, **kwargs)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier",
                                                cu.owner_of(self))
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight(
            "kernel", (*self.kernel_size, channels, self.depth_multiplier),
            self.depthwise_initializer, regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
            layout=cu.depthwise_layout(self.rank, self.depth_multiplier))
        self.bias = self._add_bias(channels * self.depth_multiplier)
        self.built = True

    def call(self, inputs):
        return self._padded_call(inputs, None)

    def _padded_call(self, inputs, pads, weights=None):
        kernel, bias = weights or self._output_weights()
        x = self._channels_first(inputs)
        return self._finish(self._convolve(x, kernel, bias, x.shape[1], pads))

    def _fusable_padding(self) -> bool:
        return type(self).call is BaseDepthwiseConv.call and self.padding != "causal"

    def _output_channels(self, input_shape):
        channels = input_shape[-1] if self._channels_last else input_shape[1]
        return None if channels is None else channels * self.depth_multiplier

    def get_config(self):
        return self._in_keras_order({
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
            "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
        })


@register_layer()
class DepthwiseConv1D(BaseDepthwiseConv):
    """1D depthwise convolution over `(batch, steps, channels)` inputs.

    Args: as `BaseDepthwiseConv`, for 1 spatial dimension.

    Input shape: `(batch, steps, channels)` or `(batch, channels, steps)`.
    Output shape: `(batch, new_steps, channels * depth_multiplier)` or channels-first.

    Example:
        >>> DepthwiseConv1D(3, depth_multiplier=2)(torch.ones(2, 10, 4)).shape
        torch.Size([2, 8, 8])
    """

    rank = 1


@register_layer()
class DepthwiseConv2D(BaseDepthwiseConv):
    """2D depthwise convolution over images.

    Args: as `BaseDepthwiseConv`, for 2 spatial dimensions.

    Input shape: `(batch, height, width, channels)` or channels-first.
    Output shape: `(batch, new_height, new_width, channels * depth_multiplier)`.

    Example:
        >>> DepthwiseConv2D(3, depth_multiplier=3)(torch.ones(4, 10, 10, 12)).shape
        torch.Size([4, 8, 8, 36])
    """

    rank = 2
