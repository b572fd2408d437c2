"""Probabilistic metrics: sample-weighted means of cross-entropies and divergences."""
from __future__ import annotations

from kestrel.losses import functions as fn
from kestrel.metrics.reduction_metrics import BuiltinMeanMetric
from kestrel.registry.object_registry import register_builtin


@register_builtin("metrics", "kl_divergence", "kld", "KLD", "kullback_leibler_divergence")
class KLDivergence(BuiltinMeanMetric):
    """Mean Kullback-Leibler divergence between labels and predictions."""

    _direction = "down"

    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(fn.kl_divergence, name, dtype)


@register_builtin("metrics", "poisson")
class Poisson(BuiltinMeanMetric):
    """Mean Poisson loss: `y_pred - y_true * log(y_pred)`."""

    _direction = "down"

    def __init__(self, name="poisson", dtype=None):
        super().__init__(fn.poisson, name, dtype)


@register_builtin("metrics", "binary_crossentropy", "bce", "BCE")
class BinaryCrossentropy(BuiltinMeanMetric):
    """Mean binary cross-entropy.

    Args:
        name, dtype: See `Metric`.
        from_logits: Whether `y_pred` holds logits (default False).
        label_smoothing: Squeeze labels towards 0.5 by this amount (default 0).
    """

    _direction = "down"

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0):
        super().__init__(fn.binary_crossentropy, name, dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)


@register_builtin("metrics", "categorical_crossentropy")
class CategoricalCrossentropy(BuiltinMeanMetric):
    """Mean categorical cross-entropy for one-hot labels.

    Args:
        name, dtype: See `Metric`.
        from_logits: Whether `y_pred` holds logits (default False).
        label_smoothing: Mix labels with the uniform distribution by this amount (default 0).
        axis: The class axis (default -1).
    """

    _direction = "down"

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0, axis=-1):
        super().__init__(fn.categorical_crossentropy, name, dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


@register_builtin("metrics", "sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(BuiltinMeanMetric):
    """Mean categorical cross-entropy for integer labels.

    Args:
        name, dtype: See `Metric`.
        from_logits: Whether `y_pred` holds logits (default False).
        ignore_class: A label value whose entries count as loss 0 (default None).
        axis: The class axis (default -1).
    """

    _direction = "down"

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False,
                 ignore_class=None, axis=-1):
        super().__init__(fn.sparse_categorical_crossentropy, name, dtype,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)
