"""Multi-tensor helpers for the optimizers: fused-kernel eligibility, scaled updates, clipping.

Scalars that change every step (the learning rate and step-dependent factors) are Python
floats in eager mode and 0-d tensors under `torch.compile`; the helpers accept both, using
torch's scalar fast paths for floats.
"""
from __future__ import annotations

import torch

Scalar = float | torch.Tensor

_CPU_FUSED = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)


def fusable(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused optimizer kernels can take `params` (one device and float dtype)."""
    device, dtype = params[0].device, params[0].dtype
    supported = device.type == "cuda" or (device.type == "cpu" and _CPU_FUSED)
    return supported and dtype.is_floating_point and all(
        p.device == device and p.dtype == dtype for p in params)


def add_scaled_(xs: list, ys: list, scale: Scalar) -> None:
    """`x += scale * y` for each pair."""
    if isinstance(scale, torch.Tensor):
        torch._foreach_add_(xs, torch._foreach_mul(ys, scale))
    else:
        torch._foreach_add_(xs, ys, alpha=scale)


def addcdiv_(xs: list, numerators: list, denominators: list, scale: Scalar) -> None:
    """`x += scale * n / d` for each triple."""
    if isinstance(scale, torch.Tensor):
        quotients = torch._foreach_div(numerators, denominators)
        torch._foreach_mul_(quotients, scale)
        torch._foreach_add_(xs, quotients)
    else:
        torch._foreach_addcdiv_(xs, numerators, denominators, value=scale)


def decay_(params: list, learning_rate: Scalar, weight_decay: float) -> None:
    """Keras' decoupled weight decay: `var -= var * weight_decay * learning_rate`."""
    torch._foreach_mul_(params, 1 - learning_rate * weight_decay)


def clip_by_value_(grads: list, clipvalue: float) -> None:
    """Clamp every gradient element to `[-clipvalue, clipvalue]`."""
    torch._foreach_clamp_min_(grads, -clipvalue)
    torch._foreach_clamp_max_(grads, clipvalue)


def clip_by_norm_(grads: list, clipnorm: float) -> None:
    """Rescale each gradient to L2 norm at most `clipnorm`: `g * clipnorm / max(|g|, clipnorm)`."""
    norms = torch._foreach_norm(grads)
    torch._foreach_clamp_min_(norms, clipnorm)
    torch._foreach_reciprocal_(norms)
    torch._foreach_mul_(norms, clipnorm)
    torch._foreach_mul_(grads, norms)


def clip_by_global_norm_(grads: list, clipnorm: float) -> None:
    """Rescale all gradients together so their joint L2 norm is at most `clipnorm`.

    Keras' formula `scale = clipnorm * min(1 / norm, 1 / clipnorm)`; a non-finite norm makes
    every gradient NaN, as in Keras. No host sync: the scale stays a device tensor.
    """
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    scale = torch.clamp(total.reciprocal(), max=1.0 / clipnorm) * clipnorm + (total - total)
    torch._foreach_mul_(grads, scale)
