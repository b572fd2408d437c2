"""Losses: per-sample functions, `Loss` classes, and `get` / `serialize` / `deserialize`."""
from __future__ import annotations

import inspect

from kestrel.losses.functions import (
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_hinge,
    cosine_similarity,
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
)
from kestrel.losses.extra_functions import (
    categorical_focal_crossentropy,
    categorical_generalized_cross_entropy,
    circle,
    ctc,
    dice,
    tversky,
)
from kestrel.losses.extra_losses import (
    CTC,
    CategoricalFocalCrossentropy,
    CategoricalGeneralizedCrossEntropy,
    Circle,
    Dice,
    Tversky,
)
from kestrel.losses.loss import Loss
from kestrel.losses.losses import (
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    CategoricalHinge,
    CosineSimilarity,
    Hinge,
    Huber,
    KLDivergence,
    LogCosh,
    LossFunctionWrapper,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    Poisson,
    SparseCategoricalCrossentropy,
    SquaredHinge,
)
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh
cosine_proximity = cosine = cosine_similarity  # Keras 2


class Reduction:
    """tf.keras 2's names of the `reduction` argument's values (`Reduction.NONE`, ...)."""

    AUTO = "auto"
    NONE = "none"
    SUM = "sum"
    SUM_OVER_BATCH_SIZE = "sum_over_batch_size"

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (cls.AUTO, cls.NONE, cls.SUM, cls.SUM_OVER_BATCH_SIZE)


def serialize(loss):
    """The Keras 3 config of a loss object, or the name of a built-in loss function."""
    return serialize_keras_object(loss, "losses")


def deserialize(name, custom_objects=None):
    """The loss function or class named by a string, or the loss a config describes."""
    return deserialize_keras_object(name, "losses", custom_objects)


def get(identifier):
    """Resolve a loss: None, a string, a config dict, a `Loss` class or instance, a function.

    Strings name functions (`"mse"` -> `mean_squared_error`) or classes
    (`"MeanSquaredError"` -> an instance); unknown names raise `ValueError`.
    """
    if identifier is None:
        return None
    obj = deserialize(identifier) if isinstance(identifier, (str, dict)) else identifier
    if inspect.isclass(obj):
        obj = obj()
    if not callable(obj):
        raise ValueError(
            f"Could not interpret loss identifier. Received: identifier={identifier!r}"
        )
    return obj
