"""Helpers shared by the convolution, pooling and reshaping layers.

Argument checks with clear errors, Keras' `"same"` padding (which may be asymmetric), the
channels-last <-> channels-first permutations, and the Keras <-> torch kernel layouts.
"""
from __future__ import annotations

import functools
import math
import operator

import torch

from kestrel import config


def owner_of(layer) -> str:
    """`"Conv2D 'conv2d'"`: how error messages name a layer."""
    return f"{type(layer).__name__} '{layer.name}'"


def standardize_tuple(value, n: int, name: str, owner: str, allow_zero: bool = False):
    """`value` (an int or `n` ints) as a tuple of `n` ints, each positive (or >= 0)."""
    items = tuple(value) if isinstance(value, (list, tuple)) else (value,) * n
    try:
        values = tuple(operator.index(v) for v in items)
    except TypeError:
        values = None
    if values is None or len(values) != n or any(isinstance(v, bool) for v in items):
        raise ValueError(
            f"{owner}: {name} must be an integer or a tuple of {n} integers. "
            f"Received: {name}={value!r}")
    if any(v < (0 if allow_zero else 1) for v in values):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{owner}: {name} must be {bound}. Received: {name}={value!r}")
    return values


def standardize_padding(value, owner: str, allowed=("valid", "same")) -> str:
    """The lower-cased padding mode, which must be one of `allowed`."""
    padding = value.lower() if isinstance(value, str) else value
    if padding not in allowed:
        raise ValueError(
            f"{owner}: padding must be one of {', '.join(repr(a) for a in allowed)}. "
            f"Received: padding={value!r}")
    return padding


def standardize_data_format(value, owner: str) -> str:
    """`"channels_last"` or `"channels_first"`; None means the global image data format."""
    try:
        return config.standardize_data_format(value)
    except ValueError:
        raise ValueError(
            f"{owner}: data_format must be 'channels_last' or 'channels_first'. "
            f"Received: data_format={value!r}") from None


