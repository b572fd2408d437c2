"""Weight regularizers: penalties added to the loss, each a 0-d tensor.

>>> import torch
>>> L2(0.5)(torch.tensor([1.0, 2.0]))
tensor(2.5000)
"""
from __future__ import annotations

import math

import torch

from kestrel import config
from kestrel.registry.object_registry import register_builtin


@register_builtin("regularizers")
class Regularizer:
    """Base class: `regularizer(weight)` returns a 0-d penalty tensor."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config().")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


@register_builtin("regularizers", "l1_l2")
class L1L2(Regularizer):
    """`l1 * sum(abs(x)) + l2 * sum(square(x))`.

    Args:
        l1: non-negative L1 factor.
        l2: non-negative L2 factor.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = validate_float_arg(0.0 if l1 is None else l1, "l1")
        self.l2 = validate_float_arg(0.0 if l2 is None else l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        penalty = x.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * x.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * x.square().sum()
        return penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


@register_builtin("regularizers", "l1")
class L1(Regularizer):
    """`l1 * sum(abs(x))`.

    Args:
        l1: non-negative factor.
    """

    def __init__(self, l1: float = 0.01):
        self.l1 = _float32(validate_float_arg(0.01 if l1 is None else l1, "l1"))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1 * x.abs().sum()

    def get_config(self) -> dict:
        return {"l1": self.l1}


@register_builtin("regularizers", "l2")
class L2(Regularizer):
    """`l2 * sum(square(x))` (no factor 1/2, as in Keras).

    Args:
        l2: non-negative factor.
    """

    def __init__(self, l2: float = 0.01):
        self.l2 = validate_float_arg(0.01 if l2 is None else l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2 * x.square().sum()

    def get_config(self) -> dict:
        return {"l2": self.l2}


@register_builtin("regularizers", "orthogonal_regularizer")
class OrthogonalRegularizer(Regularizer):
    """Penalizes non-orthogonal rows (or columns) of a rank-2 weight.

    It is `factor * 0.5 * sum(|off-diagonal of N @ N.T|) / num_pairs`, where N holds the
    L2-normalized rows (`mode="rows"`) or, transposed, columns (`mode="columns"`).

    Args:
        factor: non-negative scale of the penalty.
        mode: `"rows"` or `"columns"`, in the Keras layout of the weight.
    """

    def __init__(self, factor: float = 0.01, mode: str = "rows"):
        self.factor = _float32(validate_float_arg(factor, "factor"))
        if mode not in ("rows", "columns"):
            raise ValueError(
                "OrthogonalRegularizer: argument `mode` must be 'rows' or 'columns'. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(
                "Inputs to OrthogonalRegularizer must have rank 2. "
                f"Received: inputs.shape={tuple(x.shape)}"
            )
        vectors = x if self.mode == "rows" else x.T
        eps = config.epsilon()
        sq_norms = vectors.square().sum(dim=1, keepdim=True)
        vectors = vectors * torch.rsqrt(torch.clamp_min(sq_norms, eps * eps))
        product = vectors @ vectors.T
        size = product.shape[0]
        off_diagonal = product * (1.0 - torch.eye(size, dtype=x.dtype, device=x.device))
        num_pairs = size * (size - 1.0) / 2.0
        return self.factor * 0.5 * off_diagonal.abs().sum() / num_pairs

    def get_config(self) -> dict:
        return {"factor": self.factor, "mode": self.mode}


def _float32(value: float) -> float:
    """`value` rounded to float32: Keras holds L1's and OrthogonalRegularizer's factor in a
    float32 tensor, so it computes with and writes that value."""
    return float(torch.tensor(value, dtype=torch.float32))


def validate_float_arg(value, name: str) -> float:
    """`value` as a float; raises unless it is a finite, non-negative number."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0):
        raise ValueError(
            f"Invalid value for argument {name}: expected a non-negative float. "
            f"Received: {name}={value!r}"
        )
    return float(value)
