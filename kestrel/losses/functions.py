"""Per-sample loss functions: `(y_true, y_pred) -> loss` with the last axis reduced.

Each matches Keras 3's maths, including its clipping of probabilities to
`[epsilon, 1 - epsilon]` when `from_logits=False`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kestrel import config
from kestrel.backend.dtypes import result_type
from kestrel.losses.loss import convert_pair, float_tensor, squeeze_or_expand_to_same_rank
from kestrel.ops.dispatch import keras_op
from kestrel.registry.object_registry import register_builtin

loss_op = keras_op(prefix="losses.")  # on KerasTensors: one graph node


def _pair(y_true, y_pred):
    return squeeze_or_expand_to_same_rank(*convert_pair(y_true, y_pred))


def _same_shape_pair(y_true, y_pred):
    """`convert_pair`, refusing shapes that differ as Keras' binary cross-entropies do (the
    loss classes align a trailing size-1 axis before calling them)."""
    y_true, y_pred = convert_pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError("Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={tuple(y_true.shape)}, output.shape={tuple(y_pred.shape)}")
    return y_true, y_pred


def _maximum(x: torch.Tensor, low: float) -> torch.Tensor:
    """`max(x, low)` in the dtype of Keras' `ops.maximum` with a Python float (float64 gives
    float32)."""
    return torch.clamp(x, min=low).to(getattr(torch, result_type(x.dtype, float)))


def _check_axis(axis):
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis!r}")


@register_builtin("losses", "mse", "MSE")
@loss_op
def mean_squared_error(y_true, y_pred):
    """Mean of `(y_true - y_pred) ** 2` over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    return torch.square(y_true - y_pred).mean(-1)


@register_builtin("losses", "mae", "MAE")
@loss_op
def mean_absolute_error(y_true, y_pred):
    """Mean of `|y_true - y_pred|` over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    return torch.abs(y_true - y_pred).mean(-1)


@register_builtin("losses", "mape", "MAPE")
@loss_op
def mean_absolute_percentage_error(y_true, y_pred):
    """`100 * mean(|(y_true - y_pred) / max(|y_true|, epsilon)|)` over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    diff = torch.abs((y_true - y_pred) / torch.clamp(torch.abs(y_true), min=config.epsilon()))
    return 100.0 * diff.mean(-1)


@register_builtin("losses", "msle", "MSLE")
@loss_op
def mean_squared_logarithmic_error(y_true, y_pred):
    """Mean of `(log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1)) ** 2`."""
    y_true, y_pred = _pair(y_true, y_pred)
    eps = config.epsilon()
    # Keras compares with epsilon as a floatx tensor: float16 inputs give a floatx result
    dtype = getattr(torch, result_type(y_pred.dtype, config.floatx()))
    first = torch.log(torch.clamp(y_pred, min=eps).to(dtype) + 1.0)
    second = torch.log(torch.clamp(y_true, min=eps).to(dtype) + 1.0)
    return torch.square(first - second).mean(-1)


def l2_normalize(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """`x / ||x||`, with the squared norm clamped at `epsilon ** 2`."""
    square_sum = torch.square(x).sum(axis, keepdim=True)
    return x * torch.rsqrt(torch.clamp(square_sum, min=config.epsilon() ** 2))


@register_builtin("losses", "cosine_proximity", "cosine")  # Keras 2's names
@loss_op
def cosine_similarity(y_true, y_pred, axis=-1):
    """Negative cosine similarity along `axis` (-1 means equal directions)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return -(l2_normalize(y_true, axis) * l2_normalize(y_pred, axis)).sum(axis)


@register_builtin("losses")
@loss_op
def huber(y_true, y_pred, delta=1.0):
    """Huber loss: quadratic for `|error| <= delta`, linear beyond, averaged over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    error = y_pred - y_true
    abs_error = torch.abs(error)
    quadratic = 0.5 * torch.square(error)
    linear = delta * abs_error - 0.5 * delta**2
    return torch.where(abs_error <= delta, quadratic, linear).mean(-1)


@register_builtin("losses", "logcosh")
@loss_op
def log_cosh(y_true, y_pred):
    """Mean of `log(cosh(y_pred - y_true))`, computed stably."""
    y_true, y_pred = _pair(y_true, y_pred)
    x = y_pred - y_true
    return (x + F.softplus(-2.0 * x) - math.log(2.0)).mean(-1)


def _hinge_labels(y_true: torch.Tensor) -> torch.Tensor:
    """Map {0, 1} labels to {-1, 1}; leave other labels as they are (no host sync)."""
    is_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


@register_builtin("losses")
@loss_op
def hinge(y_true, y_pred):
    """Mean of `max(1 - y_true * y_pred, 0)`; labels in {0, 1} become {-1, 1}."""
    y_true, y_pred = convert_pair(y_true, y_pred)
    return _maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0).mean(-1)


