"""int8 weights for Dense, EinsumDense and Embedding, with Keras 3's variables and numbers.

`layer.quantize("int8")` (see `layer_mixin.Quantizable`) replaces the float kernel by an int8
`kernel` (abs-max per output channel, or the config's weight quantizer) and a float
`kernel_scale` (Embedding: `embeddings` and `embeddings_scale` per row), both non-trainable,
and swaps the layer's `call` for an int8 one: the float path keeps no extra branch. Dense and
EinsumDense quantize their inputs on the fly with `layer.inputs_quantizer` (default abs-max
over the contracted axes; None: float inputs), multiply the integer values (in the float
dtype: exact, as Keras' int32 product, while a contraction sums at most 1040 terms) and divide
by both scales; gradients reach the inputs through the dequantized kernel, as Keras' custom
gradient does.
"""
from __future__ import annotations

import string

import torch

from kestrel.quantizers.quantizers import _EPSILON, _tensor


def _abs_max(x: torch.Tensor, axes: tuple, top: float = 127.0):
    """`(round(x * scale) clipped to [-top, top] (int4: [-8, 7]), scale)` in x's float dtype;
    scale keeps `axes`."""
    amax = x.abs().amax(dim=axes, keepdim=True) if axes else x.abs()
    scale = torch.div(torch.tensor(top, dtype=amax.dtype, device=amax.device),
                      amax + _EPSILON).to(x.dtype)  # not `127 / t`: torch rounds that differently
    low = -top if top > 7 else -8.0
    return torch.clamp(torch.round(x * scale), low, top), scale


class _StraightThrough(torch.autograd.Function):
    """Forward `quantized(x)`; backward as `dequantized(x)` (the float kernel's gradient)."""

    @staticmethod
    def forward(ctx, x, quantized, dequantized):
        ctx.save_for_backward(x)
        ctx.dequantized = dequantized
        return quantized(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            out = ctx.dequantized(x)
        return torch.autograd.grad(out, x, grad)[0], None, None


def _finish(layer, x):
    if layer.bias is not None:
        x = x + layer.bias
    if layer._autocast_dtype is not None:  # mixed policies: outputs in the compute dtype
        x = x.to(layer._autocast_dtype)
    return x if layer.activation is None else layer.activation(x)


def quantize_inputs(layer, x, axes):
    """`layer.inputs_quantizer(x, axis=axes)` (values as floats, scale), or `(x, None)` when
    the layer has no inputs quantizer (weight-only)."""
    quantizer = layer.inputs_quantizer
    if quantizer is None:
        return x, None
    q, scale = quantizer(x, axis=axes)
    return _tensor(q).to(x.dtype), _tensor(scale).to(x.dtype)


def weight_quantizer(layer, kernel, default):
    """`(q, scale)` of the config's weight quantizer (called as Keras: no axis), else
    `default(kernel)`."""
    quantizer = getattr(layer._quantization_config, "weight_quantizer", None)
    if quantizer is None:
        return default(kernel)
    q, scale = quantizer(kernel, to_numpy=True)
    return _tensor(q), _tensor(scale).to(kernel.dtype)


def dense_call(layer, inputs):
    """Dense's int8 forward: `(q(inputs) @ kernel) / (kernel_scale * inputs_scale)`."""
    kernel, kernel_scale = layer.kernel, layer.kernel_scale

    def quantized(x):
        q, scale = quantize_inputs(layer, x, -1)
        scale = kernel_scale if scale is None else kernel_scale * scale
        return torch.matmul(q, kernel.to(q.dtype)) / scale

    return _finish(layer, _StraightThrough.apply(
        inputs, quantized, lambda x: torch.matmul(x, kernel.to(x.dtype) / kernel_scale)))


def einsum_call(layer, inputs):
    """EinsumDense's int8 forward: the same, with the equation's contracted axes."""
    ins, ws, outs = layer._int8_specs
    kernel, kernel_scale = layer.kernel, layer.kernel_scale
    reduced = tuple(i for i, c in enumerate(ins) if c not in outs)

    def quantized(x):
        q, scale = quantize_inputs(layer, x, reduced)
        if scale is not None:
            scale = to_output_layout(scale, ins, outs) * kernel_scale
        return torch.einsum(layer.equation, q, kernel.to(q.dtype)) / (
            kernel_scale if scale is None else scale)

    def dequantized(x):
        scale = from_output_layout(kernel_scale, ws, outs, kernel.shape)
        return torch.einsum(layer.equation, x, kernel.to(x.dtype) / scale)

    return _finish(layer, _StraightThrough.apply(inputs, quantized, dequantized))


def embedding_call(layer, inputs):
    """Embedding's int8 lookup: the int8 rows divided by their scales."""
    if inputs.dtype not in (torch.int32, torch.int64):
        inputs = inputs.long()
    dtype = layer._autocast_dtype or layer._variable_dtype
    scale = layer.embeddings_scale[inputs].unsqueeze(-1).to(dtype)
    return layer.embeddings[inputs].to(dtype) / scale


def full_specs(equation: str, ndim: int) -> tuple[str, str, str]:
    """(input, kernel, output) subscripts of `equation` with `...` given letters, as Keras."""
    left, out = equation.replace("...", "0").split("->")
    ins, ws = left.split(",")
    spare = sorted(set(string.ascii_letters) - set(ins + ws + out))
    elided = "".join(spare[:ndim - len(ins) + 1])
    if ins.startswith("0"):
        return elided + ins[1:], ws, elided + out[1:]
    return ins.replace("0", elided), ws, out.replace("0", elided)


def to_output_layout(scale: torch.Tensor, spec: str, outs: str) -> torch.Tensor:
    """A keepdims scale over `spec`'s axes, as Keras lays it out: one axis per output axis,
    size 1 where the output axis is not in `spec`."""
    kept = "".join(c for c in spec if c in outs)
    ordered = "".join(c for c in outs if c in kept)
    values = torch.einsum(f"{kept}->{ordered}", scale.reshape(
        [n for n, c in zip(scale.shape, spec) if c in outs]))
    sizes = dict(zip(ordered, values.shape))
    return values.reshape([sizes.get(c, 1) for c in outs])


def from_output_layout(scale: torch.Tensor, spec: str, outs: str, shape) -> torch.Tensor:
    """`to_output_layout`'s inverse: the scale broadcastable against a `spec` tensor."""
    ordered = "".join(c for c in outs if c in spec)
    kept = "".join(c for c in spec if c in outs)
    values = scale.reshape([n for n, c in zip(scale.shape, outs) if c in spec])
    values = torch.einsum(f"{ordered}->{kept}", values)
    return values.reshape([n if c in outs else 1 for n, c in zip(shape, spec)])


def quantize_dense(layer, kernel):
    q, scale = weight_quantizer(layer, kernel, lambda k: _abs_max(k, (0,)))
    return q, scale.reshape(-1)


def quantize_einsum(layer, kernel):
    ins, ws, outs = layer._int8_specs = full_specs(layer.equation, layer.input_spec.ndim)
    reduced = tuple(i for i, c in enumerate(ws) if c not in outs)
    q, scale = weight_quantizer(layer, kernel, lambda k: _abs_max(k, reduced))
    return q, to_output_layout(scale, ws, outs)


def quantize_embedding(layer, table):
    q, scale = weight_quantizer(layer, table, lambda t: _abs_max(t, (-1,)))
    return q, scale.reshape(-1)
