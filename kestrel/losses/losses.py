"""Loss classes: each wraps a per-sample function from `kestrel.losses.functions`."""
from __future__ import annotations

import kestrel.backend.rebinding as rebinding
from kestrel.losses import functions as fn
from kestrel.losses.loss import Loss, squeeze_or_expand_to_same_rank
from kestrel.registry.object_registry import get_registered_name, is_builtin, register_builtin
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


def call_per_sample(function, y_true, y_pred, kwargs: dict):
    """`function(y_true, y_pred, **kwargs)`; a user's function that assigns with `op=`
    (Keras 2's `y_pred /= K.sum(y_pred, axis=-1, keepdims=True)`) makes new tensors there,
    as on TensorFlow, instead of writing into the model's output or the targets."""
    if rebinding.function_needs_rebinding(function):
        with rebinding.rebinding():
            return function(y_true, y_pred, **kwargs)
    return function(y_true, y_pred, **kwargs)


def serialize_function(function, module: str):
    """Keras 3's form of a function reference: built-ins by name in `module`."""
    if is_builtin(function):
        return {"module": module, "class_name": "function",
                "config": get_registered_name(function), "registered_name": "function"}
    return serialize_keras_object(function)


@register_builtin("losses")
class LossFunctionWrapper(Loss):
    """A `Loss` that calls `fn(y_true, y_pred, **kwargs)` per sample.

    Args:
        fn: The per-sample loss function.
        reduction: See `Loss`.
        name: Name of the loss.
        dtype: See `Loss`.
        **kwargs: Keyword arguments passed to `fn`.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return call_per_sample(self.fn, y_true, y_pred, self._fn_kwargs)

    def get_config(self) -> dict:
        return {**super().get_config(), "fn": serialize_function(self.fn, "keras.losses"),
                **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if "fn" in config and not callable(config["fn"]):
            config["fn"] = deserialize_keras_object(config["fn"], "losses")
        return cls(**config)

    def __repr__(self):
        return f"<LossFunctionWrapper({self.fn}, kwargs={self._fn_kwargs})>"


class _BuiltinLoss(LossFunctionWrapper):
    """A built-in wrapper: its arguments become attributes and its config lists them."""

    def __init__(self, function, reduction, name, dtype, **kwargs):
        super().__init__(function, reduction=reduction, name=name, dtype=dtype, **kwargs)
        for key, value in kwargs.items():
            setattr(self, key, value)

    def get_config(self) -> dict:
        return {**Loss.get_config(self), **self._fn_kwargs}

    __repr__ = Loss.__repr__


@register_builtin("losses")
class MeanSquaredError(_BuiltinLoss):
    """Mean of squared errors: `mean(square(y_true - y_pred))`."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(fn.mean_squared_error, reduction, name, dtype)


@register_builtin("losses")
class MeanAbsoluteError(_BuiltinLoss):
    """Mean of absolute errors: `mean(abs(y_true - y_pred))`."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(fn.mean_absolute_error, reduction, name, dtype)


@register_builtin("losses")
class MeanAbsolutePercentageError(_BuiltinLoss):
    """`100 * mean(abs((y_true - y_pred) / y_true))`."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error",
                 dtype=None):
        super().__init__(fn.mean_absolute_percentage_error, reduction, name, dtype)


@register_builtin("losses")
class MeanSquaredLogarithmicError(_BuiltinLoss):
    """`mean(square(log(y_true + 1) - log(y_pred + 1)))`."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error",
                 dtype=None):
        super().__init__(fn.mean_squared_logarithmic_error, reduction, name, dtype)


@register_builtin("losses")
class CosineSimilarity(_BuiltinLoss):
    """Negative cosine similarity: -1 when `y_true` and `y_pred` point the same way.

    Args:
        axis: The axis along which the similarity is computed.
        reduction, name, dtype: See `Loss`.
    """

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity",
                 dtype=None):
        super().__init__(fn.cosine_similarity, reduction, name, dtype, axis=axis)


@register_builtin("losses")
class Huber(_BuiltinLoss):
    """Huber loss: quadratic for errors up to `delta`, linear beyond.

    Args:
        delta: Where the loss changes from quadratic to linear.
        reduction, name, dtype: See `Loss`.
    """

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(fn.huber, reduction, name, dtype, delta=delta)


@register_builtin("losses")
class LogCosh(_BuiltinLoss):
    """Logarithm of the hyperbolic cosine of the prediction error."""

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(fn.log_cosh, reduction, name, dtype)


@register_builtin("losses")
class Hinge(_BuiltinLoss):
    """`mean(maximum(1 - y_true * y_pred, 0))`; labels in {0, 1} become {-1, 1}."""

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(fn.hinge, reduction, name, dtype)


@register_builtin("losses")
class SquaredHinge(_BuiltinLoss):
    """`mean(square(maximum(1 - y_true * y_pred, 0)))`; {0, 1} labels become {-1, 1}."""

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(fn.squared_hinge, reduction, name, dtype)


@register_builtin("losses")
class CategoricalHinge(_BuiltinLoss):
    """`maximum(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`."""

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(fn.categorical_hinge, reduction, name, dtype)


@register_builtin("losses")
class KLDivergence(_BuiltinLoss):
    """Kullback-Leibler divergence: `sum(y_true * log(y_true / y_pred))`."""

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(fn.kl_divergence, reduction, name, dtype)


@register_builtin("losses")
class Poisson(_BuiltinLoss):
    """`mean(y_pred - y_true * log(y_pred + epsilon))`."""

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(fn.poisson, reduction, name, dtype)


@register_builtin("losses")
class BinaryCrossentropy(_BuiltinLoss):
    """Binary cross-entropy between labels in [0, 1] and predicted probabilities or logits.

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Squeeze labels towards 0.5 by this amount.
        axis: The axis the mean is taken over.
        reduction, name, dtype: See `Loss`.
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(fn.binary_crossentropy, reduction, name, dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


@register_builtin("losses")
class BinaryFocalCrossentropy(_BuiltinLoss):
    """Binary cross-entropy that down-weights easy examples by `(1 - p_t) ** gamma`.

    Args:
        apply_class_balancing: Weight positives by `alpha`, negatives by `1 - alpha`.
        alpha: The class balancing weight.
        gamma: The focusing parameter.
        from_logits, label_smoothing, axis: As in `BinaryCrossentropy`.
        reduction, name, dtype: See `Loss`.
    """

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_focal_crossentropy", dtype=None):
        super().__init__(fn.binary_focal_crossentropy, reduction, name, dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis,
                         apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma)


@register_builtin("losses")
class CategoricalCrossentropy(_BuiltinLoss):
    """Cross-entropy between one-hot labels and predicted class probabilities or logits.

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        label_smoothing: Mix labels with the uniform distribution by this amount.
        axis: The class axis.
        reduction, name, dtype: See `Loss`.
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(fn.categorical_crossentropy, reduction, name, dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)


@register_builtin("losses")
class SparseCategoricalCrossentropy(_BuiltinLoss):
    """Cross-entropy between integer labels and predicted class probabilities or logits.

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
        ignore_class: A label value whose entries are left out of the loss.
        reduction, name, dtype: See `Loss`.
        axis: The class axis.
    """

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 axis=-1, name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(fn.sparse_categorical_crossentropy, reduction, name, dtype,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)
