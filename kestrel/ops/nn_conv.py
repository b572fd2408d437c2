"""Convolution, pooling and patch ops of `kestrel.ops.nn` on channels-last (or -first) tensors.

Kernels have Keras' layouts: `conv` `(*spatial, in / groups, out)`, `depthwise_conv`
`(*spatial, in, multiplier)`, `conv_transpose` `(*spatial, out, in)`. `"same"` padding is
Keras/TF's: output size `ceil(n / stride)`, any odd padding element at the end.

>>> conv(torch.ones(1, 5, 5, 2), torch.ones(3, 3, 2, 4), padding="same").shape
torch.Size([1, 5, 5, 4])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.convolutional.conv_transpose import keras_window
from kestrel.layers.convolutional.padded_conv import conv_with_pads
from kestrel.ops.convert import dtype_of, float_result, promote, to_tensors
from kestrel.ops.dispatch import keras_op, module_all

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_ADAPTIVE = {"max": {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d,
                     3: F.adaptive_max_pool3d},
             "avg": {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d,
                     3: F.adaptive_avg_pool3d}}


def _channels_first(x: torch.Tensor, data_format, op: str):
    """`(x channels-first, rank, channels_last)` after checking rank and data format."""
    owner = f"ops.{op}"
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"{owner}: inputs must have rank 3, 4 or 5 (1 to 3 spatial "
                         f"dimensions). Received: inputs.shape={tuple(x.shape)}")
    rank = x.ndim - 2
    last = cu.standardize_data_format(data_format, owner) == "channels_last"
    return (x.permute(cu.channel_permutations(rank)[0]) if last else x), rank, last


def _back(x: torch.Tensor, rank: int, last: bool) -> torch.Tensor:
    return x.permute(cu.channel_permutations(rank)[1]) if last else x


def _float_pair(inputs, kernel):
    """Both in Keras' float result type; two float64 ones stay float64, as Keras' torch
    backend hands them to torch uncast."""
    wide = all(dtype_of(x) == "float64" for x in (inputs, kernel))
    return promote(inputs, kernel, dtype="float64" if wide else float_result(inputs, kernel))


def _conv_cf(x, weight, rank, strides, padding, dilation, op):
    """Convolution of channels-first `x` with a torch weight `(out, in / groups, *k)`."""
    strides = cu.standardize_tuple(strides, rank, "strides", f"ops.{op}")
    dilation = cu.standardize_tuple(dilation, rank, "dilation_rate", f"ops.{op}")
    groups, remainder = divmod(x.shape[1], weight.shape[1])
    if remainder or groups == 0:
        raise ValueError(f"ops.{op}: the input channels ({x.shape[1]}) must be a multiple of "
                         f"the kernel's input channels ({weight.shape[1]}).")
    if cu.standardize_padding(padding, f"ops.{op}") == "same":
        pads = cu.same_padding(tuple(x.shape[2:]), tuple(weight.shape[2:]), strides, dilation)
        return conv_with_pads(_CONV[rank], x, weight, None, strides, pads, dilation, groups)
    return _CONV[rank](x, weight, None, strides, 0, dilation, groups)


@keras_op
def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """N-d convolution (grouped when `kernel` has fewer input channels than `inputs`).

    Args:
        inputs: `(batch, *spatial, channels)` (or channels-first), 1 to 3 spatial dims.
        kernel: `(*kernel_size, in_channels / groups, out_channels)`.
        strides, dilation_rate: int or one int per spatial dim.
        padding: `"valid"` or `"same"`.
    """
    inputs, kernel = _float_pair(inputs, kernel)
    x, rank, last = _channels_first(inputs, data_format, "conv")
    out = _conv_cf(x, cu.kernel_to_torch(kernel, rank), rank, strides, padding,
                   dilation_rate, "conv")
    return _back(out, rank, last)


@keras_op
def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """Depthwise convolution: each input channel with its own `multiplier` filters.

    `kernel` is `(*kernel_size, in_channels, multiplier)`; the output has
    `in_channels * multiplier` channels.
    """
    inputs, kernel = _float_pair(inputs, kernel)
    x, rank, last = _channels_first(inputs, data_format, "depthwise_conv")
    if kernel.shape[-2] != x.shape[1]:
        raise ValueError("ops.depthwise_conv: the kernel's input channels must match the "
                         f"inputs'. Received: inputs channels={x.shape[1]}, "
                         f"kernel.shape={tuple(kernel.shape)}")
    out = _conv_cf(x, cu.depthwise_to_torch(kernel, rank), rank, strides, padding,
                   dilation_rate, "depthwise_conv")
    return _back(out, rank, last)


@keras_op
def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid",
                   data_format=None, dilation_rate=1):
    """`depthwise_conv` followed by a 1x1 `conv` with `pointwise_kernel`
    `(1, ..., in_channels * multiplier, out_channels)`."""
    depthwise = depthwise_conv.raw(inputs, depthwise_kernel, strides, padding, data_format,
                                   dilation_rate)
    return conv.raw(depthwise, pointwise_kernel, 1, "valid", data_format)


@keras_op
def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None,
                   data_format=None, dilation_rate=1):
    """Transposed convolution with Keras' output sizes.

    `kernel` is `(*kernel_size, out_channels, in_channels)`. `"valid"` gives
    `(n - 1) * stride + max(k, stride)`, `"same"` gives `n * stride`; an `output_padding`
    gives `(n - 1) * stride + k + output_padding` (valid) or `... + k % 2 + output_padding`
    (same), with `k` the dilated kernel size.
    """
    inputs, kernel = _float_pair(inputs, kernel)
    x, rank, last = _channels_first(inputs, data_format, "conv_transpose")
    owner = "ops.conv_transpose"
    strides = cu.standardize_tuple(strides, rank, "strides", owner)
    dilation = cu.standardize_tuple(dilation_rate, rank, "dilation_rate", owner)
    padding = cu.standardize_padding(padding, owner)
    extra = (None,) * rank if output_padding is None else cu.standardize_tuple(
        output_padding, rank, "output_padding", owner, allow_zero=True)
    if kernel.shape[-1] != x.shape[1]:
        raise ValueError("ops.conv_transpose: the kernel's last axis must match the input "
                         f"channels. Received: inputs channels={x.shape[1]}, "
                         f"kernel.shape={tuple(kernel.shape)}")
    out = _CONV_T[rank](x, cu.kernel_to_torch(kernel, rank), None, strides, 0, 0, 1, dilation)
    crops = [keras_window(k, s, d, padding, e)
             for k, s, d, e in zip(kernel.shape[:rank], strides, dilation, extra)]
    out = out[(slice(None), slice(None),
               *(slice(max(lo, 0), -hi if hi > 0 else None) for lo, hi in crops))]
    if any(lo < 0 or hi < 0 for lo, hi in crops):
        out = F.pad(out, [p for lo, hi in reversed(crops) for p in (max(-lo, 0), max(-hi, 0))])
    return _back(out, rank, last)


def _pool_args(x, rank, pool_size, strides, padding, op):
    owner = f"ops.{op}"
    pool = cu.standardize_tuple(pool_size, rank, "pool_size", owner)
    strides = pool if strides is None else cu.standardize_tuple(strides, rank, "strides", owner)
    padding = cu.standardize_padding(padding, owner)
    pads = cu.same_padding(tuple(x.shape[2:]), pool, strides, (1,) * rank)
    return pool, strides, padding, pads


@keras_op
def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling over 1 to 3 spatial dims; `strides=None` means `pool_size`."""
    x, rank, last = _channels_first(_float_or_int(inputs), data_format, "max_pool")
    pool, strides, padding, pads = _pool_args(x, rank, pool_size, strides, padding, "max_pool")
    pad = 0
    if padding == "same":
        low = torch.finfo(x.dtype).min if x.is_floating_point() else torch.iinfo(x.dtype).min
        x, pad = cu.pad_for_torch(x, pads, value=low)
    return _back(_MAX[rank](x, pool, strides, pad), rank, last)


