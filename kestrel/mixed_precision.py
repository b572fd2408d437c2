"""Dtype policies: `mixed_float16` / `mixed_bfloat16` keep float32 weights and compute in half.

    kestrel.mixed_precision.set_global_policy("mixed_bfloat16")

Layers built afterwards (or given `dtype="mixed_float16"`) store float32 weights and run their
`call` under `torch.autocast` with the half type; fit() scales the loss for float16.
"""
from __future__ import annotations

from kestrel import config

_GLOBAL: list = [None]  # the policy set by `set_global_policy`; None: floatx's


class DTypePolicy:
    """A layer's dtype policy: the dtype it creates weights in and the one it computes in.

    Args:
        name: a dtype name (`"float32"`, `"bfloat16"`, `"int32"`: weights and compute in it)
            or `"mixed_float16"` / `"mixed_bfloat16"` (float32 weights, half compute);
            None: the global policy's name.

    Example:
        >>> policy = DTypePolicy("mixed_bfloat16")
        >>> policy, policy.variable_dtype, policy.compute_dtype
        (<DTypePolicy "mixed_bfloat16">, 'float32', 'bfloat16')
        >>> policy == "mixed_bfloat16"  # Kestrel also compares a policy with its name
        True
    """

    def __init__(self, name: str | None = None):
        if name is None:
            name = global_policy().name
        self._name = name
        self._compute_dtype, self._variable_dtype = _parse_name(name)
        self._quantization_mode = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def variable_dtype(self) -> str:
        """The dtype layers create their weights in."""
        return self._variable_dtype

    @property
    def compute_dtype(self) -> str:
        """The dtype layers compute (and return their outputs) in."""
        return self._compute_dtype

    @property
    def quantization_mode(self):
        """The quantization mode (`"int8"`, ...), None for a float policy."""
        return self._quantization_mode

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __eq__(self, other) -> bool:
        if isinstance(other, str):  # a Kestrel extension: `layer.dtype_policy == "float32"`
            return other == self.name
        mine, theirs = _class_of(self), _class_of(other)
        return mine is theirs and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f'<{_class_of(self).__name__} "{self._name}">'


class FloatDTypePolicy(DTypePolicy):
    """Keras' older name of a float `DTypePolicy` (equal to one, and shown as one)."""


def _class_of(policy) -> type:
    """The class a policy compares and prints as: `FloatDTypePolicy` counts as `DTypePolicy`."""
    return DTypePolicy if type(policy) is FloatDTypePolicy else type(policy)


def _parse_name(name) -> tuple[str, str]:
    """`(compute_dtype, variable_dtype)` of a policy name, with Keras' errors."""
    from kestrel.backend.dtypes import standardize_dtype

    if not isinstance(name, str):
        raise TypeError("'name' must be a string, such as 'mixed_float16'. "
                        f"Received: name={str(name)[:100]} (of type {type(name)})")
    if name in ("mixed_float16", "mixed_bfloat16"):
        return name[len("mixed_"):], "float32"
    try:
        dtype = standardize_dtype(name)
    except ValueError:
        raise ValueError(
            f"Cannot convert '{name[:100]}' to a mixed precision DTypePolicy. Valid policies "
            "include 'mixed_float16', 'mixed_bfloat16', and the name of any float dtype such "
            "as 'float32'.") from None
    return dtype, dtype


def set_global_policy(policy) -> None:
    """Set the policy new layers use when they get no `dtype`: a name, a `DTypePolicy`, or
    None (Kestrel: back to `floatx()`)."""
    from kestrel import dtype_policies

    if policy is not None and not isinstance(policy, (str, DTypePolicy)):
        raise ValueError("Invalid `policy` argument. Expected the string name of a policy (such "
                         "as 'mixed_float16') or a `DTypePolicy` instance. "
                         f"Received: policy={str(policy)[:100]} (of type {type(policy)})")
    _GLOBAL[0] = None if policy is None else dtype_policies.get(policy)


def global_policy() -> DTypePolicy:
    """The policy set by `set_global_policy`, else a `DTypePolicy` of `floatx()`."""
    return _GLOBAL[0] or DTypePolicy(config.floatx())


# Keras 3 names for the same things.
Policy = DTypePolicy
dtype_policy = global_policy


def set_dtype_policy(policy) -> None:
    """Keras 3's name for `set_global_policy`."""
    set_global_policy(policy)


def __getattr__(name):
    if name == "LossScaleOptimizer":  # lazy: optimizers import this module
        from kestrel.optimizers.loss_scale_optimizer import LossScaleOptimizer

        return LossScaleOptimizer
    raise AttributeError(f"module 'kestrel.mixed_precision' has no attribute {name!r}")
