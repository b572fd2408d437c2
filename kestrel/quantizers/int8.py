"""int8 weights for Dense, EinsumDense and Embedding, with Keras 3's variables and numbers.

`layer.quantize("int8")` replaces the float kernel by an int8 `kernel` (abs-max per output
channel) and a float `kernel_scale` (Embedding: `embeddings` and `embeddings_scale` per row),
both non-trainable, and swaps the layer's `call` for an int8 one: the float path keeps no
extra branch. Dense and EinsumDense quantize their inputs on the fly (abs-max over the
contracted axes), multiply in integers and divide by both scales; gradients reach the inputs
through the dequantized kernel (straight through), as Keras' custom gradient does.
"""
from __future__ import annotations

import functools
import string

import torch

from kestrel.dtype_policies import QUANTIZATION_MODES, QuantizedDTypePolicy
from kestrel.quantizers.quantizers import _EPSILON


def _abs_max(x: torch.Tensor, axes: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """`(round(x * scale) clipped to ±127, scale)` in x's float dtype; scale keeps `axes`."""
    amax = x.abs().amax(dim=axes, keepdim=True) if axes else x.abs()
    scale = torch.div(torch.tensor(127.0, dtype=amax.dtype, device=amax.device),
                      amax + _EPSILON).to(x.dtype)  # not `127 / t`: torch rounds that differently
    return torch.clamp(torch.round(x * scale), -127, 127), scale


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


def dense_call(layer, inputs):
    """Dense's int8 forward: `(q(inputs) @ kernel) / (kernel_scale * inputs_scale)`."""
    kernel, kernel_scale = layer.kernel, layer.kernel_scale

    def quantized(x):
        q, scale = _abs_max(x, (-1,))
        return torch.matmul(q, kernel.to(q.dtype)) / (kernel_scale * scale)

    return _finish(layer, _StraightThrough.apply(
        inputs, quantized, lambda x: torch.matmul(x, kernel.to(x.dtype) / kernel_scale)))


def einsum_call(layer, inputs):
    """EinsumDense's int8 forward: the same, with the equation's contracted axes."""
    ins, ws, outs = layer._int8_specs
    kernel, kernel_scale = layer.kernel, layer.kernel_scale
    reduced = tuple(i for i, c in enumerate(ins) if c not in outs)

    def quantized(x):
        q, scale = _abs_max(x, reduced)
        y = torch.einsum(layer.equation, q, kernel.to(q.dtype))
        return y / (to_output_layout(scale, ins, outs) * kernel_scale)

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
    q, scale = _abs_max(kernel, (0,))
    return q, scale.reshape(-1)


def quantize_einsum(layer, kernel):
    ins, ws, outs = layer._int8_specs = full_specs(layer.equation, layer.input_spec.ndim)
    q, scale = _abs_max(kernel, tuple(i for i, c in enumerate(ws) if c not in outs))
    return q, to_output_layout(scale, ws, outs)


def quantize_embedding(layer, table):
    q, scale = _abs_max(table, (-1,))
    return q, scale.reshape(-1)


class Quantizable:
    """Mixin of the layers that `quantize("int8")`: each class names `_int8_weight` (the
    float weight replaced) and `_int8_rules = (quantize(layer, weight) -> (q, scale),
    call(layer, inputs))`."""

    _quantization_mode = None

    @property
    def quantization_mode(self):
        """The quantization mode of this layer, `None` if not quantized."""
        return self._quantization_mode

    @property
    def dtype_policy(self) -> str:
        """The policy name: `"int8_from_<float policy>"` once quantized."""
        mode, source = self._quantization_mode, self._dtype_policy
        return source if mode is None else f"{mode}_from_{source}"

    @staticmethod
    def _pop_quantized_dtype(kwargs: dict, default_name: str):
        """Turn a quantized (or per-path map) `dtype` in `kwargs` into its float source;
        return the quantization mode (None for a float policy)."""
        from kestrel import dtype_policies

        dtype = kwargs.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") in (
                "QuantizedDTypePolicy", "QuantizedFloat8DTypePolicy", "DTypePolicyMap") \
                or isinstance(dtype, str) and dtype.startswith(QUANTIZATION_MODES) \
                or isinstance(dtype, dtype_policies.DTypePolicyMap):
            dtype = dtype_policies.get(dtype)
        if isinstance(dtype, dtype_policies.DTypePolicyMap):
            dtype = dtype[kwargs.get("name") or default_name]
        if not isinstance(dtype, QuantizedDTypePolicy):
            if dtype is not None:
                kwargs["dtype"] = dtype
            return None
        kwargs["dtype"] = dtype.source_name
        return dtype.quantization_mode

    @property
    def _saved_weight_order(self) -> list[str] | None:
        """Keras' file order of a quantized layer's variables: the int8 weight, the others,
        its scale (None: the default order, trainable then non-trainable)."""
        if self._quantization_mode is None:
            return None
        ends = (self._int8_weight, f"{self._int8_weight}_scale")
        return [ends[0], *(a for a in self._weight_order if a not in ends), ends[1]]

    def _set_quantization_mode(self, mode) -> None:
        if mode is None:
            return
        if mode != "int8":
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': Kestrel runs quantization mode 'int8' "
                f"only. Received: mode={mode}")
        self._quantization_mode = mode

    def quantize(self, mode=None, type_check=True, config=None):
        """Quantize this built layer's weights in place (`"int8"`), as Keras' `quantize`."""
        check_quantize_args(self, mode)
        if type_check and "_int8_rules" not in type(self).__dict__:
            raise NotImplementedError(
                f"Layer {type(self).__name__} does not have a `quantize` method implemented.")
        if config is not None:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': quantize(config=...) is not supported; "
                "Kestrel uses Keras' default int8 quantizers.")
        self._set_quantization_mode(mode)
        self._to_int8(quantize_values=True)

    def _to_int8(self, quantize_values: bool) -> None:
        """Swap the float weight for int8 + scale variables and `call` for the int8 one."""
        attr = self._int8_weight
        rule, call = type(self)._int8_rules
        old = getattr(self, attr)
        with torch.no_grad():
            q, scale = rule(self, old.detach())
        del self._parameters[attr]
        self._weight_order.remove(attr)
        self._regularizers = [r for r in self._regularizers if r[0] != attr]
        self._constraints = [c for c in self._constraints if c[0] != attr]
        for name, value, dtype in ((attr, q, "int8"), (f"{attr}_scale", scale, None)):
            variable = self.add_weight(name, tuple(value.shape), "zeros", dtype=dtype,
                                       trainable=False)
            variable.data = variable.data.to(old.device)
            if quantize_values:
                variable.data.copy_(value)
        self.call = functools.partial(call, self)

    def get_config(self) -> dict:
        config = super().get_config()
        if self._quantization_mode is not None:
            from kestrel import dtype_policies

            config["dtype"] = dtype_policies.serialize(
                QuantizedDTypePolicy(self._quantization_mode, self._dtype_policy))
        return config


def check_quantize_args(layer, mode) -> None:
    """Keras' checks before quantizing: built, not yet quantized, a known mode."""
    if not layer.built:
        raise ValueError(
            f"Cannot quantize a layer that isn't yet built. Layer '{layer.name}' (of type "
            f"'{type(layer).__name__}') is not built yet.")
    if getattr(layer, "_quantization_mode", None) is not None:
        raise ValueError(f"Layer '{layer.name}' is already quantized with "
                         f"dtype_policy='{layer.dtype_policy}'. Received: mode={mode}")
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. "
                         f"Received: mode={str(mode)[:50]}")
    if mode == "int8" and layer.dtype_policy in ("float16", "mixed_float16"):
        raise ValueError(
            f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'. "
            "Consider loading model/layer with another dtype policy such as "
            "'mixed_bfloat16' or 'mixed_float16' before calling `quantize()`.")
