"""Quantizable: what Dense, EinsumDense and Embedding share to run quantized policies.

A layer built with a quantized `dtype` (e.g. from a Keras file's config) or quantized in place
with `layer.quantize(mode)` gets Keras' variables for the mode and an instance `call` for it:
the class' float `call` is never touched.
"""
from __future__ import annotations

import functools

import torch

from kestrel.dtype_policies import (QUANTIZATION_MODES, QuantizedDTypePolicy,
                                    QuantizedFloat8DTypePolicy, from_name)
from kestrel import quantizers
from kestrel.quantizers import float8
from kestrel.quantizers.config import resolve


class Quantizable:
    """Mixin of the layers that quantize. Each class names `_int8_weight` (the float weight
    int8 / int4 replace) and `_int8_rules = (quantize(layer, weight) -> (q, scale), call(layer,
    inputs))`; classes with int4 name `_int4_rules` (quantize returns Keras' variables as
    `(name, value, dtype)`); classes with float8 name `_float8_contract(layer, x, kernel)`."""

    _quantization_mode = None
    _quantization_config = None
    _int4_block_size = None
    _quantized_names: tuple = ()
    _quantizes_inputs = False  # Dense, EinsumDense: int8 / int4 have an `inputs_quantizer`
    _amax_history_length = QuantizedFloat8DTypePolicy.default_amax_history_length

    @property
    def quantization_mode(self):
        """The quantization mode of this layer, `None` if not quantized."""
        return self._quantization_mode

    def _apply_quantized_policy(self, policy: QuantizedDTypePolicy) -> None:
        """`layer.dtype_policy = "int8_from_float32"`: quantize now if built, else at build."""
        if self.built:
            self.quantize(policy.quantization_mode)
        else:
            self._set_quantization_mode(policy, self._quantization_config)

    @staticmethod
    def _pop_quantized_dtype(kwargs: dict, default_name: str):
        """Turn a quantized (or per-path map) `dtype` in `kwargs` into its float source;
        return the quantized policy (None for a float one)."""
        from kestrel import dtype_policies

        dtype = kwargs.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") in _QUANTIZED_CLASSES \
                or isinstance(dtype, str) and dtype.startswith(QUANTIZATION_MODES) \
                or isinstance(dtype, dtype_policies.DTypePolicyMap):
            dtype = dtype_policies.get(dtype)
        if isinstance(dtype, dtype_policies.DTypePolicyMap):
            entry = dtype[kwargs.get("name") or default_name]
            dtype = entry if isinstance(entry, QuantizedDTypePolicy) else dtype
        if not isinstance(dtype, QuantizedDTypePolicy):
            if dtype is not None:
                kwargs["dtype"] = dtype
            return None
        kwargs["dtype"] = dtype.source_name
        return dtype

    def _set_quantization_mode(self, policy: QuantizedDTypePolicy | None,
                               config=None) -> None:
        """Run `policy` (None: float); `config` a `QuantizationConfig` or its dict."""
        self._quantization_config = (quantizers.deserialize(config) if isinstance(config, dict)
                                     else config)
        if policy is None:
            return
        self._set_policy(policy)  # its compute and variable dtypes are its source's
        mode = policy.quantization_mode
        if mode in ("gptq", "awq"):
            raise NotImplementedError(_calibrated_message(self, mode))
        cls = type(self)
        modes = ("int8",) + ("int4",) * hasattr(cls, "_int4_rules") \
            + ("float8",) * hasattr(cls, "_float8_contract")
        if mode not in modes:
            raise NotImplementedError(
                f"{cls.__name__} '{self.name}': Kestrel runs quantization modes "
                f"{modes} for this layer. Received: mode={mode}")
        self._quantization_mode = mode
        block_size = getattr(policy, "block_size", -1)
        self._int4_block_size = None if block_size == -1 else block_size
        self._amax_history_length = getattr(policy, "amax_history_length",
                                            self._amax_history_length)

    def quantize(self, mode=None, type_check=True, config=None):
        """Quantize this built layer in place (`"int8"`, `"int4"`; Dense and EinsumDense also
        `"float8"`), as Keras' `quantize`; `config` a `QuantizationConfig` (or None: the
        mode's default, e.g. int4 in blocks of 128)."""
        config = resolve(mode, config)
        mode = config.mode
        check_quantize_args(self, mode)
        if type_check and "_int8_rules" not in type(self).__dict__:
            raise NotImplementedError(
                f"Layer {type(self).__name__} does not have a `quantize` method implemented.")
        if mode in ("gptq", "awq"):
            raise NotImplementedError(_calibrated_message(self, mode))
        policy_mode = mode
        if mode == "int4":
            policy_mode = f"int4/{-1 if config.block_size is None else config.block_size}"
        self._set_quantization_mode(from_name(f"{policy_mode}_from_{self._dtype_policy.name}"),
                                    config)
        self._quantized_build(quantize_values=True)

    def _quantized_build(self, quantize_values: bool = False) -> None:
        """Create the variables of the quantization mode and swap in its `call`."""
        if self._quantization_mode == "float8":
            float8.add_variables(self, self._amax_history_length)
            self.call = functools.partial(float8.float8_call, self)
            return
        if self._quantizes_inputs:
            self.inputs_quantizer = _inputs_quantizer(self._quantization_mode,
                                                      self._quantization_config)
        attr = self._int8_weight
        rule, call = getattr(type(self), f"_{self._quantization_mode}_rules")
        old = getattr(self, attr)
        with torch.no_grad():
            entries = rule(self, old.detach())
        if self._quantization_mode == "int8":
            entries = [(attr, entries[0], "int8"), (f"{attr}_scale", entries[1], None)]
        del self._parameters[attr]
        self._weight_order.remove(attr)
        self._regularizers = [r for r in self._regularizers if r[0] != attr]
        self._constraints = [c for c in self._constraints if c[0] != attr]
        for name, value, dtype in entries:
            variable = self.add_weight(name, tuple(value.shape), "zeros", dtype=dtype,
                                       trainable=False)
            variable.data = variable.data.to(old.device)
            if quantize_values or name == "g_idx":
                variable.data.copy_(value)
        self._quantized_names = tuple(name for name, _, _ in entries)
        self.call = functools.partial(call, self)

    @property
    def _saved_weight_order(self) -> list[str] | None:
        """Keras' file order of an int8 / int4 layer's variables: the quantized weight, the
        others, then its scale (int4 in blocks: scale, zero, g_idx). None: the default order."""
        if self._quantization_mode not in ("int8", "int4"):
            return None
        first, *rest = self._quantized_names
        return [first, *(a for a in self._weight_order if a not in self._quantized_names),
                *rest]

    def _quantization_entry(self) -> dict:
        """`quantization_config`, which Keras writes (None too) after the layer's own keys."""
        config = self._quantization_config
        return {"quantization_config": None if config is None else quantizers.serialize(config)}


