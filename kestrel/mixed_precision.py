"""Dtype policies: `mixed_float16` / `mixed_bfloat16` keep float32 weights and compute in half.

    kestrel.mixed_precision.set_global_policy("mixed_bfloat16")

Layers built afterwards (or given `dtype="mixed_float16"`) store float32 weights and run their
`call` under `torch.autocast` with the half type; fit() scales the loss for float16.
"""
from __future__ import annotations

import torch

from kestrel import config

_POLICIES = ("float16", "bfloat16", "float32", "float64", "mixed_float16", "mixed_bfloat16")
_GLOBAL: str | None = None


class DTypePolicy:
    """A named policy with its `variable_dtype` and `compute_dtype`."""

    def __init__(self, name: str = "float32"):
        if name not in _POLICIES:
            raise ValueError(f"Unknown dtype policy. Expected one of {_POLICIES}. "
                             f"Received: name={name!r}")
        self.name = name

    @property
    def variable_dtype(self) -> str:
        return "float32" if self.name.startswith("mixed_") else self.name

    @property
    def compute_dtype(self) -> str:
        return self.name.replace("mixed_", "")

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self.name}">'


def set_global_policy(policy) -> None:
    """Set the policy new layers use when they get no `dtype` (None resets to floatx)."""
    global _GLOBAL
    _GLOBAL = None if policy is None else DTypePolicy(getattr(policy, "name", policy)).name


def global_policy() -> DTypePolicy:
    return DTypePolicy(_GLOBAL or config.floatx())


def autocast_dtype(policy_name: str) -> torch.dtype | None:
    """The autocast dtype for a mixed policy name, else None."""
    if policy_name.startswith("mixed_"):
        return config.to_torch_dtype(policy_name.replace("mixed_", ""))
    return None


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
