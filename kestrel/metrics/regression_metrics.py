"""Regression metrics: sample-weighted means of per-sample errors, and their root."""
from __future__ import annotations

import torch

from kestrel.losses import functions as fn
from kestrel.losses.loss import convert_pair, squeeze_or_expand_to_same_rank
from kestrel.metrics.reduction_metrics import BuiltinMeanMetric, Mean
from kestrel.registry.object_registry import register_builtin


@register_builtin("metric_functions")
def cosine_similarity(y_true, y_pred, axis=-1):
    """Cosine similarity along `axis` (1 means equal directions)."""
    return -fn.cosine_similarity(y_true, y_pred, axis=axis)


@register_builtin("metrics", "mean_squared_error", "mse", "MSE")
class MeanSquaredError(BuiltinMeanMetric):
    """Mean of squared errors between labels and predictions."""

    _direction = "down"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(fn.mean_squared_error, name, dtype)


@register_builtin("metrics", "mean_absolute_error", "mae", "MAE")
class MeanAbsoluteError(BuiltinMeanMetric):
    """Mean of absolute errors between labels and predictions."""

    _direction = "down"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(fn.mean_absolute_error, name, dtype)


@register_builtin("metrics", "mean_absolute_percentage_error", "mape", "MAPE")
class MeanAbsolutePercentageError(BuiltinMeanMetric):
    """Mean absolute percentage error between labels and predictions."""

    _direction = "down"

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(fn.mean_absolute_percentage_error, name, dtype)


@register_builtin("metrics", "mean_squared_logarithmic_error", "msle", "MSLE")
class MeanSquaredLogarithmicError(BuiltinMeanMetric):
    """Mean squared logarithmic error between labels and predictions."""

    _direction = "down"

    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(fn.mean_squared_logarithmic_error, name, dtype)


@register_builtin("metrics", "log_cosh_error", "logcosh", "log_cosh")
class LogCoshError(BuiltinMeanMetric):
    """Mean of `log(cosh(y_pred - y_true))`."""

    _direction = "down"

    def __init__(self, name="logcosh", dtype=None):
        super().__init__(fn.log_cosh, name, dtype)


@register_builtin("metrics", "cosine_similarity")
class CosineSimilarity(BuiltinMeanMetric):
    """Mean cosine similarity between labels and predictions (1 means equal directions).

    Args:
        name, dtype: See `Metric`.
        axis: The axis along which the similarity is computed (default -1).
    """

    _direction = "up"

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(cosine_similarity, name, dtype, axis=axis)


@register_builtin("metrics", "root_mean_squared_error")
class RootMeanSquaredError(Mean):
    """Square root of the (weighted) mean of squared errors over all samples seen."""

    _direction = "down"

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = convert_pair(y_true, y_pred, self._torch_dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        super().update_state(torch.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self):
        return torch.sqrt(super().result())
