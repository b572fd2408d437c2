"""Confusion-matrix accumulation at a set of thresholds, shared by Precision, Recall and AUC."""
from __future__ import annotations

import numpy as np
import torch

from kestrel import config
from kestrel.losses.loss import as_tensor, squeeze_or_expand_to_same_rank

NEG_INF = -1e10
CONFUSION_KEYS = ("tp", "fp", "tn", "fn")


def parse_thresholds(thresholds, default: float) -> list[float]:
    """`thresholds` (a number or a list of numbers in [0, 1]) as a list; `[default]` if None."""
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple)) else [thresholds]
    invalid = [t for t in values if t is None or not 0 <= t <= 1]
    if invalid:
        raise ValueError(f"Threshold values must be in [0, 1]. Received: thresholds={thresholds}")
    return [float(t) for t in values]


def is_evenly_distributed(thresholds) -> bool:
    """Whether `thresholds` are `i / (n - 1)` for `i` in `0..n-1` (n >= 3), up to epsilon."""
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=config.epsilon()))


def filter_top_k(x: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the `k` largest entries of each row (first ones on ties); set the others very low."""
    top = torch.sort(x, dim=-1, descending=True, stable=True).indices[..., :k]
    keep = torch.zeros_like(x, dtype=torch.bool).scatter_(-1, top, True)
    return torch.where(keep, x, NEG_INF)


def _reverse_cumsum(x: torch.Tensor) -> torch.Tensor:
    return x.flip(0).cumsum(0).flip(0)


def _bucket_counts(labels, weights, y_pred, num_thresholds, with_epsilon):
    """tp and fp at evenly spaced thresholds by histogramming predictions (no sort, no sync).

    A prediction `p` is above threshold `i / (n - 1)` exactly when `ceil(p * (n - 1)) > i`.
    """
    n, num_labels = num_thresholds, y_pred.shape[1]
    bucket = torch.ceil(y_pred.clamp(0.0, 1.0) * (n - 1)).long()
    if with_epsilon:  # the first threshold is -epsilon: every prediction is above it
        bucket = bucket.clamp(min=1)
    index = (bucket * num_labels + torch.arange(num_labels, device=y_pred.device)).reshape(-1)
    positives = labels * weights
    negatives = (1.0 - labels) * weights

    def above(values):
        hist = torch.zeros(n * num_labels, dtype=values.dtype, device=values.device)
        hist = hist.index_add_(0, index, values.reshape(-1)).reshape(n, num_labels)
        counts = _reverse_cumsum(hist)
        return torch.cat([counts[1:], torch.zeros_like(counts[:1])])

    tp, fp = above(positives), above(negatives)
    return {"tp": tp, "fp": fp, "fn": positives.sum(0) - tp, "tn": negatives.sum(0) - fp}


def _threshold_counts(labels, weights, y_pred, thresholds, keys):
    """tp, fp, tn, fn by comparing every prediction with every threshold."""
    is_pos = y_pred.unsqueeze(0) > thresholds.reshape(-1, 1, 1)
    is_true = labels.bool().unsqueeze(0)
    conditions = {"tp": (is_true, is_pos), "fp": (~is_true, is_pos),
                  "tn": (~is_true, ~is_pos), "fn": (is_true, ~is_pos)}
    return {key: ((conditions[key][0] & conditions[key][1]) * weights).sum(1) for key in keys}


def update_confusion_matrix_variables(variables: dict, y_true, y_pred, thresholds,
                                      thresholds_tensor=None, *, evenly=False, top_k=None,
                                      class_id=None, sample_weight=None, multi_label=False,
                                      label_weights=None) -> None:
    """Add the weighted confusion counts at each threshold to `variables`, in place.

    Args:
        variables: Maps "tp", "fp", "tn", "fn" (any subset) to state tensors of shape
            `(num_thresholds,)`, or `(num_thresholds, num_labels)` when `multi_label`.
        y_true, y_pred: Labels (nonzero means positive) and scores.
        thresholds: The thresholds, as a list; a prediction counts as positive above one.
        thresholds_tensor: The same on the variables' device (needed unless `evenly`).
        evenly: Whether the thresholds are evenly spaced in [0, 1] (fast bucketing path).
        top_k: Only the `k` highest scores of each row count as positive.
        class_id: Only this class (last axis) is considered.
        sample_weight: Weights broadcastable to the labels.
        multi_label: Keep the last axis as separate labels instead of flattening.
        label_weights: Per-class weights (not with `multi_label`).
    """
    state = next(iter(variables.values()))
    y_true = as_tensor(y_true, state.dtype, state.device)
    y_pred = as_tensor(y_pred, state.dtype, state.device)
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if sample_weight is not None:
        sample_weight = as_tensor(sample_weight, state.dtype, state.device).unsqueeze(-1)
        _, sample_weight = squeeze_or_expand_to_same_rank(y_true, sample_weight, False)
    if top_k is not None:
        y_pred = filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.dim() == 1:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape "
                             f"(num_samples, num_classes). Received: y_pred.shape="
                             f"{tuple(y_pred.shape)}")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    weights = torch.ones_like(y_pred)
    if sample_weight is not None:
        weights = weights * sample_weight
    if label_weights is not None:
        weights = weights * label_weights
    width = y_pred.shape[-1] if multi_label else 1
    labels = (y_true != 0).to(state.dtype).expand_as(y_pred).reshape(-1, width)
    weights, y_pred = weights.reshape(-1, width), y_pred.reshape(-1, width)
    if evenly:
        counts = _bucket_counts(labels, weights, y_pred, len(thresholds),
                                with_epsilon=thresholds[0] < 0.0 or thresholds[-1] > 1.0)
    else:
        counts = _threshold_counts(labels, weights, y_pred, thresholds_tensor, variables)
    for key, variable in variables.items():
        variable.add_(counts[key].reshape(variable.shape))