@keras_op
def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling over 1 to 3 spatial dims; `"same"` padding is not counted."""
    x, rank, last = _channels_first(_float_or_int(inputs), data_format, "average_pool")
    pool, strides, padding, pads = _pool_args(x, rank, pool_size, strides, padding,
                                              "average_pool")
    if padding == "valid":
        return _back(_AVG[rank](x, pool, strides), rank, last)
    padded, pad = cu.pad_for_torch(x, pads)
    if padded is x:
        out = _AVG[rank](x, pool, strides, pad, count_include_pad=False)
    else:
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        counts = _AVG[rank](cu.pad_for_torch(ones, pads)[0], pool, strides)
        out = _AVG[rank](padded, pool, strides) / counts
    return _back(out, rank, last)


def _float_or_int(x) -> torch.Tensor:
    (x,) = to_tensors(x)
    return x.float() if x.dtype == torch.bool else x


def _adaptive(kind, inputs, output_size, data_format, op):
    (inputs,) = to_tensors(inputs)
    x, rank, last = _channels_first(inputs, data_format, op)
    size = cu.standardize_tuple(output_size, rank, "output_size", f"ops.{op}")
    out = _ADAPTIVE[kind][rank](x, size)
    return _back(out, rank, last)


@keras_op
def adaptive_max_pool(inputs, output_size, data_format=None):
    """Max pooling to a fixed `output_size` (int or one int per spatial dim)."""
    return _adaptive("max", inputs, output_size, data_format, "adaptive_max_pool")


@keras_op
def adaptive_average_pool(inputs, output_size, data_format=None):
    """Average pooling to a fixed `output_size` (int or one int per spatial dim)."""
    return _adaptive("avg", inputs, output_size, data_format, "adaptive_average_pool")


@keras_op
def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks of a channels-first `(N, C, H, W)` `x` as `(N, C * kh * kw, L)`."""
    (x,) = to_tensors(x)
    if x.ndim != 4:
        raise ValueError(f"ops.unfold: x must be 4D. Received: x.shape={tuple(x.shape)}")
    return F.unfold(x, kernel_size, dilation, padding, stride)


