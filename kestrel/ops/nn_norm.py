"""Statistics, normalizations, attention and `polar` of `kestrel.ops.nn`.

>>> mean, variance = moments([[1.0, 3.0]], axes=[1])
>>> mean, variance
(tensor([2.]), tensor([1.]))
"""
from __future__ import annotations

import builtins

import torch
import torch.nn.functional as F

from kestrel import config
from kestrel.backend.dtypes import result_type
from kestrel.ops.convert import dtype_of, float_result, promote, to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all


def _axes(axis, ndim: int) -> list[int]:
    items = [axis] if isinstance(axis, int) else list(axis)
    return sorted(a % ndim for a in items)


@keras_op
def moments(x, axes, keepdims=False, synchronized=False):
    """Mean and variance of `x` over `axes`, in x's float dtype (float64 stays float64; float16
    is computed in float32); integers and bools give floatx."""
    if synchronized:
        raise NotImplementedError("ops.moments: synchronized=True is not supported.")
    (x,) = to_tensors(x)
    dtype = x.dtype if x.is_floating_point() else torch_dtype(float_result(x))
    work = x.float() if dtype in (torch.float16, torch.bfloat16) else x.to(dtype)
    dims = _axes(axes, x.ndim)
    mean = work.mean(dims, keepdim=True)
    variance = (work * work).mean(dims, keepdim=True) - mean * mean
    if not keepdims:
        mean, variance = mean.squeeze(dims), variance.squeeze(dims)
    if work.dtype != dtype:
        info = torch.finfo(dtype)
        mean, variance = (v.clamp(info.min, info.max).to(dtype) for v in (mean, variance))
    return mean, variance


@keras_op
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """`(x - mean) / sqrt(variance + epsilon) * scale + offset`, the 1-D statistics laid
    along `axis` of `x`."""
    x, mean, variance = to_tensors(x, mean, variance)
    shape = [1] * x.ndim
    shape[axis] = -1
    factor = torch.rsqrt(variance.reshape(shape) + epsilon)
    if scale is not None:
        factor = factor * to_tensors(x, scale)[1].reshape(shape)
    out = (x - mean.reshape(shape)) * factor
    if offset is not None:
        out = out + to_tensors(x, offset)[1].reshape(shape)
    return out


