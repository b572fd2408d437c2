"""AUC: area under the ROC or precision-recall curve, from confusion counts at thresholds."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.losses.loss import divide_no_nan, float_tensor
from kestrel.metrics import metrics_utils
from kestrel.metrics.metric import Metric
from kestrel.registry.object_registry import register_builtin

CURVES = ("ROC", "PR", "PRGAIN")
SUMMATION_METHODS = ("interpolation", "majoring", "minoring")


def _choice(value, allowed, argument):
    for option in allowed:
        if str(value).lower() == option.lower():
            return option
    raise ValueError(f"Invalid `{argument}` argument value. Expected one of {allowed}. "
                     f"Received: {argument}={value!r}")


@register_builtin("metrics", "auc")
class AUC(Metric):
    """Approximate area under the ROC or PR curve, as Keras computes it.

    Predictions are bucketed at `num_thresholds` thresholds; the curve through the confusion
    counts at those thresholds is integrated with a Riemann sum (`summation_method`), or, for
    `curve="PR"` with interpolation, with the Davis & Goadrich interpolation.

    Args:
        num_thresholds: Number of thresholds, evenly spaced in [0, 1] (default 200).
        curve: "ROC" (default), "PR" or "PRGAIN".
        summation_method: "interpolation" (default), "majoring" or "minoring".
        name, dtype: See `Metric`.
        thresholds: Explicit thresholds in [0, 1] instead of `num_thresholds`.
        multi_label: Compute one AUC per label (last axis) and average them.
        num_labels: Number of labels, to create the state before the first update.
        label_weights: Per-label weights for the average (or per-class data weights when
            `multi_label=False`).
        from_logits: Whether predictions are logits (a sigmoid is applied first).
    """

    _direction = "up"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name=name, dtype=dtype)
        self.curve = _choice(curve, CURVES, "curve")
        self.summation_method = _choice(summation_method, SUMMATION_METHODS, "summation_method")
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(metrics_utils.parse_thresholds(thresholds, 0.5))
            self.num_thresholds = len(inner) + 2
            self._evenly = metrics_utils.is_evenly_distributed([0.0, *inner, 1.0])
        else:
            if num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            self.num_thresholds = num_thresholds
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._evenly = True
        eps = config.epsilon()
        self._thresholds = [0.0 - eps, *inner, 1.0 + eps]
        self._thresholds_tensor = torch.tensor(self._thresholds, dtype=self._torch_dtype,
                                               device=self._device)
        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = None
        if label_weights is not None:
            self.label_weights = torch.tensor(label_weights, dtype=self._torch_dtype,
                                              device=self._device)
        self._from_logits = from_logits
        self._counts = None
        if not multi_label and num_labels:
            raise ValueError("`num_labels` is needed only when `multi_label` is True. "
                             f"Received: num_labels={num_labels}")
        if not multi_label or num_labels:
            self._build(num_labels)

    @property
    def thresholds(self) -> list[float]:
        """The thresholds, including the end points just below 0 and just above 1."""
        return list(self._thresholds)

    def _build(self, num_labels):
        shape = (self.num_thresholds, num_labels) if self.multi_label else (self.num_thresholds,)
        self._counts = {}
        for key, attr in (("tp", "true_positives"), ("fp", "false_positives"),
                          ("tn", "true_negatives"), ("fn", "false_negatives")):
            # floatx whatever the metric's dtype, as Keras (float16 counts stop at 2048)
            self._counts[key] = self.add_variable(shape, "zeros", dtype=config.floatx(), name=attr)
            setattr(self, attr, self._counts[key])

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = float_tensor(y_pred)
        if self._counts is None:
            if y_pred.dim() != 2:
                raise ValueError("`y_pred` must have rank 2 when `multi_label=True`. "
                                 f"Received: y_pred.shape={tuple(y_pred.shape)}")
            self._build(y_pred.shape[-1])
        if self._from_logits:
            y_pred = torch.sigmoid(y_pred)
        metrics_utils.update_confusion_matrix_variables(
            self._counts, y_true, y_pred, self._thresholds, self._thresholds_tensor,
            evenly=self._evenly, sample_weight=sample_weight, multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights)

    def _average(self, per_label: torch.Tensor) -> torch.Tensor:
        if not self.multi_label:
            return per_label.sum()
        by_label = per_label.sum(0)
        if self.label_weights is None:
            return by_label.mean()
        return divide_no_nan((by_label * self.label_weights).sum(), self.label_weights.sum())

    def interpolate_pr_auc(self) -> torch.Tensor:
        """PR AUC with precision interpolated between thresholds (Davis & Goadrich, 2006)."""
        tp, fp, fn = self._counts["tp"], self._counts["fp"], self._counts["fn"]
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = divide_no_nan(dtp, dp.clamp(min=0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = torch.where(both, divide_no_nan(p[:-1], p[1:].clamp(min=0)), 1.0)
        increments = divide_no_nan(slope * (dtp + intercept * torch.log(ratio)),
                                   (tp[1:] + fn[1:]).clamp(min=0))
        return self._average(increments)

    def _curve_points(self):
        tp, fp, tn, fn = (self._counts[k] for k in ("tp", "fp", "tn", "fn"))
        recall = divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            return divide_no_nan(fp, fp + tn), recall
        if self.curve == "PR":
            return recall, divide_no_nan(tp, tp + fp)
        scale = divide_no_nan(tp + fn, tn + fp)
        no_tp = tp == 0
        recall_gain = torch.where(no_tp, 0.0, 1.0 - scale * divide_no_nan(fn, tp))
        precision_gain = torch.where(no_tp, 1.0, 1.0 - scale * divide_no_nan(fp, tp))
        return recall_gain.clamp(min=0.0), precision_gain

    def result(self):
        if self._counts is None:
            return torch.zeros((), dtype=self._torch_dtype, device=self._device)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self.interpolate_pr_auc()
        x, y = self._curve_points()
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return self._average((x[:-1] - x[1:]) * heights)

    def get_config(self) -> dict:
        label_weights = None if self.label_weights is None else self.label_weights.tolist()
        config = {**super().get_config(), "num_thresholds": self.num_thresholds,
                  "curve": self.curve, "summation_method": self.summation_method,
                  "multi_label": self.multi_label, "num_labels": self.num_labels,
                  "label_weights": label_weights, "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
