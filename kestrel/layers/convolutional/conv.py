"""Conv1D, Conv2D, Conv3D: regular convolutions on channels-last (or channels-first) data."""
from __future__ import annotations

from kestrel.layers.convolutional.base_conv import BaseConv
from kestrel.layers.layer import register_layer


@register_layer("Convolution1D")
class Conv1D(BaseConv):
    """1D convolution (temporal convolution) over `(batch, steps, channels)` inputs.

    Args: as `BaseConv`, for 1 spatial dimension; `padding` may also be `"causal"`, which
    pads `dilation_rate * (kernel_size - 1)` steps on the left so that `output[t]` does not
    depend on `input[t + 1:]`.

    Input shape: `(batch, steps, channels)` (channels-last) or `(batch, channels, steps)`.
    Output shape: `(batch, new_steps, filters)` or `(batch, filters, new_steps)`.
    Kernel: `(kernel_size, channels // groups, filters)`.

    Example:
        >>> Conv1D(32, 3, activation="relu")(torch.ones(4, 10, 128)).shape
        torch.Size([4, 8, 32])
    """

    rank = 1
    paddings = ("valid", "same", "causal")


@register_layer("Convolution2D")
class Conv2D(BaseConv):
    """2D convolution (spatial convolution over images).

    Args: as `BaseConv`, for 2 spatial dimensions.

    Input shape: `(batch, height, width, channels)` or `(batch, channels, height, width)`.
    Output shape: `(batch, new_height, new_width, filters)` or channels-first.
    Kernel: `(kh, kw, channels // groups, filters)`.

    Example:
        >>> Conv2D(8, 3, padding="same", strides=2)(torch.ones(2, 9, 9, 3)).shape
        torch.Size([2, 5, 5, 8])
    """

    rank = 2


@register_layer("Convolution3D")
class Conv3D(BaseConv):
    """3D convolution (spatial convolution over volumes).

    Args: as `BaseConv`, for 3 spatial dimensions.

    Input shape: `(batch, d1, d2, d3, channels)` or `(batch, channels, d1, d2, d3)`.
    Output shape: `(batch, new_d1, new_d2, new_d3, filters)` or channels-first.
    Kernel: `(k1, k2, k3, channels // groups, filters)`.

    Example:
        >>> Conv3D(4, 2)(torch.ones(1, 5, 5, 5, 2)).shape
        torch.Size([1, 4, 4, 4, 4])
    """

    rank = 3
