"""Goodness of fit for regression: Pearson and concordance correlation, and `R2Score`."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.losses.loss import as_tensor, convert_pair, squeeze_or_expand_to_same_rank
from kestrel.metrics.metric import Metric
from kestrel.metrics.reduction_metrics import BuiltinMeanMetric
from kestrel.registry.object_registry import register_builtin


def _pair(y_true, y_pred):
    return squeeze_or_expand_to_same_rank(*convert_pair(y_true, y_pred))


@register_builtin("metric_functions")
def pearson_correlation(y_true, y_pred, axis=-1):
    """Pearson correlation coefficient of `y_true` and `y_pred` along `axis`."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = y_true - y_true.mean(axis, keepdim=True)
    y_pred = y_pred - y_pred.mean(axis, keepdim=True)
    y_true = y_true / y_true.std(axis, correction=0, keepdim=True)
    y_pred = y_pred / y_pred.std(axis, correction=0, keepdim=True)
    return (y_true * y_pred).mean(axis)


@register_builtin("metric_functions")
def concordance_correlation(y_true, y_pred, axis=-1):
    """Lin's concordance correlation coefficient along `axis`, as Keras 3 computes it.

    Keras centres both factors of the covariance on the mean of `y_pred`; so does this.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    true_mean = y_true.mean(axis, keepdim=True)
    pred_mean = y_pred.mean(axis, keepdim=True)
    norm = (y_true.var(axis, correction=0, keepdim=True)
            + y_pred.var(axis, correction=0, keepdim=True) + torch.square(true_mean - pred_mean))
    covariance = (y_true - pred_mean) * (y_pred - pred_mean)
    return (2.0 * covariance / (norm + config.epsilon())).mean(axis)


@register_builtin("metrics", "pearson_correlation")
class PearsonCorrelation(BuiltinMeanMetric):
    """Mean over samples of the Pearson correlation along `axis`.

    Args:
        name, dtype: See `Metric`.
        axis: The axis the correlation is computed along.
    """

    def __init__(self, name="pearson_correlation", dtype=None, axis=-1):
        super().__init__(pearson_correlation, name, dtype, axis=axis)


@register_builtin("metrics", "concordance_correlation")
class ConcordanceCorrelation(BuiltinMeanMetric):
    """Mean over samples of the concordance correlation along `axis`.

    Args:
        name, dtype: See `Metric`.
        axis: The axis the correlation is computed along.
    """

    def __init__(self, name="concordance_correlation", dtype=None, axis=-1):
        super().__init__(concordance_correlation, name, dtype, axis=axis)


AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


@register_builtin("metrics", "r2_score")
class R2Score(Metric):
    """Coefficient of determination `1 - SS_res / SS_tot` per output, then aggregated.

    Args:
        class_aggregation: "uniform_average" (default), "variance_weighted_average", or None
            for one score per output.
        num_regressors: Number of independent regressors, for the adjusted R2 score; 0 (default)
            gives the plain score, and so does a count that leaves no degrees of freedom.
        name, dtype: See `Metric`.

    Inputs are `(batch_size, num_outputs)`; the per-output state is created on the first update.

    Example:
    >>> import kestrel
    >>> m = kestrel.metrics.R2Score()
    >>> m.update_state([[1.0], [4.0], [3.0]], [[2.0], [4.0], [4.0]])
    >>> round(float(m.result()), 4)
    0.5714
    """

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in AGGREGATIONS:
            raise ValueError("R2Score: invalid `class_aggregation`. Expected one of "
                             f"{AGGREGATIONS}. Received: class_aggregation={class_aggregation!r}")
        if num_regressors < 0:
            raise ValueError("R2Score: `num_regressors` must be >= 0. "
                             f"Received: num_regressors={num_regressors}")
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        # the state is floatx whatever the metric's dtype, as in Keras
        self.num_samples = self.add_variable((), "zeros", dtype=config.floatx(),
                                             name="num_samples")
        self._sums = None

    def _build(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        if y_true.dim() != 2 or y_pred.dim() != 2:
            raise ValueError("R2Score expects 2D inputs (batch_size, output_dim). Received: "
                             f"y_true.shape={tuple(y_true.shape)}, "
                             f"y_pred.shape={tuple(y_pred.shape)}")
        shape = (y_pred.shape[-1],)
        dtype = config.floatx()
        self.squared_sum = self.add_variable(shape, "zeros", dtype=dtype, name="squared_sum")
        self.sum = self.add_variable(shape, "zeros", dtype=dtype, name="sum")
        self.total_mse = self.add_variable(shape, "zeros", dtype=dtype, name="residual")
        self.count = self.add_variable(shape, "zeros", dtype=dtype, name="count")
        self._sums = (self.sum, self.squared_sum, self.total_mse, self.count)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = squeeze_or_expand_to_same_rank(
            *convert_pair(y_true, y_pred, self._torch_dtype))
        if self._sums is None:
            self._build(y_true, y_pred)
        weight = torch.ones((), dtype=y_true.dtype, device=y_true.device)
        if sample_weight is not None:
            weight = as_tensor(sample_weight, y_true.dtype, y_true.device)
            if weight.dim() == 1:
                weight = weight.unsqueeze(1)
        weight = torch.broadcast_to(weight, y_true.shape)
        weighted = y_true * weight
        terms = (weighted, y_true * weighted, torch.square(y_true - y_pred) * weight, weight)
        for variable, term in zip(self._sums, terms):
            variable.add_(term.sum(0))
        self.num_samples.add_(y_true.numel())

    def result(self):
        if self._sums is None:
            return torch.zeros((), dtype=config.to_torch_dtype(None), device=self._device)
        total_sum, squared_sum, residual, count = self._sums
        total = squared_sum - total_sum * (total_sum / count)
        scores = 1.0 - residual / total
        scores = torch.where(torch.isinf(scores), 0.0, scores)
        if self.class_aggregation == "uniform_average":
            scores = scores.mean()
        elif self.class_aggregation == "variance_weighted_average":
            scores = (total * scores).sum() / total.sum()
        if not self.num_regressors:
            return scores
        n = self.num_samples
        degrees = n - self.num_regressors - 1.0
        adjusted = 1.0 - (1.0 - scores) * (n - 1.0) / degrees
        return torch.where(degrees > 0, adjusted, scores)

    def get_config(self) -> dict:
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
