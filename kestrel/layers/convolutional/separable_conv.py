"""SeparableConv1D, SeparableConv2D: a depthwise convolution followed by a 1x1 convolution."""
from __future__ import annotations

from kestrel import constraints, initializers, regularizers
from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.convolutional.base_conv import CONV, ConvLayerBase
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import register_layer


class BaseSeparableConv(ConvLayerBase):
    """N-d depthwise separable convolution.

    Each input channel is convolved with `depth_multiplier` filters (no bias), then a
    pointwise (1x1) convolution mixes the `channels * depth_multiplier` results into
    `filters` outputs, plus the bias.

    Args:
        filters: number of output channels (positive int).
        kernel_size, strides, padding, data_format, dilation_rate: see `ConvLayerBase`.
        depth_multiplier: depthwise outputs per input channel (positive int).
        activation, use_bias: see `ConvLayerBase`.
        depthwise_initializer / pointwise_initializer / bias_initializer: initializers.
        depthwise_regularizer / pointwise_regularizer / bias_regularizer /
            activity_regularizer: optional regularizers.
        depthwise_constraint / pointwise_constraint / bias_constraint: optional constraints.

    Weights, in Keras' order and layouts: `depthwise_kernel` `(*kernel_size, channels,
    depth_multiplier)`, `pointwise_kernel` `(1, ..., channels * depth_multiplier, filters)`,
    `bias` `(filters,)`.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, bias_constraint,
                         activity_regularizer=activity_regularizer, **kwargs)
        owner = cu.owner_of(self)
        self.filters = positive_int(filters, "filters", owner)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier", owner)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.pointwise_constraint = constraints.get(pointwise_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.compute_output_shape(input_shape)
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", (*self.kernel_size, channels, self.depth_multiplier),
            self.depthwise_initializer, regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
            layout=cu.depthwise_layout(self.rank, self.depth_multiplier))
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", (*(1,) * self.rank, channels * self.depth_multiplier,
                                 self.filters),
            self.pointwise_initializer, regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint, layout=cu.kernel_layout(self.rank))
        self.bias = self._add_bias(self.filters)
        self.built = True

    def call(self, inputs):
        return self._padded_call(inputs, None)

    def _padded_call(self, inputs, pads, weights=None):
        pointwise, bias = weights or self._output_weights()
        x = self._channels_first(inputs)
        depthwise = self._convolve(x, self.depthwise_kernel, None, x.shape[1], pads)
        return self._finish(CONV[self.rank](depthwise, pointwise, bias))

    def _output_weights(self):
        return self.pointwise_kernel, self.bias

    def _fusable_padding(self) -> bool:
        return type(self).call is BaseSeparableConv.call and self.padding != "causal"

    def _output_channels(self, input_shape):
        return self.filters

    def get_config(self):
        return self._in_keras_order({
            **super().get_config(),
            "filters": self.filters,
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
            "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
            "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
            "pointwise_constraint": constraints.serialize(self.pointwise_constraint),
        })


@register_layer("SeparableConvolution1D")
class SeparableConv1D(BaseSeparableConv):
    """1D depthwise separable convolution over `(batch, steps, channels)` inputs.

    Args: as `BaseSeparableConv`, for 1 spatial dimension.

    Input shape: `(batch, steps, channels)` or `(batch, channels, steps)`.
    Output shape: `(batch, new_steps, filters)` or `(batch, filters, new_steps)`.

    Example:
        >>> SeparableConv1D(4, 3, depth_multiplier=2)(torch.ones(2, 10, 12)).shape
        torch.Size([2, 8, 4])
    """

    rank = 1


@register_layer("SeparableConvolution2D")
class SeparableConv2D(BaseSeparableConv):
    """2D depthwise separable convolution over images.

    Args: as `BaseSeparableConv`, for 2 spatial dimensions.

    Input shape: `(batch, height, width, channels)` or channels-first.
    Output shape: `(batch, new_height, new_width, filters)` or channels-first.

    Example:
        >>> SeparableConv2D(4, 3, strides=2, padding="same")(torch.ones(2, 10, 10, 12)).shape
        torch.Size([2, 5, 5, 4])
    """

    rank = 2