@keras_op
def normalize(x, axis=-1, order=2, epsilon=None):
    """`x` divided by its `order`-norm along `axis` (at least `epsilon`)."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"ops.normalize: argument `order` must be an int >= 1. "
                         f"Received: order={order!r}")
    (x,) = to_tensors(x)
    if not x.is_floating_point():
        x = x.to(torch_dtype(float_result(x)))
    if x.ndim == 0:
        x = x.unsqueeze(0)
    epsilon = config.epsilon() if epsilon is None else epsilon
    if order == 2:
        inverse = torch.rsqrt((x * x).sum(axis, keepdim=True))
        return x * torch.minimum(inverse, inverse.new_tensor(1.0 / epsilon))  # inf in float16
    norm = torch.linalg.vector_norm(x, ord=order, dim=axis, keepdim=True)
    return x / torch.maximum(norm, norm.new_tensor(epsilon))


def _contiguous_tail(axes: list[int], ndim: int) -> bool:
    return axes == list(range(ndim - len(axes), ndim))


@keras_op
def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, **kwargs):
    """Normalizes `x` to zero mean and unit variance over `axis`, then `* gamma + beta`.

    Computed in at least float32; the result has `x`'s dtype. `rms_scaling=True` (deprecated
    in Keras) divides by the standard deviation without centering.
    """
    rms_scaling = kwargs.pop("rms_scaling", False)
    if kwargs:
        raise TypeError(f"ops.layer_normalization: unexpected arguments {sorted(kwargs)}")
    (x,) = to_tensors(x)
    original = x.dtype
    x = x.to(torch_dtype(result_type(dtype_of(x), "float32")))
    gamma, beta = (None if v is None else to_tensors(x, v, dtype=x.dtype)[1]
                   for v in (gamma, beta))
    epsilon = config.epsilon() if epsilon is None else epsilon
    axes = _axes(axis, x.ndim)
    normalized = tuple(x.shape[a] for a in axes)
    shape = [x.shape[d] if d in axes else 1 for d in range(x.ndim)]
    if rms_scaling:
        out = x * torch.rsqrt(x.var(axes, keepdim=True, unbiased=False) + epsilon)
        out = out if gamma is None else out * gamma.reshape(shape)
    elif _contiguous_tail(axes, x.ndim):
        out = F.layer_norm(x, normalized, None if gamma is None else gamma.reshape(normalized),
                           None if beta is None else beta.reshape(normalized), epsilon)
    else:
        mean, variance = moments.raw(x, axes, keepdims=True)
        out = (x - mean) * torch.rsqrt(variance + epsilon)
        out = out if gamma is None else out * gamma.reshape(shape)
        out = out if beta is None else out + beta.reshape(shape)
    return out.to(original)


@keras_op
def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    """`x / sqrt(mean(x**2 over axis) + epsilon) * scale`, computed in at least float32."""
    (x,) = to_tensors(x)
    original = x.dtype
    x = x.to(torch_dtype(result_type(dtype_of(x), "float32")))
    if x.ndim == 0:
        x = x.unsqueeze(0)
    epsilon = config.epsilon() if epsilon is None else epsilon
    axes = _axes(axis, x.ndim)
    out = x * torch.rsqrt((x * x).mean(axes, keepdim=True) + epsilon)
    if scale is not None:
        out = out * to_tensors(x, scale, dtype=x.dtype)[1]
    return out.to(original)


def _large_negative(dtype: torch.dtype) -> float:
    return -0.7 * (65500.0 if dtype == torch.float16 else 3.38953e38)


@keras_op
def dot_product_attention(query, key, value, bias=None, mask=None, scale=None,
                          is_causal=False, flash_attention=None, attn_logits_soft_cap=None):
    """Scaled dot-product attention on `(batch, time, heads, dim)` tensors.

    `key`/`value` may have fewer heads that divide the query heads (grouped-query attention).
    `bias` is added to the logits; boolean `mask` (True = attend) broadcasts to
    `(batch, heads, q_time, kv_time)`; only one of them may be given. `scale` defaults to
    `1 / sqrt(dim)`. `flash_attention` is a hint: torch picks its fused kernel itself.
    """
    if attn_logits_soft_cap is not None:
        raise ValueError("ops.dot_product_attention: attn_logits_soft_cap is not supported. "
                         f"Received: attn_logits_soft_cap={attn_logits_soft_cap!r}")
    if bias is not None and mask is not None:
        raise ValueError("ops.dot_product_attention: only one of `bias` and `mask` can be "
                         "provided. Received both.")
    query, key, value = promote(query, key, value)
    if builtins.any(t.ndim != 4 for t in (query, key, value)):
        raise ValueError("ops.dot_product_attention: only 4D inputs are supported. Received: "
                         f"query.shape={tuple(query.shape)}, key.shape={tuple(key.shape)}, "
                         f"value.shape={tuple(value.shape)}")
    attn = None
    if mask is not None:
        mask = to_tensors(query, mask, dtype="bool")[1]
        if is_causal:
            mask = mask & torch.ones(query.shape[1], key.shape[1], dtype=torch.bool,
                                     device=query.device).tril()
            is_causal = False
        attn = torch.where(mask, 0.0, _large_negative(query.dtype)).to(query.dtype)
    elif bias is not None:
        attn = to_tensors(query, bias, dtype=query.dtype)[1]
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))
    if q.shape[1] > k.shape[1] > 1:
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn, is_causal=is_causal,
                                         scale=scale, enable_gqa=k.shape[1] == 1)
    return out.transpose(1, 2)


@keras_op
def polar(abs_, angle):
    """The complex number `abs_ * (cos(angle) + i sin(angle))` (complex128 from a float64
    argument, as Keras' torch backend)."""
    wide = "float64" in (dtype_of(abs_), dtype_of(angle))
    abs_, angle = promote(abs_, angle, dtype="float64" if wide else float_result(abs_, angle))
    return torch.polar(abs_, angle)


__all__ = module_all()
