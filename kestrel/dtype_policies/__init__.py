"""`keras.dtype_policies`: float, quantized and per-path dtype policies; get / serialize."""
from __future__ import annotations

from kestrel.dtype_policies.policy_map import DTypePolicyMap
from kestrel.dtype_policies.quantized import (QUANTIZATION_MODES, AWQDTypePolicy,
                                              GPTQDTypePolicy, Int4DTypePolicy,
                                              QuantizedDTypePolicy, QuantizedFloat8DTypePolicy,
                                              from_name)
from kestrel.mixed_precision import DTypePolicy, FloatDTypePolicy, global_policy

_CLASSES = {"DTypePolicy": DTypePolicy, "FloatDTypePolicy": FloatDTypePolicy,
            "Policy": DTypePolicy,
            "QuantizedDTypePolicy": QuantizedDTypePolicy,
            "QuantizedFloat8DTypePolicy": QuantizedFloat8DTypePolicy,
            "DTypePolicyMap": DTypePolicyMap, "Int4DTypePolicy": Int4DTypePolicy,
            "GPTQDTypePolicy": GPTQDTypePolicy, "AWQDTypePolicy": AWQDTypePolicy}


def serialize(dtype_policy: DTypePolicy) -> dict:
    """A policy as Keras 3 writes it in configs."""
    name = type(dtype_policy).__name__
    return {"module": "keras" if name in ("DTypePolicy", "FloatDTypePolicy")
            else "keras.dtype_policies",
            "class_name": name, "config": dtype_policy.get_config(), "registered_name": None}


def deserialize(config: dict, custom_objects=None) -> DTypePolicy:
    """Rebuild a policy from `serialize`'s dict (Keras' `FloatDTypePolicy` name accepted)."""
    cls = _CLASSES.get(config.get("class_name")) if isinstance(config, dict) else None
    if cls is None:
        raise ValueError("dtype_policies.deserialize expected a DTypePolicy config dict. "
                         f"Received: class_name={_class_name(config)!r}")
    arguments = dict(config.get("config", {}))
    if cls is DTypePolicyMap:
        return DTypePolicyMap.from_config(arguments, custom_objects)
    if cls in (DTypePolicy, FloatDTypePolicy) and arguments.get("name") is None:  # a map entry: the global one
        arguments["name"] = global_policy().name
    return cls(**arguments)


def get(identifier) -> DTypePolicy:
    """A policy from None (the global one), a name, a config dict, a policy, or a dtype
    object (torch, NumPy)."""
    if identifier is None:
        return global_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier.startswith(QUANTIZATION_MODES):
            return from_name(identifier)
        try:
            return DTypePolicy(identifier)
        except ValueError:
            raise ValueError(
                f"Cannot convert {identifier[:100]!r} to a mixed precision DTypePolicy. Valid "
                "policies include 'mixed_float16', 'mixed_bfloat16', and the name of any float "
                "dtype such as 'float32'.") from None
    from kestrel.backend.dtypes import standardize_dtype

    try:
        return DTypePolicy(standardize_dtype(identifier))
    except (TypeError, ValueError):
        raise ValueError("Cannot interpret `dtype` argument. Expected a string or an instance "
                         f"of DTypePolicy. Received: dtype={_short(identifier)}") from None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


def _class_name(config):
    return config.get("class_name") if isinstance(config, dict) else type(config).__name__
