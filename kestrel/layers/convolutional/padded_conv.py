"""A convolution of zero-padded input without building the padded tensor.

Keras pads asymmetrically (`"same"` with an odd total, `ZeroPadding2D(((0, 1), (0, 1)))`
before a stride-2 convolution), which torch's convolutions cannot express: they pad each dim
by the same amount on both sides. Building the padded input costs a fresh input-sized buffer
(page faults on CPU) and a copy, and its gradient another; MobileNetV2 and EfficientNet do it
before every stride-2 block.

Here, per spatial dim with `before` and `after` zeros, torch pads `before` on both sides, so
its windows start where Keras' do. Where `after > before`, that leaves out the last few output
rows (those whose windows reach into the extra zeros): they are convolved from a thin slab of
the input's last rows, and joined to the rest. Where `before > after`, torch's extra trailing
outputs are dropped. The joins copy output-sized data, a quarter of the input after a stride
of 2. Under autograd, `_JoinedConv` takes the gradients the same way for a large CPU input: the
main convolution's backward gives the input's gradient, each slab adds its few rows to it
(MobileNetV2's stride-2 blocks at 224x224, batch 32, forward and backward: 190 ms instead of
320 ms). A small input is padded instead: there its extra calls cost more than the copy.
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
            _grad_wanted(x, weight, bias) and not _joins_under_autograd(x, pads):
        # a window wider than the input; an output larger than the input (a stem convolution
        # of 3 channels), where padding the input costs less than joining outputs; or
        # gradients in a setting `_JoinedConv` leaves to autograd
        return conv(cu.pad(x, pads, 2), weight, bias, strides, 0, dilation, groups)
    geometry = (conv, tuple(strides), tuple(pads), tuple(dilation), groups, tuple(wanted))
    if _grad_wanted(x, weight, bias):
        return _JoinedConv.apply(x, weight, bias, geometry, tuple(first))
    return _joined(x, weight, bias, geometry)


def _grad_wanted(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# inputs from this many elements on are joined under autograd: 32 MiB of float32, where a
# padded copy always lands in fresh memory (glibc's largest reuse threshold)
JOIN_UNDER_AUTOGRAD_FROM = 1 << 23


def _joins_under_autograd(x, pads) -> bool:
    """Whether `_JoinedConv` serves these gradients: a large input on the CPU (where it was
    measured), zeros after at least as many as before (Keras' cases), and no autocast,
    compilation or functorch transform (which would need their own rules); elsewhere autograd
    differentiates the padding."""
    return x.device.type == "cpu" and x.numel() >= JOIN_UNDER_AUTOGRAD_FROM and \
        all(a >= b for b, a in pads) and \
        not torch.is_autocast_enabled(x.device.type) and not torch.compiler.is_compiling() \
        and not torch._C._are_functorch_transforms_active()


def _joined(x, weight, bias, geometry):
    """The convolution of `pad(x, pads)`: torch's symmetric `before` padding, trailing rows
    dropped or convolved from slabs (`_slab`), all joined in one buffer."""
    conv, strides, pads, dilation, groups, wanted = geometry
    out = conv(x, weight, bias, strides, tuple(b for b, _ in pads), dilation, groups)
    for dim, size in enumerate(wanted):
        if out.shape[dim + 2] > size:  # before > after: outputs Keras does not compute
            out = out.narrow(dim + 2, 0, size)
    tails = {}
    for dim, (done, size) in enumerate(zip(out.shape[2:], wanted)):
        if done < size:
            slab, _ = _slab(x, weight, geometry, dim, done, size - done)
            tails[dim] = conv(slab, weight, bias, strides, 0, dilation, groups)
    return _assemble(out, tails)


def _slab(x, weight, geometry, dim, first, count):
    """The padded input rows that give the `count` outputs from `first` on along spatial
    `dim`: Keras' padding along `dim` and the dims before it (already complete), and at most
    `before` zeros after the dims after it (as many outputs as torch's convolution gave
    there). Returns `(slab, (start, length) along each spatial dim of x in it)`."""
    _, strides, pads, dilation, _, _ = geometry
    axis, n = dim + 2, x.shape[dim + 2]
    before, _ = pads[dim]
    stride, reach = strides[dim], dilation[dim] * (weight.shape[axis] - 1)
    start = stride * first - before  # the first (padded) row the first missing window reads
    end = stride * (first + count - 1) - before + reach + 1
    low = min(max(start, 0), n)
    high = max(min(end, n), low)
    lead = max(low - start, 0)
    slab_pads = (*pads[:dim], (lead, end - start - lead - (high - low)),
                 *((b, min(a, b)) for b, a in pads[dim + 1:]))
    inside = [(b, size) for (b, _), size in zip(slab_pads, x.shape[2:])]
    inside[dim] = (lead, high - low)
    return cu.pad(x.narrow(axis, low, high - low), slab_pads, 2), (low, inside)


def _assemble(head: torch.Tensor, tails: dict) -> torch.Tensor:
    """`head` joined with `tails` (spatial dim -> the outputs after `head` along it) in one
    buffer laid out as `head` (what `torch.cat` along each dim gives, with one copy)."""
    out = cu.pad(head, tuple((0, tails[d].shape[d + 2] if d in tails else 0)
                             for d in range(head.dim() - 2)), 2)
    for dim, tail in tails.items():
        _region(out, tail.shape, dim, head.shape[dim + 2]).copy_(tail)
    return out


def _region(out: torch.Tensor, shape, dim: int, start: int) -> torch.Tensor:
    """The part of `out` a tail of `shape` fills: from `start` along spatial `dim`, from 0
    along the others."""
    region = out
    for other in range(2, out.dim()):
        region = region.narrow(other, start if other == dim + 2 else 0, shape[other])
    return region


class _JoinedConv(torch.autograd.Function):
    """`_joined` with its own backward (zeros after >= before in every dim): the gradients
    of the main convolution, plus each slab's rows added into the input's gradient, with no
    input-sized padded buffer either way. Differentiable again (its backward is made of
    convolution backwards)."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry, first):
        """`first`: per spatial dim, how many outputs torch's convolution gives (the rest come
        from slabs)."""
        ctx.save_for_backward(x, weight)
        ctx.geometry, ctx.first, ctx.has_bias = geometry, first, bias is not None
        return _joined(x, weight, bias, geometry)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        conv, strides, pads, dilation, groups, _ = geometry = ctx.geometry
        wants_x, wants_w, wants_b = ctx.needs_input_grad[:3]
        mask = (wants_x, wants_w, wants_b and ctx.has_bias)
        bias_sizes = [weight.shape[0]] if ctx.has_bias else None
        done = ctx.first
        head = grad
        for dim, size in enumerate(done):
            head = head.narrow(dim + 2, 0, size)
        grads = torch.ops.aten.convolution_backward(
            head, x, weight, bias_sizes, strides, [b for b, _ in pads], dilation, False,
            [0] * len(strides), groups, mask)
        grad_x, grad_w, grad_b = grads
        for dim, (size, total) in enumerate(zip(done, grad.shape[2:])):
            if size == total:
                continue
            slab, (low, inside) = _slab(x, weight, geometry, dim, size, total - size)
            part = _region(grad, (*grad.shape[:2], *grad.shape[2:dim + 2], total - size,
                                  *done[dim + 1:]), dim, size)
            gx, gw, gb = torch.ops.aten.convolution_backward(
                part, slab, weight, bias_sizes, strides, [0] * len(strides), dilation, False,
                [0] * len(strides), groups, mask)
            if wants_x:
                for axis, (start, length) in enumerate(inside, 2):
                    gx = gx.narrow(axis, start, length)
                grad_x.narrow(dim + 2, low, gx.shape[dim + 2]).add_(gx)
            grad_w = grad_w + gw if wants_w else None
            grad_b = grad_b + gb if mask[2] else None
        return grad_x, grad_w, grad_b, None, None
