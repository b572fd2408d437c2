"""int4 weights for Dense, EinsumDense and Embedding, with Keras 3's variables and numbers.

Two int4 values are packed per int8 byte along the output axis (`kernel`: `(in, ceil(units /
2))`; EinsumDense first reshapes its kernel to `(contracted rows, other columns)`, as Keras).
With `block_size` None the scale is symmetric per output channel (`kernel_scale`:
`(units,)`); with a block size every `block_size` inputs (Embedding: features) share a scale
and an int8 zero point (`kernel_scale`, `kernel_zero`: `(groups, units)`) and `g_idx` maps
each input to its group. Inputs stay float (weight-only), as Keras' default; per channel, a
config's `activation_quantizer` quantizes them as int8 does.
"""
from __future__ import annotations

import math

import torch

from kestrel.quantizers.int4_ops import (abs_max_quantize_grouped_with_zero_point, pack_int4,
                                         unpack_int4)
from kestrel.quantizers.int8 import (_StraightThrough, _abs_max, _finish, full_specs,
                                     quantize_inputs, to_output_layout, weight_quantizer)


def _groups(length: int, block_size: int) -> torch.Tensor:
    return torch.div(torch.arange(length, dtype=torch.float32), block_size,
                     rounding_mode="floor")


def _entries(prefix: str, q, scale, zero=None, g_idx=None) -> list:
    """The quantized variables in Keras' order: (name, value, dtype)."""
    entries = [(prefix, pack_int4(q.to(torch.int8), axis=-1)[0], "int8"),
               (f"{prefix}_scale", scale, None)]
    if zero is not None:
        entries += [(f"{prefix}_zero", zero, "int8"), ("g_idx", g_idx, "float32")]
    return entries


def _per_channel(layer, weight, axis: int):
    """`config.weight_quantizer` (default: abs-max into [-8, 7] along `axis`)."""
    return weight_quantizer(layer, weight, lambda w: _abs_max(w, (axis,), top=7.0))


def _kernel_entries(layer, kernel, per_channel) -> list:
    """A 2D `(rows, columns)` kernel's variables: `per_channel(kernel) -> (q, scale)`, or
    zero-point quantization in blocks of `layer._int4_block_size` rows."""
    block_size = layer._int4_block_size
    if block_size is None:
        q, scale = per_channel(kernel)
        return _entries("kernel", q, scale.reshape(-1))
    q, scale, zero = abs_max_quantize_grouped_with_zero_point(kernel, block_size, to_numpy=True)
    return _entries("kernel", q, scale, zero, _groups(kernel.shape[0], block_size))


def quantize_dense(layer, kernel) -> list:
    return _kernel_entries(layer, kernel, lambda k: _per_channel(layer, k, 0))


def quantize_einsum(layer, kernel) -> list:
    """EinsumDense: the kernel reshaped (not transposed, as Keras) to `(product of the
    contracted axes, the rest)`; per channel always Keras' abs-max into [-8, 7]."""
    left, outs = layer.equation.split("->")
    spec = left.split(",")[1]
    rows = math.prod(n for n, c in zip(kernel.shape, spec) if c not in outs)
    layer._int4_kernel_shape = tuple(kernel.shape)
    return _kernel_entries(layer, kernel.reshape(rows, -1),
                           lambda k: _abs_max(k, (0,), top=7.0))


def quantize_embedding(layer, table) -> list:
    block_size = layer._int4_block_size
    if block_size is None:
        q, scale = _per_channel(layer, table, -1)
        return _entries("embeddings", q, scale.reshape(-1))
    q, scale, zero = abs_max_quantize_grouped_with_zero_point(table.T, block_size,
                                                              to_numpy=True)
    return _entries("embeddings", q.T, scale.T, zero.T, _groups(table.shape[1], block_size))


def _dequantize(values, scale, zero, g_idx, dtype, axis: int):
    """`(values - zero) * scale` with the group of each position on `axis` from `g_idx`."""
    groups = g_idx.long()
    zero = zero.index_select(axis, groups).to(scale.dtype)
    return ((values.to(scale.dtype) - zero) * scale.index_select(axis, groups)).to(dtype)


def dense_call(layer, inputs):
    """Dense's int4 forward: the unpacked kernel, divided by its scale (and by the inputs'
    scale with an `inputs_quantizer`) or dequantized by groups; gradients reach the inputs
    through the dequantized kernel."""
    dtype = layer._autocast_dtype or layer._variable_dtype
    kernel = unpack_int4(layer.kernel, layer.units, axis=-1)
    if layer._int4_block_size is not None:
        return _finish(layer, torch.matmul(inputs, _dequantize(
            kernel, layer.kernel_scale, layer.kernel_zero, layer.g_idx, dtype, 0)))
    if layer.inputs_quantizer is None:
        y = torch.matmul(inputs, kernel.to(inputs.dtype)).to(dtype) / layer.kernel_scale
        return _finish(layer, y)

    def quantized(x):
        q, scale = quantize_inputs(layer, x, -1)
        scale = layer.kernel_scale if scale is None else layer.kernel_scale * scale
        return torch.matmul(q, kernel.to(q.dtype)).to(dtype) / scale

    return _finish(layer, _StraightThrough.apply(
        inputs, quantized, lambda x: torch.matmul(x, kernel.to(dtype) / layer.kernel_scale)))


def einsum_call(layer, inputs):
    """EinsumDense's int4 forward: the kernel unpacked, dequantized and reshaped back, then
    the float einsum (of the quantized inputs, divided by their scale, with an
    `inputs_quantizer`); gradients reach the inputs through it."""
    dtype = layer._autocast_dtype or layer._variable_dtype
    kernel = unpack_int4(layer.kernel, layer.kernel_scale.shape[-1], axis=-1)
    if layer._int4_block_size is None:
        kernel = kernel.to(dtype) / layer.kernel_scale
    else:
        kernel = _dequantize(kernel, layer.kernel_scale, layer.kernel_zero, layer.g_idx, dtype,
                             0)
    kernel = kernel.reshape(layer._int4_kernel_shape).to(inputs.dtype)
    if layer.inputs_quantizer is None:
        return _finish(layer, torch.einsum(layer.equation, inputs, kernel))
    ins, _, outs = full_specs(layer.equation, inputs.dim())
    reduced = tuple(i for i, c in enumerate(ins) if c not in outs)

    def quantized(x):
        q, scale = quantize_inputs(layer, x, reduced)
        return torch.einsum(layer.equation, q, kernel) / to_output_layout(scale, ins, outs)

    return _finish(layer, _StraightThrough.apply(
        inputs, quantized, lambda x: torch.einsum(layer.equation, x, kernel)))


def embedding_call(layer, inputs):
    """Embedding's int4 lookup: the unpacked rows, scaled (and shifted) back to floats."""
    if inputs.dtype not in (torch.int32, torch.int64):
        inputs = inputs.long()
    dtype = layer._autocast_dtype or layer._variable_dtype
    rows = unpack_int4(layer.embeddings, layer.output_dim, axis=-1)[inputs]
    scale = layer.embeddings_scale[inputs]
    if layer._int4_block_size is None:
        return rows.to(dtype) / scale.unsqueeze(-1).to(dtype)
    return _dequantize(rows, scale, layer.embeddings_zero[inputs], layer.g_idx, dtype, -1)
