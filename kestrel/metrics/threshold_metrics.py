"""The best value of one rate subject to a floor on another, over a grid of thresholds:
`PrecisionAtRecall`, `RecallAtPrecision`, `SensitivityAtSpecificity`,
`SpecificityAtSensitivity`."""
from __future__ import annotations

import torch

from kestrel.losses.loss import divide_no_nan
from kestrel.metrics.confusion_metrics import ThresholdMetric
from kestrel.registry.object_registry import register_builtin

_RATES = {  # name: (numerator, other count of the denominator)
    "recall": ("tp", "fn"), "sensitivity": ("tp", "fn"),
    "precision": ("tp", "fp"), "specificity": ("tn", "fp"),
}


def _grid(num_thresholds: int) -> list[float]:
    """0.5 alone for one threshold, else `num_thresholds` evenly spaced in [0, 1]."""
    if num_thresholds == 1:
        return [0.5]
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return [0.0, *inner, 1.0]


class _RateAtConstraint(ThresholdMetric):
    """The largest `_target` rate among thresholds where the `_constraint` rate >= `value`.

    Args:
        value: The floor on the constrained rate, in [0, 1].
        num_thresholds: Number of thresholds evenly spaced in [0, 1] (1 means just 0.5).
        class_id: Only this class (index on the last axis) is measured.
        name, dtype: See `Metric`.
    """

    _constraint = "recall"
    _target = "precision"

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        if not 0 <= value <= 1:
            raise ValueError(f"{type(self).__name__}: `{self._constraint}` must be in the range "
                             f"[0, 1]. Received: {self._constraint}={value}")
        if num_thresholds <= 0:
            raise ValueError(f"{type(self).__name__}: `num_thresholds` must be an integer > 0. "
                             f"Received: num_thresholds={num_thresholds}")
        super().__init__(("tp", "fp", "tn", "fn"), _grid(num_thresholds), class_id=class_id,
                         name=name, dtype=dtype)
        self.value = value
        self.num_thresholds = num_thresholds
        setattr(self, self._constraint, value)

    def _rate(self, name: str) -> torch.Tensor:
        numerator, other = (self._counts[key] for key in _RATES[name])
        return divide_no_nan(numerator, numerator + other)

    def result(self):
        feasible = self._rate(self._constraint) >= self.value
        return torch.where(feasible, self._rate(self._target), 0.0).amax().clamp(min=0.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "class_id": self.class_id,
                "num_thresholds": self.num_thresholds, self._constraint: self.value}


@register_builtin("metrics", "precision_at_recall")
class PrecisionAtRecall(_RateAtConstraint):
    """Best precision at thresholds where recall >= `recall`.

    Args:
        recall: The required recall, in [0, 1].
        num_thresholds, class_id, name, dtype: See `SensitivityAtSpecificity`.

    Example:
    >>> import kestrel
    >>> m = kestrel.metrics.PrecisionAtRecall(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> float(m.result())
    0.5
    """

    _constraint, _target = "recall", "precision"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)


@register_builtin("metrics", "recall_at_precision")
class RecallAtPrecision(_RateAtConstraint):
    """Best recall at thresholds where precision >= `precision`.

    Args:
        precision: The required precision, in [0, 1].
        num_thresholds, class_id, name, dtype: See `SensitivityAtSpecificity`.
    """

    _constraint, _target = "precision", "recall"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)


@register_builtin("metrics", "sensitivity_at_specificity")
class SensitivityAtSpecificity(_RateAtConstraint):
    """Best sensitivity (recall) at thresholds where specificity >= `specificity`.

    Args:
        specificity: The required specificity `tn / (tn + fp)`, in [0, 1].
        num_thresholds: Number of thresholds evenly spaced in [0, 1] (default 200; 1 means
            the single threshold 0.5).
        class_id: Only this class (index on the last axis) is measured.
        name, dtype: See `Metric`.
    """

    _constraint, _target = "specificity", "sensitivity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)


@register_builtin("metrics", "specificity_at_sensitivity")
class SpecificityAtSensitivity(_RateAtConstraint):
    """Best specificity at thresholds where sensitivity (recall) >= `sensitivity`.

    Args:
        sensitivity: The required sensitivity `tp / (tp + fn)`, in [0, 1].
        num_thresholds, class_id, name, dtype: See `SensitivityAtSpecificity`.
    """

    _constraint, _target = "sensitivity", "specificity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)
