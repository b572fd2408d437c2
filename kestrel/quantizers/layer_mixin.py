"""Quantizable: what Dense, EinsumDense and Embedding share to run quantized policies.

A layer built with a quantized `dtype` (e.g. from a Keras file's config) or quantized in place
with `layer.quantize(mode)` gets Keras' variables for the mode and an instance `call` for it:
the class' float `call` is never touched.
"""
from __future__ import annotations

import functools

import torch

from kestrel.dtype_policies import (QUANTIZATION_MODES, QuantizedDTypePolicy,
                                    QuantizedFloat8DTypePolicy, from_name, serialize)
from kestrel.quantizers import float8


class Quantizable:
    """Mixin of the layers that quantize. Each class names `_int8_weight` (the float weight
    int8 replaces) and `_int8_rules = (quantize(layer, weight) -> (q, scale), call(layer,
    inputs))`; classes with float8 name `_float8_contract(layer, x, kernel)`."""

    _quantization_mode = None
    _amax_history_length = QuantizedFloat8DTypePolicy.default_amax_history_length

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
        return the quantized policy (None for a float one)."""
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
        return dtype

    def _set_quantization_mode(self, policy: QuantizedDTypePolicy | None) -> None:
        if policy is None:
            return
        mode = policy.quantization_mode
        modes = ("int8", "float8") if hasattr(type(self), "_float8_contract") else ("int8",)
        if mode not in modes:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': Kestrel runs quantization modes "
                f"{modes} for this layer. Received: mode={mode}")
        self._quantization_mode = mode
        self._amax_history_length = getattr(policy, "amax_history_length",
                                            self._amax_history_length)

    def quantize(self, mode=None, type_check=True, config=None):
        """Quantize this built layer in place (`"int8"`; Dense and EinsumDense also
        `"float8"`), as Keras' `quantize`."""
        check_quantize_args(self, mode)
        if type_check and "_int8_rules" not in type(self).__dict__:
            raise NotImplementedError(
                f"Layer {type(self).__name__} does not have a `quantize` method implemented.")
        if config is not None:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': quantize(config=...) is not supported; "
                "Kestrel uses Keras' default quantizers.")
        self._set_quantization_mode(from_name(f"{mode}_from_{self._dtype_policy}"))
        self._quantized_build(quantize_values=True)

    def _quantized_build(self, quantize_values: bool = False) -> None:
        """Create the variables of the quantization mode and swap in its `call`."""
        if self._quantization_mode == "float8":
            float8.add_variables(self, self._amax_history_length)
            self.call = functools.partial(float8.float8_call, self)
            return
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

    @property
    def _saved_weight_order(self) -> list[str] | None:
        """Keras' file order of an int8 layer's variables: the int8 weight, the others, its
        scale (None: the default order, trainable then non-trainable)."""
        if self._quantization_mode != "int8":
            return None
        ends = (self._int8_weight, f"{self._int8_weight}_scale")
        return [ends[0], *(a for a in self._weight_order if a not in ends), ends[1]]

    def get_config(self) -> dict:
        config = super().get_config()
        if self._quantization_mode is not None:
            policy = from_name(self.dtype_policy)
            if isinstance(policy, QuantizedFloat8DTypePolicy):
                policy.amax_history_length = self._amax_history_length
            config["dtype"] = serialize(policy)
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