@register_builtin("losses")
@loss_op
def squared_hinge(y_true, y_pred):
    """Mean of `max(1 - y_true * y_pred, 0) ** 2`; labels in {0, 1} become {-1, 1}."""
    y_true, y_pred = convert_pair(y_true, y_pred)
    return torch.square(_maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0)).mean(-1)


@register_builtin("losses")
@loss_op
def categorical_hinge(y_true, y_pred):
    """`max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)` over the last axis."""
    y_true, y_pred = convert_pair(y_true, y_pred)
    pos = (y_true * y_pred).sum(-1)
    neg = ((1.0 - y_true) * y_pred).amax(-1)
    return _maximum(neg - pos + 1.0, 0.0)


@register_builtin("losses", "kld", "KLD", "kullback_leibler_divergence")
@loss_op
def kl_divergence(y_true, y_pred):
    """`sum(y_true * log(y_true / y_pred))` with both clipped to `[epsilon, 1]`."""
    y_true, y_pred = convert_pair(y_true, y_pred)
    y_true = torch.clamp(y_true, config.epsilon(), 1.0)
    y_pred = torch.clamp(y_pred, config.epsilon(), 1.0)
    return (y_true * torch.log(y_true / y_pred)).sum(-1)


@register_builtin("losses")
@loss_op
def poisson(y_true, y_pred):
    """Mean of `y_pred - y_true * log(y_pred + epsilon)` over the last axis."""
    y_true, y_pred = convert_pair(y_true, y_pred)
    return (y_pred - y_true * torch.log(y_pred + config.epsilon())).mean(-1)


def _clipped_log_probs(y_pred: torch.Tensor, axis: int) -> torch.Tensor:
    eps = config.epsilon()
    probs = y_pred / y_pred.sum(axis, keepdim=True)
    return torch.log(torch.clamp(probs, eps, 1.0 - eps))


def _picked_clipped_log_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`-log(clip(p / sum(p)))` at the target class (axis 1): the values and gradients of
    normalizing, clipping and taking the log of every class first, computed once per sample
    instead of once per class."""
    eps = config.epsilon()
    picked = probs.gather(1, target.unsqueeze(1)).squeeze(1)
    return torch.log(torch.clamp(picked / probs.sum(1), eps, 1.0 - eps)).neg_()


@register_builtin("losses")
@loss_op
def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Cross-entropy between one-hot (or soft) labels and predicted class probabilities.

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Mix `y_true` with the uniform distribution by this amount.
        axis: The class axis.
    """
    _check_axis(axis)
    y_true, y_pred = convert_pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError("Arguments `y_true` and `y_pred` must have the same shape. "
                         f"Received: y_true.shape={tuple(y_true.shape)}, "
                         f"y_pred.shape={tuple(y_pred.shape)}")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[axis]
    if from_logits:
        return -(y_true * F.log_softmax(y_pred, dim=axis)).sum(axis)
    return -(y_true * _clipped_log_probs(y_pred, axis)).sum(axis)


