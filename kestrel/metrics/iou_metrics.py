"""Intersection-over-union metrics, from a confusion matrix accumulated on the device.

`IoU` averages `tp / (tp + fp + fn)` over chosen classes; `MeanIoU` over all of them;
`BinaryIoU` thresholds scores first; the `OneHot` variants take one-hot labels.
"""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.losses.loss import as_tensor
from kestrel.metrics.metric import Metric
from kestrel.registry.object_registry import register_builtin


def _labels(x, sparse: bool, axis: int, device) -> torch.Tensor:
    """Class ids of `x`, flat: truncated to integers if sparse, else argmax over `axis`."""
    x = as_tensor(x, device=device)
    if not sparse:
        x = torch.argmax(x, dim=axis)
    return x.reshape(-1).long()


@register_builtin("metrics", "io_u")
class IoU(Metric):
    """Mean intersection-over-union of the classes `target_class_ids`.

    Labels and predictions are class ids (or scores, with `sparse_*=False`); pairs with an id
    outside `[0, num_classes)` or a true id equal to `ignore_class` are skipped. Classes
    absent from both labels and predictions are left out of the mean. As in Keras the state
    dtype defaults to "int32", so fractional sample weights are truncated: pass
    `dtype="float32"` to weight with fractions.

    Args:
        num_classes: Number of classes (the confusion matrix is `num_classes` square).
        target_class_ids: The classes whose IoUs are averaged.
        name, dtype: See `Metric` (dtype of the confusion matrix; default "int32").
        ignore_class: A label id to ignore, or None.
        sparse_y_true: Whether labels are ids (else argmax over `axis`).
        sparse_y_pred: Whether predictions are ids (else argmax over `axis`).
        axis: The class axis of dense inputs.

    Example:
    >>> import kestrel
    >>> m = kestrel.metrics.IoU(num_classes=2, target_class_ids=[0])
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> round(float(m.result()), 4)
    0.3333
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(name=name, dtype=dtype or "int32")
        target_class_ids = list(target_class_ids)
        if max(target_class_ids) >= num_classes:
            raise ValueError(f"{type(self).__name__}: target class id "
                             f"{max(target_class_ids)} is out of range [0, {num_classes}). "
                             f"Received: num_classes={num_classes}")
        self.num_classes = num_classes
        self.target_class_ids = target_class_ids
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        self.total_cm = self.add_variable((num_classes, num_classes), "zeros",
                                          name="total_confusion_matrix")
        self._targets = torch.tensor(target_class_ids, device=self._device)

    def update_state(self, y_true, y_pred, sample_weight=None):
        device = self.total_cm.device
        y_true = _labels(y_true, self.sparse_y_true, self.axis, device)
        y_pred = _labels(y_pred, self.sparse_y_pred, self.axis, device)
        n = self.num_classes
        valid = (y_true >= 0) & (y_true < n) & (y_pred >= 0) & (y_pred < n)
        if self.ignore_class is not None:
            valid = valid & (y_true != self.ignore_class)
        dtype = self.total_cm.dtype
        if sample_weight is None:
            weight = valid.to(dtype)
        else:
            weight = as_tensor(sample_weight, dtype, device).reshape(-1)
            weight = torch.where(valid, weight.expand_as(y_true), 0)
        cells = torch.where(valid, y_true * n + y_pred, 0)
        self.total_cm.view(-1).index_add_(0, cells, weight)
        return self.total_cm.detach().clone()  # the updated matrix, as Keras returns it

    def result(self):
        cm = self.total_cm.to(torch.float32)
        tp = cm.diagonal()
        denominator = (cm.sum(0) + cm.sum(1) - tp)[self._targets]
        tp = tp[self._targets]
        present = denominator > 1e-9
        iou = torch.where(present, tp / (denominator + config.epsilon()), 0.0)
        return iou.sum() / (present.sum() + config.epsilon())

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


@register_builtin("metrics", "binary_io_u")
class BinaryIoU(IoU):
    """IoU of a binary task whose predictions are scores: `>= threshold` means class 1.

    Args:
        target_class_ids: `[0]`, `[1]` or `[0, 1]` (default: the mean of both).
        threshold: Scores at or above it predict class 1.
        name, dtype: See `IoU`.
    """

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name,
                         dtype=dtype)
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_tensor(y_pred, torch.float32, self.total_cm.device) >= self.threshold
        return super().update_state(y_true, y_pred, sample_weight)

    def get_config(self) -> dict:
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold,
                "name": self.name, "dtype": self.dtype}


@register_builtin("metrics", "mean_io_u")
class MeanIoU(IoU):
    """Mean IoU over all `num_classes` classes; arguments as `IoU` less `target_class_ids`."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, list(range(num_classes)), name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


@register_builtin("metrics", "one_hot_io_u")
class OneHotIoU(IoU):
    """`IoU` of one-hot labels (argmax over `axis`); predictions are scores unless
    `sparse_y_pred=True`."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids,
                "name": self.name, "dtype": self.dtype, "ignore_class": self.ignore_class,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


@register_builtin("metrics", "one_hot_mean_io_u")
class OneHotMeanIoU(MeanIoU):
    """`MeanIoU` of one-hot labels (argmax over `axis`); predictions are scores unless
    `sparse_y_pred=True`."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["sparse_y_true"]
        return config
