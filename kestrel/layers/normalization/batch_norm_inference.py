"""BatchNormalization in inference as one multiply-add per element, bit for bit torch's own.

torch's CPU kernel normalizes with moving statistics as `x * alpha + shift`, one fused
multiply-add per element, with `alpha = rsqrt(variance + epsilon) * gamma` and
`shift = beta - mean * alpha` (fused too). `torch.addcmul` rounds the same way, runs faster
on channels-last images, and writes into any view, such as the interior of a zero-padded
buffer (`padded_activation.after_norm`). Where it is used (float32 on the CPU, no gradient
recorded), a one-time check on this build of torch confirms that both round alike, or it
never applies.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_agrees: bool | None = None  # whether this torch build rounds addcmul as its batch norm

# contiguous inputs from this many elements on run faster here than through `F.batch_norm`,
# whose single dispatch wins on small ones (an MLP's batch: the terms cost four tiny ops)
FASTER_FROM = 1 << 16


def applies(x: torch.Tensor) -> bool:
    """Whether `normalize` serves a BatchNormalization in inference on `x`."""
    if x.dtype != torch.float32 or x.device.type != "cpu" or torch.is_grad_enabled() or \
            torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return False
    return _agrees if _agrees is not None else _check_agreement()


def faster(x: torch.Tensor) -> bool:
    """Whether a BatchNormalization in inference should normalize `x` here (`applies`, and
    faster than torch's kernel: a large contiguous input). `applies` goes first: it is false
    while tracing, where reading the size would put a guard on a symbolic batch."""
    return applies(x) and x.numel() >= FASTER_FROM and x.is_contiguous()


def normalize(layer, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """`layer`'s normalization of `x` with its moving statistics, into `out` where given."""
    alpha, shift = terms(layer, x.dim())
    return torch.addcmul(shift, x, alpha, out=out) if out is not None \
        else torch.addcmul(shift, x, alpha)


def terms(layer, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`layer`'s (alpha, shift), shaped to broadcast along its axis of a rank-`rank` input.
    Computed per call (four tiny ops, cheaper together than `F.batch_norm`'s dispatch): a
    cache could not see weights changed through `.data`, as stateless calls do."""
    return _terms(layer.moving_mean, layer.moving_variance, layer.gamma, layer.beta,
                  layer.epsilon, _shape(layer._axis, rank))


def _shape(axis: int, rank: int) -> list[int]:
    shape = [1] * rank
    shape[axis] = -1
    return shape


def _terms(mean, variance, gamma, beta, epsilon: float, shape) -> tuple:
    """(alpha, shift) as torch's kernel computes them, each reshaped to `shape` (called
    without gradients: `applies`)."""
    mean, variance, gamma, beta = (
        w.float() if w is not None and w.dtype != torch.float32 else w
        for w in (mean, variance, gamma, beta))
    alpha = scale(variance, gamma, epsilon)
    shift = torch.addcmul(beta if beta is not None else torch.zeros_like(mean), mean, alpha,
                          value=-1)
    return alpha.reshape(shape), shift.reshape(shape)


def scale(variance, gamma, epsilon: float) -> torch.Tensor:
    """The per-channel factor `rsqrt(variance + epsilon) * gamma`, as torch's kernel forms
    it (batch norm folding scales kernels by it too)."""
    alpha = torch.rsqrt(variance + float(epsilon))
    return alpha if gamma is None else alpha * gamma


def _check_agreement() -> bool:
    """Compare the multiply-add with `F.batch_norm` once, on channel counts that exercise the
    vector loops and their tails, in both memory formats and on rows."""
    global _agrees
    generator = torch.Generator().manual_seed(0)
    agrees = True
    for channels in (3, 17, 96):
        mean, variance, gamma, beta = (torch.rand(channels, generator=generator) * 2 + offset
                                       for offset in (-1, 0.1, 0.5, -1))
        x = torch.randn(2, channels, 5, 7, generator=generator) * 3
        for data in (x, x.contiguous(memory_format=torch.channels_last),
                     x.permute(0, 2, 3, 1).reshape(-1, channels)):
            alpha, shift = _terms(mean, variance, gamma, beta, 1e-3,
                                  _shape(1, data.dim()))
            expected = F.batch_norm(data, mean, variance, gamma, beta, False, 0.0, 1e-3)
            agrees = agrees and torch.equal(torch.addcmul(shift, data, alpha), expected)
    _agrees = agrees
    return agrees
