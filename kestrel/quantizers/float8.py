"""float8 training for Dense and EinsumDense, with Keras 3's variables and delayed scaling.

`layer.quantize("float8")` keeps the float kernel and adds, per tensor, a scale and a history
of absolute maxima (`inputs_*`, `kernel_*`, `outputs_grad_*`). The forward pass runs the
contraction on the inputs and kernel cast through float8_e4m3fn at their scales; the backward
pass casts the output gradient through float8_e5m2. While training, each step records the
new maxima and sets the next scales from the histories (Keras does this through its
optimizer's "overwrite with gradient" variables; here the layer writes them itself, with
the same values at the same steps).
"""
from __future__ import annotations

import torch

from kestrel.quantizers.quantizers import (compute_float8_amax_history, compute_float8_scale,
                                           quantize_and_dequantize)

_E4M3, _E5M2 = ("float8_e4m3fn", 448.0), ("float8_e5m2", 57344.0)
VARIABLES = ("inputs_scale", "inputs_amax_history", "kernel_scale", "kernel_amax_history",
             "outputs_grad_scale", "outputs_grad_amax_history")


def _compute_dtype(layer) -> torch.dtype:
    return layer._autocast_dtype or layer._variable_dtype


def _step(layer, prefix: str, seen: torch.Tensor, fmt) -> torch.Tensor:
    """The current scale of `prefix`; while training, the next scale and history are written
    (from the history before `seen`, as Keras)."""
    scale = getattr(layer, f"{prefix}_scale")
    current = scale.detach().clone()
    if layer.training or prefix == "outputs_grad":
        history = getattr(layer, f"{prefix}_amax_history")
        with torch.no_grad():
            scale.copy_(compute_float8_scale(history.max(), current, fmt[1]))
            history.copy_(compute_float8_amax_history(seen.detach(), history))
    return current


class _ThroughFloat8(torch.autograd.Function):
    """Forward: `x` cast through float8_e4m3fn at `scale`; backward: the gradient as is."""

    @staticmethod
    def forward(ctx, x, scale, dtype):
        return quantize_and_dequantize(x, scale, _E4M3[0], dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


class _Float8Gradient(torch.autograd.Function):
    """Forward: identity; backward: the gradient cast through float8_e5m2."""

    @staticmethod
    def forward(ctx, y, layer):
        ctx.layer = layer
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        layer = ctx.layer
        scale = _step(layer, "outputs_grad", grad, _E5M2)
        return quantize_and_dequantize(grad, scale, _E5M2[0], _compute_dtype(layer)), None


def float8_call(layer, inputs):
    """`layer`'s float8 forward: its `_float8_contract` on the float8-cast inputs and kernel."""
    dtype = _compute_dtype(layer)
    x = _ThroughFloat8.apply(inputs, _step(layer, "inputs", inputs, _E4M3), dtype)
    kernel = _ThroughFloat8.apply(layer.kernel, _step(layer, "kernel", layer.kernel, _E4M3),
                                  dtype)
    y = _Float8Gradient.apply(type(layer)._float8_contract(layer, x, kernel), layer)
    if layer.bias is not None:
        bias = layer.bias
        if dtype is torch.float32:  # Keras rounds a float32 bias through bfloat16 here
            bias = bias.to(torch.bfloat16).to(bias.dtype)
        y = y + bias
    return y if layer.activation is None else layer.activation(y)


def add_variables(layer, history_length: int) -> None:
    """Add the six float32 scale / history variables (non-trainable: the layer sets them)."""
    device = layer.kernel.device
    for name in VARIABLES:
        shape = (history_length,) if name.endswith("history") else ()
        variable = layer.add_weight(name, shape, "zeros" if len(shape) else "ones",
                                    dtype="float32", trainable=False)
        variable.data = variable.data.to(device)
