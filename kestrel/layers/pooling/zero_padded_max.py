"""Max pooling of a zero-padded input without building it, for a model that fused a
`ZeroPadding` into the `MaxPooling` after it (ResNet's and DenseNet's stems).

torch pads a max pool with -inf, Keras with zeros: the two differ only in the windows that
reach into the padding, where Keras' max is at least 0. So torch pools with its own padding
and those border windows are raised to 0; their gradient goes to no input where the zero won.
A custom backward does that without the clones autograd makes of the whole output gradient
for an in-place change of a view.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_POOL = {2: F.max_pool2d, 3: F.max_pool3d}
_POOL_BACKWARD = {2: torch.ops.aten.max_pool2d_with_indices_backward,
                  3: torch.ops.aten.max_pool3d_with_indices_backward}


def zero_padded_max_pool(x, pool_size, strides, padding):
    """`max_pool(pad(x, padding on both sides, zeros), pool_size, strides)` for channels-first
    `x` of 2 or 3 spatial dims, `padding[i] <= pool_size[i] // 2`."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _ZeroPaddedMaxPool.apply(x, tuple(pool_size), tuple(strides), tuple(padding))
    rank = x.dim() - 2
    out = _POOL[rank](x, pool_size, strides, padding)
    for view in _border_views(out, x.shape[2:], pool_size, strides, padding):
        view.clamp_(min=0)
    return out


def _border_views(out, spatial, pool_size, strides, padding) -> list:
    """Views of `out` holding the windows that reach into the padding (front, then back,
    per spatial dim), with the channels last where `out` lies channels-last in memory."""
    in_memory_order = out if out.is_contiguous() else out.movedim(1, -1)
    first = 2 if in_memory_order is out else 1
    views = []
    for dim, (n, k, s, p) in enumerate(zip(spatial, pool_size, strides, padding), first):
        m = out.shape[dim + 2 - first]
        front = min(-(-p // s), m)  # windows starting in the front padding
        back = max(m - ((p + n - k) // s + 1), 0)  # windows ending in the back padding
        if front:
            views.append(in_memory_order.narrow(dim, 0, front))
        if back:
            views.append(in_memory_order.narrow(dim, m - back, back))
    return views


class _ZeroPaddedMaxPool(torch.autograd.Function):
    """`zero_padded_max_pool` under autograd: torch's pooling with its indices, border
    windows raised in place; the backward drops the gradient of the raised ones and scatters
    the rest as torch's max pooling does."""

    @staticmethod
    def forward(ctx, x, pool_size, strides, padding):
        out, indices = _POOL[x.dim() - 2](x, pool_size, strides, padding, return_indices=True)
        raised = []
        for index, view in enumerate(_border_views(out, x.shape[2:], pool_size, strides,
                                                   padding)):
            below = view < 0
            if below.any():
                view.masked_fill_(below, 0)
                raised.append((index, below))
        ctx.save_for_backward(x, indices)
        ctx.raised, ctx.geometry = raised, (pool_size, strides, padding)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, indices = ctx.saved_tensors
        pool_size, strides, padding = ctx.geometry
        if ctx.raised:
            grad = grad.clone(memory_format=torch.preserve_format)
            views = _border_views(grad, x.shape[2:], pool_size, strides, padding)
            for index, below in ctx.raised:
                views[index].masked_fill_(below, 0)
        rank = x.dim() - 2
        grad_x = _POOL_BACKWARD[rank](grad, x, pool_size, strides, padding, (1,) * rank, False,
                                      indices)
        return grad_x, None, None, None
