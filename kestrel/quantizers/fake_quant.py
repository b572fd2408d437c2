"""`fake_quant_with_min_max_vars`: quantize-dequantize in a trainable `[min, max]` range."""
from __future__ import annotations

import numpy as np
import torch

from kestrel.quantizers.quantizers import _tensor


def _nudge(low, high, num_bits: int, narrow_range: bool):
    """(nudged min, nudged max, scale, 1 / scale) with the zero point on an integer."""
    dtype = torch.promote_types(low.dtype, torch.float32)
    low, high = low.to(dtype), high.to(dtype)
    quant_max, quant_min = (1 << num_bits) - 1, 1 if narrow_range else 0
    scale = (high - low) / (quant_max - quant_min)
    inv_scale = (quant_max - quant_min) / (high - low)
    zero = torch.round(torch.clamp(quant_min - low / scale, quant_min, quant_max))
    return (quant_min - zero) * scale, (quant_max - zero) * scale, scale, inv_scale


class _FakeQuant(torch.autograd.Function):
    """Forward: the fake-quantized inputs; backward: straight through inside the range, the
    rest summed into the gradients of `min_vals` / `max_vals`."""

    @staticmethod
    def forward(ctx, x, low, high, num_bits, narrow_range, axis):
        nudged_min, nudged_max, scale, inv_scale = _nudge(low, high, num_bits, narrow_range)
        if axis is not None:  # per-channel values broadcast along `axis`
            shape = [1] * x.dim()
            shape[axis] = -1
            nudged_min, nudged_max, scale, inv_scale = (
                t.reshape(shape) for t in (nudged_min, nudged_max, scale, inv_scale))
        quant_zero = torch.floor(-nudged_min * inv_scale + 0.5)
        clamped = torch.minimum(torch.maximum(x.to(nudged_min.dtype), nudged_min), nudged_max)
        result = torch.floor((clamped - nudged_min) * inv_scale - quant_zero + 0.5) * scale
        ctx.save_for_backward(x, nudged_min, nudged_max)
        ctx.axis, ctx.shapes = axis, (low.shape, high.shape)
        return result.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, nudged_min, nudged_max = ctx.saved_tensors
        zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
        inside = (x >= nudged_min) & (x <= nudged_max)
        axes = [i for i in range(grad.dim()) if i != ctx.axis]

        def total(mask):
            picked = torch.where(mask, grad, zero)
            return picked.sum(dim=axes) if ctx.axis is not None else picked.sum()

        grad_min = total(x <= nudged_min).reshape(ctx.shapes[0])
        grad_max = total(x >= nudged_max).reshape(ctx.shapes[1])
        return torch.where(inside, grad, zero), grad_min, grad_max, None, None, None


def fake_quant_with_min_max_vars(inputs, min_vals, max_vals, num_bits=8, narrow_range=False,
                                 axis=None):
    """Fake-quantize `inputs` into `[min_vals, max_vals]` on `2**num_bits` levels (from 1 with
    `narrow_range`), per tensor or per channel along `axis`; `min_vals` and `max_vals` get
    gradients from the values clipped to them.

    Example:
        >>> y = fake_quant_with_min_max_vars(torch.tensor([0.1, 0.52, 2.0]), 0.0, 1.0, num_bits=2)
        >>> [round(v, 4) for v in y.tolist()]
        [0.0, 0.6667, 1.0]
    """
    inputs, min_vals, max_vals = (
        v if isinstance(v, torch.Tensor) else _tensor(np.asarray(v, dtype="float32"))
        for v in (inputs, min_vals, max_vals))
    if axis is not None:
        axis = axis + inputs.dim() if axis < 0 else axis
        if not 0 <= axis < inputs.dim():
            raise ValueError("fake_quant_with_min_max_vars: axis is out of bounds for the "
                             f"inputs of rank {inputs.dim()}. Received: axis={axis}")
    return _FakeQuant.apply(inputs, min_vals, max_vals, int(num_bits), bool(narrow_range), axis)