@register_builtin("losses")
@loss_op
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Cross-entropy between integer labels and predicted class probabilities.

    Labels may have shape `(batch,)` or `(batch, 1)` (and `(batch, time)` for sequences), as
    integers or floats. With `ignore_class`, those entries get loss 0 and are masked out of the
    reduction through the result's `_keras_mask`.

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        ignore_class: A label value whose entries are ignored, or None.
        axis: The class axis.
    """
    _check_axis(axis)
    y_pred = float_tensor(y_pred)
    y_true = torch.as_tensor(y_true, device=y_pred.device)
    if y_true.dim() == y_pred.dim() and y_true.shape[axis] == 1:
        y_true = y_true.squeeze(axis)
    y_true = y_true.long()
    expected = y_pred.shape[:axis % y_pred.dim()] + y_pred.shape[axis % y_pred.dim() + 1:]
    if y_true.shape != expected:
        raise ValueError("Arguments `y_true` and `y_pred` must have the same shape up until "
                         f"the class axis. Received: y_true.shape={tuple(y_true.shape)}, "
                         f"y_pred.shape={tuple(y_pred.shape)}")
    logits = y_pred if y_pred.dim() > 1 else y_pred.unsqueeze(0)
    target = y_true if y_pred.dim() > 1 else y_true.unsqueeze(0)
    class_axis = axis % y_pred.dim() if y_pred.dim() > 1 else 1
    if class_axis != 1:
        logits = logits.movedim(class_axis, 1)
    ignore = -100 if ignore_class is None else int(ignore_class)
    try:
        if from_logits:
            result = F.cross_entropy(logits, target, reduction="none", ignore_index=ignore)
        elif ignore_class is None:
            result = _picked_clipped_log_loss(logits, target)
        else:
            result = F.nll_loss(_clipped_log_probs(logits, 1), target, reduction="none",
                                ignore_index=ignore)
    except (IndexError, RuntimeError):  # the labels are read only here, on the error path
        _check_label_range(target, logits.shape[1], ignore_class)
        raise
    if result.shape != y_true.shape:
        result = result.reshape(y_true.shape)
    if ignore_class is not None:
        result._keras_mask = y_true != ignore
    return result


def _check_label_range(labels: torch.Tensor, num_classes: int, ignore_class) -> None:
    """Raise a ValueError naming the first label outside `[0, num_classes)`, if any."""
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_class is not None:
        bad &= labels != int(ignore_class)
    if bool(bad.any()):
        label = int(labels[bad][0])
        raise ValueError(
            f"sparse_categorical_crossentropy: label {label} is out of range for "
            f"{num_classes} classes: labels must be in [0, {num_classes - 1}]"
            f"{'' if ignore_class is None else f' or equal ignore_class={ignore_class}'}. "
            f"Received: label={label}")


def _smooth_binary(y_true, label_smoothing):
    return y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else y_true


def _binary_crossentropy(y_true, probs):
    """Element-wise cross-entropy of clipped probabilities; each log is kept >= -100 (as
    PyTorch's `binary_cross_entropy`, which Keras' torch backend calls), so float16 inputs,
    where `1 - epsilon` rounds to 1, give a finite loss instead of inf or nan."""
    eps = config.epsilon()
    probs = torch.clamp(probs, eps, 1.0 - eps)
    log_p = torch.log(probs).clamp(min=-100.0)
    log_not_p = torch.log(1.0 - probs).clamp(min=-100.0)
    return -(y_true * log_p + (1.0 - y_true) * log_not_p)


@register_builtin("losses", "bce", "BCE")
@loss_op
def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary cross-entropy averaged over `axis`.

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Squeeze labels towards 0.5 by this amount.
        axis: The axis the mean is taken over.
    """
    y_true, y_pred = _same_shape_pair(y_true, y_pred)
    y_true = _smooth_binary(y_true, label_smoothing)
    if from_logits:
        bce = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        bce = _binary_crossentropy(y_true, y_pred)
    return bce.mean(axis)


@register_builtin("losses")
@loss_op
def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary cross-entropy scaled by the focal factor `(1 - p_t) ** gamma`, averaged over `axis`.

    Args:
        apply_class_balancing: Weight positives by `alpha` and negatives by `1 - alpha`.
        alpha: The class balancing weight.
        gamma: The focusing parameter.
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Squeeze labels towards 0.5 by this amount.
        axis: The axis the mean is taken over.
    """
    y_true, y_pred = _same_shape_pair(y_true, y_pred)
    y_true = _smooth_binary(y_true, label_smoothing)
    if from_logits:
        y_pred = torch.sigmoid(y_pred)
    bce = _binary_crossentropy(y_true, y_pred)
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = torch.pow(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return focal.mean(axis)