@keras_op
def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sums blocks `(N, C * kh * kw, L)` back into `(N, C, *output_size)`; inverse of
    `unfold` up to overlaps."""
    (x,) = to_tensors(x)
    if x.ndim != 3:
        raise ValueError(f"ops.fold: x must be 3D. Received: x.shape={tuple(x.shape)}")
    return F.fold(x, output_size, kernel_size, dilation, padding, stride)


def _block(x, block_size, data_format, op):
    (x,) = to_tensors(x)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 2:
        raise ValueError(f"ops.{op}: block_size must be an integer >= 2. "
                         f"Received: block_size={block_size!r}")
    if x.ndim != 4:
        raise ValueError(f"ops.{op}: x must be 4D. Received: x.shape={tuple(x.shape)}")
    last = cu.standardize_data_format(data_format, f"ops.{op}") == "channels_last"
    return (x.permute(0, 3, 1, 2) if last else x), last


@keras_op
def depth_to_space(x, block_size, data_format="channels_last"):
    """Moves `block_size**2` groups of channels into `block_size x block_size` blocks."""
    x, last = _block(x, block_size, data_format, "depth_to_space")
    b = block_size
    n, c, h, w = x.shape
    if last:  # channels ordered (row, col, channel) within a block
        x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    else:  # channels ordered (channel, row, col)
        x = x.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    x = x.reshape(n, c // (b * b), h * b, w * b)
    return x.permute(0, 2, 3, 1) if last else x


@keras_op
def space_to_depth(x, block_size, data_format="channels_last"):
    """Moves `block_size x block_size` spatial blocks into channels; inverse of
    `depth_to_space`."""
    x, last = _block(x, block_size, data_format, "space_to_depth")
    b = block_size
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // b, b, w // b, b)
    x = x.permute(0, 3, 5, 1, 2, 4) if last else x.permute(0, 1, 3, 5, 2, 4)
    x = x.reshape(n, c * b * b, h // b, w // b)
    return x.permute(0, 2, 3, 1) if last else x


__all__ = module_all()
