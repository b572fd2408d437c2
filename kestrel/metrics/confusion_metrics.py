"""Confusion-matrix metrics: true/false positive/negative counts, Precision and Recall."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.losses.loss import divide_no_nan
from kestrel.metrics import metrics_utils
from kestrel.metrics.metric import Metric
from kestrel.registry.object_registry import register_builtin


class ThresholdMetric(Metric):
    """A metric that accumulates some confusion counts at a list of thresholds.

    Args:
        keys: Which counts to keep, among "tp", "fp", "tn", "fn".
        thresholds: A number or list of numbers in [0, 1]; `[default]` if None.
        default: The threshold used when `thresholds` is None.
        top_k, class_id: See `metrics_utils.update_confusion_matrix_variables`.
        name, dtype: See `Metric`.
    """

    _names = {"tp": "true_positives", "fp": "false_positives",
              "tn": "true_negatives", "fn": "false_negatives"}

    def __init__(self, keys, thresholds=None, default=0.5, top_k=None, class_id=None,
                 name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        self.thresholds = metrics_utils.parse_thresholds(thresholds, default)
        self._evenly = metrics_utils.is_evenly_distributed(self.thresholds)
        self._thresholds_tensor = torch.tensor(self.thresholds, dtype=self._torch_dtype,
                                               device=self._device)
        self._counts = {}
        for key in keys:
            # Keras keeps the counts in floatx whatever the metric's dtype: float16 counts
            # would stop growing at 2048
            self._counts[key] = self.add_variable((len(self.thresholds),), "zeros",
                                                  dtype=config.floatx(), name=self._names[key])
            setattr(self, self._names[key], self._counts[key])

    def update_state(self, y_true, y_pred, sample_weight=None):
        metrics_utils.update_confusion_matrix_variables(
            self._counts, y_true, y_pred, self.thresholds, self._thresholds_tensor,
            evenly=self._evenly, top_k=self.top_k, class_id=self.class_id,
            sample_weight=sample_weight)

    def _per_threshold(self, values: torch.Tensor) -> torch.Tensor:
        return values[0] if len(self.thresholds) == 1 else values


class _ConfusionCount(ThresholdMetric):
    _key = "tp"

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__([self._key], thresholds, name=name, dtype=dtype)

    def result(self):
        return self._per_threshold(self._counts[self._key]).clone()

    def get_config(self) -> dict:
        return {**super().get_config(), "thresholds": self.init_thresholds}


@register_builtin("metrics", "true_positives")
class TruePositives(_ConfusionCount):
    """Weighted count of positive labels predicted above each threshold (default 0.5)."""

    _key = "tp"


@register_builtin("metrics", "false_positives")
class FalsePositives(_ConfusionCount):
    """Weighted count of negative labels predicted above each threshold (default 0.5)."""

    _key = "fp"


@register_builtin("metrics", "true_negatives")
class TrueNegatives(_ConfusionCount):
    """Weighted count of negative labels predicted at or below each threshold (default 0.5)."""

    _key = "tn"


@register_builtin("metrics", "false_negatives")
class FalseNegatives(_ConfusionCount):
    """Weighted count of positive labels predicted at or below each threshold (default 0.5)."""

    _key = "fn"


class _PrecisionRecall(ThresholdMetric):
    _direction = "up"
    _other = "fp"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        default = 0.5 if top_k is None else metrics_utils.NEG_INF
        super().__init__(["tp", self._other], thresholds, default, top_k, class_id,
                         name=name, dtype=dtype)

    def result(self):
        tp = self._counts["tp"]
        return self._per_threshold(divide_no_nan(tp, tp + self._counts[self._other]))

    def get_config(self) -> dict:
        return {**super().get_config(), "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


@register_builtin("metrics", "precision")
class Precision(_PrecisionRecall):
    """Precision `tp / (tp + fp)` of predictions above the threshold(s).

    Args:
        thresholds: A number or list of numbers in [0, 1]; the result has one value per
            threshold. Defaults to 0.5 (or, with `top_k`, to counting the top-k as positive).
        top_k: Only the `k` highest-scored classes of each sample count as predicted positive.
        class_id: Only this class (index on the last axis) is measured.
        name, dtype: See `Metric`.

    Example:
    >>> import kestrel
    >>> m = kestrel.metrics.Precision()
    >>> float(m([0, 1, 1, 1], [1, 0, 1, 1]))
    0.6666666865348816
    """

    _other = "fp"


@register_builtin("metrics", "recall")
class Recall(_PrecisionRecall):
    """Recall `tp / (tp + fn)` of predictions above the threshold(s).

    Args:
        thresholds: A number or list of numbers in [0, 1]; the result has one value per
            threshold. Defaults to 0.5 (or, with `top_k`, to counting the top-k as positive).
        top_k: Only the `k` highest-scored classes of each sample count as predicted positive.
        class_id: Only this class (index on the last axis) is measured.
        name, dtype: See `Metric`.
    """

    _other = "fn"
