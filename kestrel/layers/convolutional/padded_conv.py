"""A convolution of zero-padded input without building the padded tensor.

Keras pads asymmetrically (`"same"` with an odd total, `ZeroPadding2D(((0, 1), (0, 1)))`
before a stride-2 convolution), which torch's convolutions cannot express: they pad each dim
by the same amount on both sides. Building the padded input costs a fresh input-sized buffer
(page faults on CPU) and a copy; MobileNetV2 and EfficientNet do it before every stride-2
block.

Here, per spatial dim with `before` and `after` zeros, torch pads `before` on both sides, so
its windows start where Keras' do. Where `after > before`, that leaves out the last few output
rows (those whose windows reach into the extra zeros): they are convolved from a thin slab of
the input's last rows, and joined to the rest. Where `before > after`, torch's extra trailing
outputs are dropped. The joins copy output-sized data, a quarter of the input after a stride
of 2. When autograd wants the input's gradient, the input is padded as before: a slab's
gradient would come back as a zero-filled input-sized buffer (in NCHW memory, which then slows
the layers before it), costing more than the padding saves.
"""
from __future__ import annotations

import math

import torch

from kestrel.layers.convolutional import conv_utils as cu


def conv_with_pads(conv, x, weight, bias, strides, pads, dilation, groups):
    """`conv(pad(x, pads), weight, bias, strides, 0, dilation, groups)` for channels-first
    `x`, a torch convolution `conv` (`F.conv2d`...) and `pads` ((before, after) per spatial
    dim), without materializing the padded `x`."""
    spatial = x.shape[2:]
    reach = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    wanted = [(n + b + a - r - 1) // s + 1
              for n, (b, a), r, s in zip(spatial, pads, reach, strides)]
    if all(b == a for b, a in pads):
        return conv(x, weight, bias, strides, tuple(b for b, _ in pads), dilation, groups)
    first = [(n + 2 * b - r - 1) // s + 1 for n, (b, _), r, s in zip(spatial, pads, reach,
                                                                     strides)]
    out_size = x.shape[0] * weight.shape[0] * math.prod(wanted)
    if min(wanted) <= 0 or min(first) <= 0 or out_size >= x.numel() or \
            x.requires_grad and torch.is_grad_enabled():
        # a window wider than the input; an output larger than the input (a stem convolution
        # of 3 channels), where padding the input costs less than joining outputs; or a
        # gradient for `x`, which each slab would return as a zero-filled input-sized buffer
        return conv(cu.pad(x, pads, 2), weight, bias, strides, 0, dilation, groups)
    out = conv(x, weight, bias, strides, tuple(b for b, _ in pads), dilation, groups)
    for dim, size in enumerate(wanted):
        if out.shape[dim + 2] > size:  # before > after: outputs Keras does not compute
            out = out.narrow(dim + 2, 0, size)
    tails = {dim: _tail(conv, x, weight, bias, strides, pads, dilation, groups, dim, done,
                        size - done)
             for dim, (done, size) in enumerate(zip(out.shape[2:], wanted)) if done < size}
    if out.requires_grad:  # for the weights only
        for dim, tail in tails.items():
            out = torch.cat([out, tail], dim + 2)
        return out
    return _assemble(out, tails)


def _tail(conv, x, weight, bias, strides, pads, dilation, groups, dim, first, count):
    """The `count` outputs from `first` on along spatial `dim`: Keras' padding along `dim`
    and the dims before it (already complete), and at most `before` zeros after the dims
    after it (as many outputs as torch's convolution gave there)."""
    axis, n = dim + 2, x.shape[dim + 2]
    before, _ = pads[dim]
    stride, reach = strides[dim], dilation[dim] * (weight.shape[axis] - 1)
    start = stride * first - before  # the first (padded) row the first missing window reads
    end = stride * (first + count - 1) - before + reach + 1
    low = min(max(start, 0), n)
    high = max(min(end, n), low)
    slab = x.narrow(axis, low, high - low)
    lead = max(low - start, 0)
    slab_pads = [*pads[:dim], (lead, end - start - lead - (high - low)),
                 *((b, min(a, b)) for b, a in pads[dim + 1:])]
    return conv(cu.pad(slab, tuple(slab_pads), 2), weight, bias, strides, 0, dilation, groups)


def _assemble(head: torch.Tensor, tails: dict) -> torch.Tensor:
    """`head` joined with `tails` (spatial dim -> the outputs after `head` along it) in one
    buffer laid out as `head` (what `torch.cat` along each dim gives, with one copy)."""
    out = cu.pad(head, tuple((0, tails[d].shape[d + 2] if d in tails else 0)
                             for d in range(head.dim() - 2)), 2)
    for dim, tail in tails.items():
        region = out
        for other in range(2, out.dim()):
            if other != dim + 2:
                region = region.narrow(other, 0, tail.shape[other])
        region.narrow(dim + 2, head.shape[dim + 2], tail.shape[dim + 2]).copy_(tail)
    return out
