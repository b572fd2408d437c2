"""Conv1DTranspose, Conv2DTranspose, Conv3DTranspose: transposed ("deconvolution") layers.

Output sizes follow Keras: `"valid"` gives `(n - 1) * stride + max(kernel, stride)`, `"same"`
gives exactly `n * stride`, and an explicit `output_padding` gives
`(n - 1) * stride + kernel % 2 + output_padding` (`"same"`) or
`(n - 1) * stride + kernel + output_padding` (`"valid"`), with kernel dilated. The window
Keras keeps may be asymmetric; torch's symmetric `padding` and right-side `output_padding`
cover most cases, and a final crop handles the rest.
"""
from __future__ import annotations

import torch.nn.functional as F

from kestrel import constraints, initializers, regularizers
from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.convolutional.base_conv import ConvLayerBase
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import register_layer

CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def keras_window(kernel: int, stride: int, dilation: int, padding: str, output_padding):
    """`(crop_left, crop_right)` of the full transposed output `(n - 1) * s + k` Keras keeps.

    A negative `crop_right` means zeros appended on the right.
    """
    k = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        return 0, -extra
    pad_len = stride + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, k - 1)
    return k - 1 - left, k - 1 - (pad_len - left)


class BaseConvTranspose(ConvLayerBase):
    """N-d transposed convolution: `activation(conv_transpose(inputs, kernel) + bias)`.

    Args:
        filters: number of output channels (positive int).
        kernel_size, strides, padding, data_format, dilation_rate: see `ConvLayerBase`.
        output_padding: None, or int / `rank` ints (each < the stride) added to the output
            size along each dimension.
        activation, use_bias: see `ConvLayerBase`.
        kernel_initializer / bias_initializer: `"glorot_uniform"` / `"zeros"` by default.
        kernel_regularizer / bias_regularizer / activity_regularizer: optional regularizers.
        kernel_constraint / bias_constraint: optional constraints.

    The kernel has Keras' layout `(*kernel_size, filters, in_channels)`.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, bias_constraint,
                         activity_regularizer=activity_regularizer, **kwargs)
        owner = cu.owner_of(self)
        self.filters = positive_int(filters, "filters", owner)
        self.output_padding = None if output_padding is None else cu.standardize_tuple(
            output_padding, self.rank, "output_padding", owner, allow_zero=True)
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(
                f"{owner}: each output_padding must be smaller than its stride. "
                f"Received: output_padding={self.output_padding}, strides={self.strides}")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self._plan_window()

    def _plan_window(self) -> None:
        """Split Keras' window into torch `padding`, `output_padding` and a final crop.

        With `output_padding < strides` (and no strides > 1 with dilation > 1), torch's
        `output_padding` covers every zero extension Keras asks for on the right.
        """
        paddings, output_paddings, crops = [], [], []
        for i in range(self.rank):
            op = None if self.output_padding is None else self.output_padding[i]
            cl, cr = keras_window(self.kernel_size[i], self.strides[i], self.dilation_rate[i],
                                  self.padding, op)
            pad = max(0, min(cl, cr))
            right = cr - pad  # > 0: crop it afterwards; < 0: torch's output_padding extends
            paddings.append(pad)
            output_paddings.append(max(-right, 0))
            crops.append(slice(cl - pad, -right if right > 0 else None))
        self._torch_padding = tuple(paddings)
        self._torch_output_padding = tuple(output_paddings)
        needs_crop = any(c.start or c.stop for c in crops)
        self._crop = (slice(None), slice(None), *crops) if needs_crop else None

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight(
            "kernel", (*self.kernel_size, self.filters, channels), self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
            layout=cu.kernel_layout(self.rank))
        self.bias = self._add_bias(self.filters)
        self.built = True

    def call(self, inputs):
        outputs = CONV_TRANSPOSE[self.rank](
            self._channels_first(inputs), self.kernel, self.bias, self.strides,
            self._torch_padding, self._torch_output_padding, 1, self.dilation_rate)
        if self._crop is not None:
            outputs = outputs[self._crop]
        return self._finish(outputs)

    def _output_length(self, length, dim: int):
        if length is None:
            return None
        k = (self.kernel_size[dim] - 1) * self.dilation_rate[dim] + 1
        s = self.strides[dim]
        op = None if self.output_padding is None else self.output_padding[dim]
        if self.padding == "valid":
            return (length - 1) * s + k + (max(k, s) - k if op is None else op)
        return length * s if op is None else (length - 1) * s + k % 2 + op

    def _output_channels(self, input_shape):
        return self.filters

    def get_config(self):
        return self._in_keras_order({
            **super().get_config(),
            "filters": self.filters,
            "output_padding": None if self.output_padding is None else list(self.output_padding),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
        })


@register_layer("Convolution1DTranspose")
class Conv1DTranspose(BaseConvTranspose):
    """1D transposed convolution over `(batch, steps, channels)` inputs.

    Args: as `BaseConvTranspose`, for 1 spatial dimension.

    Input shape: `(batch, steps, channels)` or `(batch, channels, steps)`.
    Output shape: `(batch, new_steps, filters)` or `(batch, filters, new_steps)`.
    Kernel: `(kernel_size, filters, channels)`.

    Example:
        >>> Conv1DTranspose(4, 3, strides=2, padding="same")(torch.ones(2, 5, 3)).shape
        torch.Size([2, 10, 4])
    """

    rank = 1


@register_layer("Convolution2DTranspose")
class Conv2DTranspose(BaseConvTranspose):
    """2D transposed convolution over images.

    Args: as `BaseConvTranspose`, for 2 spatial dimensions.

    Input shape: `(batch, height, width, channels)` or channels-first.
    Output shape: `(batch, new_height, new_width, filters)` or channels-first.
    Kernel: `(kh, kw, filters, channels)`.

    Example:
        >>> Conv2DTranspose(4, 3, strides=2, padding="same")(torch.ones(1, 4, 4, 8)).shape
        torch.Size([1, 8, 8, 4])
    """

    rank = 2


@register_layer("Convolution3DTranspose")
class Conv3DTranspose(BaseConvTranspose):
    """3D transposed convolution over volumes.

    Args: as `BaseConvTranspose`, for 3 spatial dimensions (Keras orders `data_format`
    before `output_padding` here).

    Input shape: `(batch, d1, d2, d3, channels)` or channels-first.
    Output shape: `(batch, new_d1, new_d2, new_d3, filters)` or channels-first.
    Kernel: `(k1, k2, k3, filters, channels)`.

    Example:
        >>> Conv3DTranspose(2, 2, strides=2)(torch.ones(1, 3, 3, 3, 4)).shape
        torch.Size([1, 6, 6, 6, 2])
    """

    rank = 3

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 output_padding=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(
            filters, kernel_size, strides, padding, output_padding=output_padding,
            data_format=data_format, dilation_rate=dilation_rate, activation=activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint, **kwargs)