_QUANTIZED_CLASSES = ("QuantizedDTypePolicy", "QuantizedFloat8DTypePolicy", "Int4DTypePolicy",
                      "GPTQDTypePolicy", "AWQDTypePolicy", "DTypePolicyMap")


def _calibrated_message(layer, mode: str) -> str:
    return (f"{type(layer).__name__} '{layer.name}': quantization mode '{mode}' needs "
            f"{mode.upper()}'s calibration (running the model on `config.dataset` and solving "
            "for the quantized weights layer by layer), which Kestrel does not implement; "
            f"{mode.upper()}Config and {mode.upper()}DTypePolicy serialize as Keras does. "
            "Instead: quantize with 'int4' or 'int8'.")


def _inputs_quantizer(mode: str, config):
    """Keras' `inputs_quantizer`: the config's activation quantizer; without a config, abs-max
    for int8 and none (weight-only) for int4."""
    if config is not None:
        return config.activation_quantizer
    return quantizers.AbsMaxQuantizer() if mode == "int8" else None


def check_quantize_args(layer, mode) -> None:
    """Keras' checks before quantizing: built, not yet quantized, a known mode."""
    if not layer.built:
        raise ValueError(
            f"Cannot quantize a layer that isn't yet built. Layer '{layer.name}' (of type "
            f"'{type(layer).__name__}') is not built yet.")
    if getattr(layer, "_quantization_mode", None) is not None:
        raise ValueError(f"Layer '{layer.name}' is already quantized with "
                         f"dtype_policy='{layer.dtype_policy.name}'. Received: mode={mode}")
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. "
                         f"Received: mode={str(mode)[:50]}")
    if mode == "int8" and layer.dtype_policy in ("float16", "mixed_float16"):
        raise ValueError(
            f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'. "
            "Consider loading model/layer with another dtype policy such as "
            "'mixed_bfloat16' or 'mixed_float16' before calling `quantize()`.")
