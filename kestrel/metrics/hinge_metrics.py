"""Hinge metrics: sample-weighted means of the hinge losses."""
from __future__ import annotations

from kestrel.losses import functions as fn
from kestrel.metrics.reduction_metrics import BuiltinMeanMetric
from kestrel.registry.object_registry import register_builtin


@register_builtin("metrics", "hinge")
class Hinge(BuiltinMeanMetric):
    """Mean hinge loss; labels in {0, 1} become {-1, 1}."""

    _direction = "down"

    def __init__(self, name="hinge", dtype=None):
        super().__init__(fn.hinge, name, dtype)


@register_builtin("metrics", "squared_hinge")
class SquaredHinge(BuiltinMeanMetric):
    """Mean squared hinge loss; labels in {0, 1} become {-1, 1}."""

    _direction = "down"

    def __init__(self, name="squared_hinge", dtype=None):
        super().__init__(fn.squared_hinge, name, dtype)


@register_builtin("metrics", "categorical_hinge")
class CategoricalHinge(BuiltinMeanMetric):
    """Mean categorical hinge loss for one-hot labels."""

    _direction = "down"

    def __init__(self, name="categorical_hinge", dtype=None):
        super().__init__(fn.categorical_hinge, name, dtype)
