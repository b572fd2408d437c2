"""A convolution of zero-padded input without building the padded tensor.

Keras pads asymmetrically (`"same"` with an even total, `ZeroPadding2D(((0, 1), (0, 1)))`
before a stride-2 convolution), which torch's convolutions cannot express: they pad each dim
by the same amount on both sides. Building the padded input costs a fresh activation-sized
buffer (page faults on CPU) and a copy; MobileNetV2 and EfficientNet do it before every
stride-2 block.

Here, per spatial dim with `before` and `after` zeros, torch pads `p = max(before, after)` on
both sides. When `after > before`, torch would read `after - before` zeros where Keras reads
the first rows of the input, so the convolution runs on the input without those rows (a view),
and their contribution is added to the first output rows by a convolution of a thin slab (a
few rows). When `before > after`, torch's extra trailing outputs are dropped.
"""
from __future__ import annotations

import torch

from kestrel.layers.convolutional import conv_utils as cu


def conv_with_pads(conv, x, weight, bias, strides, pads, dilation, groups):
    """`conv(pad(x, pads), weight, bias, strides, 0, dilation, groups)` for channels-first
    `x`, a torch convolution `conv` (`F.conv2d`...) and `pads` ((before, after) per spatial
    dim), without materializing the padded `x`."""
    if all(before == after for before, after in pads):
        return conv(x, weight, bias, strides, tuple(b for b, _ in pads), dilation, groups)
    lost = tuple(max(after - before, 0) for before, after in pads)
    if any(count >= n for count, n in zip(lost, x.shape[2:])):
        return conv(cu.pad(x, pads, 2), weight, bias, strides, 0, dilation, groups)
    main = x
    for dim, count in enumerate(lost, 2):
        if count:
            main = main.narrow(dim, count, x.shape[dim] - count)
    out = conv(main, weight, bias, strides, tuple(max(p) for p in pads), dilation, groups)
    for dim, (before, after) in enumerate(pads):
        if before > after:
            size = _output_size(x.shape[dim + 2], before, after, weight.shape[dim + 2],
                                strides[dim], dilation[dim])
            out = out.narrow(dim + 2, 0, size)
    for dim, count in enumerate(lost):
        if count:
            out = _add_lost_rows(out, conv, x, weight, strides, pads, dilation, groups, dim,
                                 lost)
    return out


def _output_size(n, before, after, kernel, stride, dilation) -> int:
    return (n + before + after - dilation * (kernel - 1) - 1) // stride + 1


def _add_lost_rows(out, conv, x, weight, strides, pads, dilation, groups, dim, lost):
    """`out` plus the contribution of `x`'s first `lost[dim]` positions along spatial `dim`
    (leaving out the positions of earlier dims' lost rows, already added)."""
    axis = dim + 2
    before, _ = pads[dim]
    stride, reach = strides[dim], dilation[dim] * (weight.shape[axis] - 1)
    reached = min((lost[dim] - 1 + before) // stride + 1, out.shape[axis])  # rows they reach
    rows = min(x.shape[axis], stride * (reached - 1) - before + reach + 1)
    if rows <= 0:  # the windows that start in the lost rows' reach end in the padding
        return out
    slab = x.narrow(axis, 0, rows)
    keep = torch.zeros(rows, dtype=x.dtype, device=x.device)
    keep[:lost[dim]] = 1
    slab = slab * keep.view((-1,) + (1,) * (x.dim() - axis - 1))
    for earlier in range(dim):
        if lost[earlier]:
            slab = slab.narrow(earlier + 2, lost[earlier], slab.shape[earlier + 2] - lost[earlier])
    slab_pads = list(pads)
    slab_pads[dim] = (before, stride * (reached - 1) + reach + 1 - before - rows)
    for earlier in range(dim):
        if lost[earlier]:  # the narrowed-off rows were zeros for this slab
            b, a = pads[earlier]
            slab_pads[earlier] = (b + lost[earlier], a)
    slab = cu.pad(slab, tuple(slab_pads), 2)
    out.narrow(axis, 0, reached).add_(conv(slab, weight, None, strides, 0, dilation, groups))
    return out
