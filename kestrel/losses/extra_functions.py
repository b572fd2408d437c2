"""Per-sample losses beyond the classic ones: focal and generalized cross-entropy, Dice,
Tversky, Circle and CTC, with Keras 3's maths.

>>> import kestrel
>>> float(kestrel.losses.dice([[1.0, 0.0]], [[1.0, 0.0]]))
0.0
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel import config
from kestrel.losses.loss import as_tensor, convert_pair
from kestrel.losses.functions import loss_op
from kestrel.registry.object_registry import register_builtin


@register_builtin("losses")
@loss_op
def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """Categorical cross-entropy scaled by `alpha * (1 - p) ** gamma`, summed over `axis`.

    Args:
        alpha: Class balancing weight: a number or one weight per class.
        gamma: The focusing parameter; 0 gives plain (alpha-scaled) cross-entropy.
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Mix `y_true` with the uniform distribution by this amount.
        axis: The class axis.
    """
    if isinstance(axis, bool):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis!r}")
    y_true, y_pred = convert_pair(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    if from_logits:
        y_pred = torch.softmax(y_pred, dim=axis)
    eps = config.epsilon()
    probs = torch.clamp(y_pred / y_pred.sum(axis, keepdim=True), eps, 1.0 - eps)
    if not isinstance(alpha, (int, float)):
        alpha = as_tensor(alpha, probs.dtype, probs.device)
    focal = alpha * torch.pow(1.0 - probs, gamma) * -(y_true * torch.log(probs))
    return focal.sum(axis)


def _overlap_sums(y_true, y_pred, axis):
    """`sum(t * p)`, `sum(t)` and `sum(p)` over `axis` (over everything if None)."""
    y_true, y_pred = convert_pair(y_true, y_pred)
    dims = tuple(range(y_true.dim())) if axis is None else axis
    return (y_true * y_pred).sum(dims), y_true.sum(dims), y_pred.sum(dims)


@register_builtin("losses")
@loss_op
def dice(y_true, y_pred, axis=None):
    """`1 - 2 * sum(t * p) / (sum(t) + sum(p) + epsilon)` over `axis` (everything if None).

    Args:
        axis: Axis or tuple of axes to reduce; None reduces all of them to one number.
    """
    inter, sum_true, sum_pred = _overlap_sums(y_true, y_pred, axis)
    return 1.0 - 2.0 * inter / (sum_true + sum_pred + config.epsilon())


@register_builtin("losses")
@loss_op
def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """`1 - tp / (tp + alpha * fp + beta * fn + epsilon)` with soft counts over `axis`.

    Here `fp = sum(t * (1 - p))` and `fn = sum(p * (1 - t))`, as Keras defines them;
    `alpha = beta = 0.5` gives the Dice loss.

    Args:
        alpha: Weight of the `fp` term.
        beta: Weight of the `fn` term.
        axis: Axis or tuple of axes to reduce; None reduces all of them to one number.
    """
    inter, sum_true, sum_pred = _overlap_sums(y_true, y_pred, axis)
    fp, fn = sum_true - inter, sum_pred - inter
    return 1.0 - inter / (inter + alpha * fp + beta * fn + config.epsilon())


def _labels_column(labels: torch.Tensor) -> torch.Tensor:
    return labels.reshape(-1, 1) if labels.dim() == 1 else labels


@register_builtin("losses")
@loss_op
def circle(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True,
           gamma=80, margin=0.4):
    """Circle loss of L2-normalized embeddings `y_pred` `(batch, dim)` with integer labels.

    Pulls same-label pairs together and pushes other pairs apart in cosine distance. Rows
    without positive or negative pairs get loss 0 and are masked out of the reduction.

    Args:
        ref_labels: Labels of the reference embeddings; defaults to `y_true`.
        ref_embeddings: Reference embeddings; defaults to `y_pred`.
        remove_diagonal: Leave each sample's pair with itself out of the positives.
        gamma: Scale of the loss.
        margin: Relaxation margin.
    """
    y_pred = as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(config.to_torch_dtype(None))
    labels = _labels_column(as_tensor(y_true, device=y_pred.device).to(torch.int32))
    refs = y_pred if ref_embeddings is None else as_tensor(ref_embeddings, y_pred.dtype,
                                                           y_pred.device)
    ref_labels = labels if ref_labels is None else _labels_column(
        as_tensor(ref_labels, device=y_pred.device).to(torch.int32))
    distances = torch.clamp(1.0 - y_pred @ refs.T, min=0.0)
    positive = labels == ref_labels.T
    negative = ~positive
    if remove_diagonal:
        eye = torch.eye(labels.numel(), ref_labels.numel(), dtype=torch.bool,
                        device=y_pred.device)
        positive = positive & ~eye
    pos_weights = torch.clamp((margin + distances) * positive, min=0.0)
    neg_weights = torch.clamp((1.0 + margin - distances) * negative, min=0.0)
    pos_logits = -gamma * pos_weights * (margin - distances)
    neg_logits = gamma * neg_weights * (1.0 - margin - distances)
    pos_loss = torch.logsumexp(pos_logits.masked_fill(~positive, float("-inf")), dim=1)
    neg_loss = torch.logsumexp(neg_logits.masked_fill(~negative, float("-inf")), dim=1)
    loss = F.softplus(pos_loss + neg_loss)
    loss._keras_mask = loss > 0
    return loss


@loss_op
def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """`(1 - p ** q) / q`, `p` being the probability `y_pred` gives the integer label.

    Labels of shape `(batch,)` or `(batch, 1)`; labels outside the classes give `p = 0`.

    Args:
        q: Noise parameter in (0, 1): near 0 it acts like cross-entropy, near 1 like MAE.
    """
    y_pred = as_tensor(y_pred)
    labels = as_tensor(y_true, device=y_pred.device)
    if labels.dim() == y_pred.dim() and labels.shape[-1] == 1 and y_pred.shape[-1] != 1:
        labels = labels.squeeze(-1)
    classes = torch.arange(y_pred.shape[-1], device=y_pred.device)
    one_hot = (labels.long().unsqueeze(-1) == classes).to(y_pred.dtype)
    p = (y_pred * one_hot).sum(-1)
    return (1.0 - torch.pow(p, q)) / q


@register_builtin("losses")
@loss_op
def ctc(y_true, y_pred):
    """CTC loss of padded integer labels `(batch, max_length)` under logits
    `(batch, time, classes)`; label 0 is the blank and marks padding."""
    from kestrel.ops.nn_losses import ctc_loss  # ops import losses: import when first used

    y_true, y_pred = as_tensor(y_true), as_tensor(y_pred)
    if y_true.dim() != 2:
        raise ValueError("ctc: `y_true` must be integer labels of shape "
                         f"(batch_size, max_length). Received: y_true.shape={tuple(y_true.shape)}")
    if y_pred.dim() != 3:
        raise ValueError("ctc: `y_pred` must be logits of shape (batch_size, max_length, "
                         f"num_classes). Received: y_pred.shape={tuple(y_pred.shape)}")
    batch, steps = y_pred.shape[:2]
    label_length = (y_true != 0).sum(-1).int()
    input_length = torch.full((batch,), steps, dtype=torch.int32, device=y_pred.device)
    return ctc_loss(y_true.to(y_pred.device), y_pred, label_length, input_length, mask_index=0)