@functools.lru_cache(maxsize=1024)
def same_padding(spatial: tuple, kernel: tuple, strides: tuple, dilation: tuple) -> tuple:
    """`(left, right)` per spatial dim for Keras/TF `"same"`: output size `ceil(n / stride)`.

    The total padding is split evenly, the extra element (if any) going at the end.
    """
    pads = []
    for n, k, s, d in zip(spatial, kernel, strides, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def pad_for_torch(x: torch.Tensor, pads: tuple, value: float = 0.0):
    """Apply `pads` ((left, right) per spatial dim of a channels-first `x`).

    Returns `(x, padding)`: symmetric pads are left to the torch op (`padding` is the
    per-dim amount); asymmetric ones are applied here with `F.pad` (`padding` is 0).
    """
    if all(left == right for left, right in pads):
        return x, tuple(left for left, _ in pads)
    return pad(x, pads, 2, value), 0


def pad(x: torch.Tensor, pads: tuple, first: int, value: float = 0.0) -> torch.Tensor:
    """`x` with `value` added around dims `first, first + 1, ...` (`pads`: (before, after) each).

    The result keeps the memory layout of `x` (channels_last stays channels_last); without
    autograd, each element is written once (interior copied, borders filled) instead of
    `F.pad`'s fill-then-copy.

    Example:
        >>> pad(torch.ones(1, 2, 2, 1), ((0, 1), (1, 0)), 1)[0, :, :, 0]
        tensor([[0., 1., 1.],
                [0., 1., 1.],
                [0., 0., 0.]])
    """
    if x.requires_grad and torch.is_grad_enabled():
        flat = [0, 0] * (x.dim() - first - len(pads))
        flat += [amount for pair in reversed(pads) for amount in pair]
        return torch.nn.functional.pad(x, flat, value=value)
    out, interior = padded_buffer(x, pads, first, value)
    interior.copy_(x)
    return out


def padded_buffer(x: torch.Tensor, pads: tuple, first: int, value: float = 0.0):
    """`(out, interior)`: a new tensor of `pad(x, ...)`'s shape, in `x`'s memory layout, with
    only its borders filled with `value`, and the view of it where `x` goes."""
    shape = list(x.shape)
    for dim, (before, after) in enumerate(pads, first):
        shape[dim] += before + after
    order = sorted(range(x.dim()), key=lambda d: -x.stride(d))  # outermost dim first
    out = x.new_empty([shape[d] for d in order]).permute([order.index(d) for d in range(x.dim())])
    interior = out
    for dim, (before, after) in enumerate(pads, first):
        if before:
            out.narrow(dim, 0, before).fill_(value)
        if after:
            out.narrow(dim, shape[dim] - after, after).fill_(value)
        interior = interior.narrow(dim, before, x.shape[dim])
    return out, interior


def channel_permutations(rank: int) -> tuple[tuple, tuple]:
    """Permutations channels-last -> channels-first and back for `rank` spatial dims."""
    return (0, rank + 1, *range(1, rank + 1)), (0, *range(2, rank + 2), 1)


def permuted(x: torch.Tensor, permutation: tuple) -> torch.Tensor:
    """`x.permute(permutation)`; when that is exactly the tensor `x` is a view of (a
    channels-last layer's output read by the next layer), that tensor itself. Then every
    reader of a layer's output reaches the same node in backward, where autograd sums
    their gradients in place instead of into a fresh buffer (as for torchvision's NCHW
    tensors). `x` is then marked `_base_read`: its base may be saved for backward where
    nothing about `x` shows it, so it must not be overwritten (`models.handover`)."""
    view = x.permute(permutation)
    base = x._base
    if base is None or base.dtype != x.dtype or base.requires_grad != x.requires_grad or \
            base.shape != view.shape or base.stride() != view.stride() or \
            base.storage_offset() != view.storage_offset() or torch.compiler.is_compiling():
        return view
    x._base_read = True
    return base


def conv_output_length(length, kernel: int, stride: int, dilation: int, padding: str):
    """Output length of a convolution or pooling window along one dimension (None stays None)."""
    if length is None:
        return None
    if padding == "valid":
        return (length - (kernel - 1) * dilation - 1) // stride + 1
    return (length - 1) // stride + 1  # "same" and "causal"


def kernel_to_torch(kernel: torch.Tensor, rank: int) -> torch.Tensor:
    """Keras `(k..., a, b)` -> torch `(b, a, k...)` (conv `(out, in)`, transpose `(in, out)`).

    Copied as two cache-friendly transposes, `(k*a, b) -> (b, k*a)` then `(b, k, a) -> (b, a, k)`:
    one 4-d permutation copy of a large kernel is several times slower.
    """
    *window, a, b = kernel.shape
    size = math.prod(window)
    columns = kernel.reshape(size * a, b).t().contiguous()
    return columns.view(b, size, a).transpose(1, 2).contiguous().view(b, a, *window)


def kernel_to_keras(kernel: torch.Tensor, rank: int) -> torch.Tensor:
    """Torch `(b, a, k...)` -> Keras `(k..., a, b)`; inverse of `kernel_to_torch`."""
    return kernel.permute(*range(2, rank + 2), 1, 0)


def kernel_layout(rank: int) -> tuple:
    """The `(to_torch, to_keras)` pair `add_weight` takes for a conv or transpose kernel."""
    return (functools.partial(kernel_to_torch, rank=rank),
            functools.partial(kernel_to_keras, rank=rank))


def depthwise_to_torch(kernel: torch.Tensor, rank: int) -> torch.Tensor:
    """Keras `(k..., in, mult)` -> torch grouped weight `(in * mult, 1, k...)`."""
    merged = kernel.reshape(*kernel.shape[:rank], 1, kernel.shape[-2] * kernel.shape[-1])
    return kernel_to_torch(merged, rank)


def depthwise_to_keras(kernel: torch.Tensor, rank: int, multiplier: int) -> torch.Tensor:
    """Torch `(in * mult, 1, k...)` -> Keras `(k..., in, mult)`; torch row `c * mult + m` is
    Keras `[..., c, m]`."""
    spatial = kernel_to_keras(kernel, rank)
    return spatial.reshape(*spatial.shape[:rank], -1, multiplier)


def depthwise_layout(rank: int, multiplier: int) -> tuple:
    """The `(to_torch, to_keras)` pair for a depthwise kernel."""
    return (functools.partial(depthwise_to_torch, rank=rank),
            functools.partial(depthwise_to_keras, rank=rank, multiplier=multiplier))
