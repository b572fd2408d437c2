"""F-scores: `FBetaScore` and `F1Score`, per class or averaged, from accumulated counts."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.losses.loss import as_tensor
from kestrel.metrics.metric import Metric
from kestrel.registry.object_registry import register_builtin

AVERAGES = (None, "micro", "macro", "weighted")


@register_builtin("metrics", "f_beta_score")
class FBetaScore(Metric):
    """F-beta score `(1 + b^2) * p * r / (b^2 * p + r)` of multi-class or multi-label outputs.

    Args:
        average: None (one score per class), "micro" (from counts over all classes),
            "macro" (mean of the class scores) or "weighted" (mean weighted by support).
        beta: Weight of recall relative to precision (a float > 0).
        threshold: Predictions above it count as positive; None marks each row's maximum.
        name, dtype: See `Metric`.

    Inputs are `(batch_size, num_classes)`; the state is created on the first update.

    Example:
    >>> import kestrel
    >>> m = kestrel.metrics.FBetaScore(beta=2.0, threshold=0.5)
    >>> m.update_state([[1, 0], [1, 1]], [[0.9, 0.6], [0.2, 0.7]])
    >>> [round(v, 4) for v in m.result().tolist()]
    [0.5556, 0.8333]
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if average not in AVERAGES:
            raise ValueError(f"{type(self).__name__}: invalid `average`. Expected one of "
                             f"{AVERAGES}. Received: average={average!r}")
        if not isinstance(beta, float) or beta <= 0.0:
            raise ValueError(f"{type(self).__name__}: `beta` must be a Python float > 0. "
                             f"Received: beta={beta!r}")
        if threshold is not None and (not isinstance(threshold, float)
                                      or not 0.0 < threshold <= 1.0):
            raise ValueError(f"{type(self).__name__}: `threshold` must be a Python float with "
                             f"0 < threshold <= 1. Received: threshold={threshold!r}")
        self.average = average
        self.beta = beta
        self.threshold = threshold
        self.axis = None if average == "micro" else 0
        self._counts = None

    def _build(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        if y_true.dim() != 2 or y_pred.dim() != 2:
            raise ValueError(f"{type(self).__name__} expects 2D inputs (batch_size, "
                             f"output_dim). Received: y_true.shape={tuple(y_true.shape)}, "
                             f"y_pred.shape={tuple(y_pred.shape)}")
        shape = () if self.average == "micro" else (y_pred.shape[-1],)
        names = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")
        self._counts = [self.add_variable(shape, "zeros", name=name) for name in names]
        for name, variable in zip(names, self._counts):
            setattr(self, name, variable)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_tensor(y_pred, self._torch_dtype, self._device)
        y_true = as_tensor(y_true, self._torch_dtype, y_pred.device)
        if self._counts is None:
            self._build(y_true, y_pred)
        if self.threshold is None:
            top = y_pred.amax(-1, keepdim=True)
            predicted = (y_pred >= top) & (torch.abs(y_pred) > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.to(y_true.dtype)
        weight = 1.0
        if sample_weight is not None:
            weight = as_tensor(sample_weight, y_true.dtype, y_true.device).unsqueeze(1)
        terms = (predicted * y_true, predicted * (1.0 - y_true), (1.0 - predicted) * y_true,
                 y_true)
        for variable, term in zip(self._counts, terms):
            term = term * weight
            variable.add_(term.sum() if self.axis is None else term.sum(self.axis))

    def result(self):
        if self._counts is None:
            return torch.zeros((), dtype=self._torch_dtype, device=self._device)
        tp, fp, fn, support = self._counts
        eps = config.epsilon()
        precision = tp / (tp + fp + eps)
        recall = tp / (tp + fn + eps)
        beta2 = self.beta**2
        score = (1.0 + beta2) * (precision * recall / (beta2 * precision + recall + eps))
        if self.average == "weighted":
            return (score * support / (support.sum() + eps)).sum()
        if self.average is not None:
            return score.mean()
        return score

    def get_config(self) -> dict:
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


@register_builtin("metrics", "f1_score")
class F1Score(FBetaScore):
    """F-1 score: the harmonic mean of precision and recall (`FBetaScore` with beta 1).

    Args:
        average: None, "micro", "macro" or "weighted"; see `FBetaScore`.
        threshold: Predictions above it count as positive; None marks each row's maximum.
        name, dtype: See `Metric`.

    Example:
    >>> import kestrel
    >>> m = kestrel.metrics.F1Score(threshold=0.5)
    >>> m.update_state([[1, 1, 1], [1, 0, 0], [1, 1, 0]],
    ...                [[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]])
    >>> [round(v, 4) for v in m.result().tolist()]
    [0.5, 0.8, 0.6667]
    """

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["beta"]
        return config
