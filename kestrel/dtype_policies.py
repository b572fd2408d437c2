"""`keras.dtype_policies`: look up, serialize and rebuild dtype policies."""
from __future__ import annotations

from kestrel.mixed_precision import DTypePolicy, global_policy

FloatDTypePolicy = DTypePolicy


def serialize(dtype_policy: DTypePolicy) -> dict:
    """A policy as Keras 3 writes it in configs."""
    return {"module": "keras", "class_name": "DTypePolicy",
            "config": dtype_policy.get_config(), "registered_name": None}


def deserialize(config: dict, custom_objects=None) -> DTypePolicy:
    """Rebuild a policy from `serialize`'s dict (Keras' `FloatDTypePolicy` name accepted)."""
    if not isinstance(config, dict) or config.get("class_name") not in (
            "DTypePolicy", "FloatDTypePolicy", "Policy"):
        raise ValueError("dtype_policies.deserialize expected a DTypePolicy config dict. "
                         f"Received: class_name={_class_name(config)!r}")
    return DTypePolicy(**config.get("config", {}))


def get(identifier) -> DTypePolicy:
    """A policy from None (the global one), a name, a config dict, or a policy."""
    if identifier is None:
        return global_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        try:
            return DTypePolicy(identifier)
        except ValueError:
            raise ValueError(
                f"Cannot convert {identifier[:100]!r} to a mixed precision DTypePolicy. Valid "
                "policies include 'mixed_float16', 'mixed_bfloat16', and the name of any float "
                "dtype such as 'float32'.") from None
    raise ValueError("Cannot interpret `dtype` argument. Expected a string or an instance of "
                     f"DTypePolicy. Received: dtype={_short(identifier)}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


def _class_name(config):
    return config.get("class_name") if isinstance(config, dict) else type(config).__name__
