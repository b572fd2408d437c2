"""Weight constraints: functions applied to a weight after each optimizer update.

`axis` refers to the Keras layout of the weight: for a Dense kernel `(in, out)`, `axis=0`
constrains the incoming weights of each unit; for a Conv2D kernel `(kh, kw, in, out)` use
`axis=(0, 1, 2)`.

>>> import torch
>>> UnitNorm()(torch.tensor([[3.0], [4.0]]))
tensor([[0.6000],
        [0.8000]])
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from kestrel import config
from kestrel.registry.object_registry import register_builtin

Axis = int | Sequence[int] | None


def _dims(axis: Axis):
    return axis if axis is None or isinstance(axis, int) else tuple(axis)


def _norms(w: torch.Tensor, axis: Axis) -> torch.Tensor:
    return torch.sqrt(torch.sum(w * w, dim=_dims(axis), keepdim=True))


@register_builtin("constraints")
class Constraint:
    """Base class: `constraint(w)` returns the constrained weight; the base returns `w`."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


@register_builtin("constraints", "max_norm", "maxnorm")
class MaxNorm(Constraint):
    """Rescales weights whose L2 norm along `axis` exceeds `max_value`.

    Args:
        max_value: the largest norm allowed.
        axis: axis or axes along which norms are computed.
    """

    def __init__(self, max_value: float = 2, axis: Axis = 0):
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        desired = torch.clamp(norms, 0, self.max_value)
        return w * (desired / (config.epsilon() + norms))

    def get_config(self) -> dict:
        return {"max_value": self.max_value, "axis": self.axis}


@register_builtin("constraints", "non_neg", "nonneg")
class NonNeg(Constraint):
    """Replaces negative weights with 0."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return torch.clamp_min(w, 0)


@register_builtin("constraints", "unit_norm", "unitnorm")
class UnitNorm(Constraint):
    """Scales weights to unit L2 norm along `axis`.

    Args:
        axis: axis or axes along which norms are computed.
    """

    def __init__(self, axis: Axis = 0):
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w / (config.epsilon() + _norms(w, self.axis))

    def get_config(self) -> dict:
        return {"axis": self.axis}


@register_builtin("constraints", "min_max_norm")
class MinMaxNorm(Constraint):
    """Moves the L2 norm along `axis` into `[min_value, max_value]`, at speed `rate`.

    The new norm is `rate * clip(norm, min_value, max_value) + (1 - rate) * norm`.

    Args:
        min_value: the smallest norm allowed.
        max_value: the largest norm allowed.
        rate: 1.0 enforces the bounds at once; smaller values move part of the way.
        axis: axis or axes along which norms are computed.
    """

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: Axis = 0):
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        desired = (self.rate * torch.clamp(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return w * (desired / (config.epsilon() + norms))

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value,
                "rate": self.rate, "axis": self.axis}
