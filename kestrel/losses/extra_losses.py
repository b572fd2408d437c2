"""Loss classes for focal and generalized cross-entropy, Dice, Tversky, Circle and CTC.

>>> import kestrel
>>> loss = kestrel.losses.Dice()
>>> float(loss([[1.0, 0.0]], [[1.0, 0.0]]))
0.0
"""
from __future__ import annotations

from kestrel.losses import extra_functions as fn
from kestrel.losses.losses import _BuiltinLoss
from kestrel.registry.object_registry import register_builtin


@register_builtin("losses")
class CategoricalFocalCrossentropy(_BuiltinLoss):
    """Categorical cross-entropy that down-weights easy examples by `alpha * (1 - p) ** gamma`.

    Args:
        alpha: Class balancing weight: a number or one weight per class.
        gamma: The focusing parameter.
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Mix labels with the uniform distribution by this amount.
        axis: The class axis.
        reduction, name, dtype: See `Loss`.

    Example:
    >>> import kestrel
    >>> loss = kestrel.losses.CategoricalFocalCrossentropy()
    >>> round(float(loss([[0, 1, 0]], [[0.05, 0.9, 0.05]])), 6)
    0.000263
    """

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy",
                 dtype=None):
        super().__init__(fn.categorical_focal_crossentropy, reduction, name, dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis,
                         alpha=alpha, gamma=gamma)


@register_builtin("losses")
class Dice(_BuiltinLoss):
    """Dice loss `1 - 2 * sum(t * p) / (sum(t) + sum(p))`, for segmentation.

    Args:
        reduction, name: See `Loss`.
        axis: Axes to reduce; None (default) gives one number for the whole batch.
        dtype: See `Loss`.
    """

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(fn.dice, reduction, name, dtype, axis=axis)


@register_builtin("losses")
class Tversky(_BuiltinLoss):
    """Tversky loss: Dice with weights `alpha`, `beta` on false positives and negatives.

    Args:
        alpha: Weight of the false positives term.
        beta: Weight of the false negatives term.
        reduction, name: See `Loss`.
        axis: Axes to reduce; None (default) gives one number for the whole batch.
        dtype: See `Loss`.
    """

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky",
                 axis=None, dtype=None):
        super().__init__(fn.tversky, reduction, name, dtype, alpha=alpha, beta=beta, axis=axis)


@register_builtin("losses")
class Circle(_BuiltinLoss):
    """Circle loss of L2-normalized embeddings `(batch, dim)` given integer labels `(batch,)`.

    Args:
        gamma: Scale of the loss.
        margin: Relaxation margin.
        remove_diagonal: Leave each sample's pair with itself out of the positives.
        reduction, name, dtype: See `Loss`.
    """

    def __init__(self, gamma=80.0, margin=0.4, remove_diagonal=True,
                 reduction="sum_over_batch_size", name="circle", dtype=None):
        super().__init__(fn.circle, reduction, name, dtype, gamma=gamma, margin=margin,
                         remove_diagonal=remove_diagonal)


@register_builtin("losses")
class CategoricalGeneralizedCrossEntropy(_BuiltinLoss):
    """Generalized cross-entropy `(1 - p ** q) / q` of integer labels, robust to label noise.

    Args:
        q: Noise parameter in (0, 1): near 0 it acts like cross-entropy, near 1 like MAE.
        reduction, name, dtype: See `Loss`.
    """

    def __init__(self, q=0.5, reduction="sum_over_batch_size",
                 name="categorical_generalized_cross_entropy", dtype=None):
        if not 0 < q < 1:
            raise ValueError("CategoricalGeneralizedCrossEntropy: `q` must be in the interval "
                             f"(0, 1). Received: q={q}")
        super().__init__(fn.categorical_generalized_cross_entropy, reduction, name, dtype, q=q)


@register_builtin("losses")
class CTC(_BuiltinLoss):
    """Connectionist Temporal Classification loss of integer labels `(batch, max_length)`
    (0 is the blank and padding) under logits `(batch, time, classes)`.

    Args:
        reduction, name, dtype: See `Loss`.
    """

    def __init__(self, reduction="sum_over_batch_size", name="ctc", dtype=None):
        super().__init__(fn.ctc, reduction, name, dtype)
