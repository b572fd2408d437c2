"""Writing an elementwise result into a tensor a model handed over (`Layer._in_place`).

Kestrel's channels-last layers return views: a convolution or BatchNormalization computes an
NCHW tensor (in channels_last memory) and returns it permuted to NHWC. Writing into such a
view while autograd records is expensive (autograd rebuilds the base's gradient through a
full copy), so the result is written into the base itself and the view taken again.
"""
from __future__ import annotations

from typing import Callable

import torch


def relayout(x: torch.Tensor, base: torch.Tensor):
    """`(to_base, from_base)` when the view `x` is all of `base` in another arrangement (a
    reshape of a contiguous base, or a permutation of its axes): functions taking an
    `x`-shaped tensor to `base`'s shape and back. None for any other view."""
    if x.numel() != base.numel() or x.storage_offset() != base.storage_offset():
        return None
    if x.is_contiguous() and base.is_contiguous():
        return (lambda t: t.reshape(base.shape)), (lambda t: t.view(x.shape))
    if x.dim() != base.dim():
        return None
    free = list(range(base.dim()))
    order = []
    for size, stride in zip(x.shape, x.stride()):
        match = next((d for d in free if base.shape[d] == size and
                      (size == 1 or base.stride(d) == stride)), None)
        if match is None:
            return None
        free.remove(match)
        order.append(match)
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return (lambda t: t.permute(inverse)), (lambda t: t.permute(order))


def apply(fn: Callable, x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """`fn(x, *others)` for an in-place `fn` (it writes into its first argument), written into
    `x`'s base when `x` is a whole-base view (see `relayout`); returns the result in `x`'s
    shape."""
    base = x._base
    layout = None if base is None else relayout(x, base)
    if layout is None:
        return fn(x, *others)
    to_base, from_base = layout
    return from_base(fn(base, *(to_base(t) for t in others)))
