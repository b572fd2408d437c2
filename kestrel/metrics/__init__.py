"""Metrics: stateful `Metric` classes, per-sample metric functions, and `get`."""
from __future__ import annotations

import inspect

from kestrel.losses.extra_functions import categorical_focal_crossentropy
from kestrel.losses.functions import (
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_hinge,
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
from kestrel.losses.functions import cosine_similarity as _negative_cosine_similarity
from kestrel.metrics.accuracy_metrics import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from kestrel.metrics.auc import AUC
from kestrel.metrics.confusion_metrics import (
    FalseNegatives,
    FalsePositives,
    Precision,
    Recall,
    TrueNegatives,
    TruePositives,
)
from kestrel.metrics.correlation_metrics import (
    ConcordanceCorrelation,
    PearsonCorrelation,
    R2Score,
    concordance_correlation,
    pearson_correlation,
)
from kestrel.metrics.f_score_metrics import F1Score, FBetaScore
from kestrel.metrics.hinge_metrics import CategoricalHinge, Hinge, SquaredHinge
from kestrel.metrics.iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from kestrel.metrics.metric import Metric
from kestrel.metrics.probabilistic_metrics import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
)
from kestrel.metrics.reduction_metrics import Mean, MeanMetricWrapper, Sum, get_metric_function
from kestrel.metrics.regression_metrics import (
    CosineSimilarity,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    RootMeanSquaredError,
)
from kestrel.metrics.threshold_metrics import (
    PrecisionAtRecall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
)
from kestrel.registry import object_registry
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence
logcosh = log_cosh
cosine_proximity = cosine = _negative_cosine_similarity  # Keras 2's metric names (the loss)


def serialize(metric):
    """The Keras 3 config of a metric."""
    return serialize_keras_object(metric, "metrics")


def deserialize(config, custom_objects=None):
    """The metric a config describes, or the class a string names."""
    return deserialize_keras_object(config, "metrics", custom_objects)


def get(identifier):
    """Resolve a metric to a `Metric` instance.

    Accepts None, a `Metric` instance or class, a config dict, a function (wrapped in
    `MeanMetricWrapper`), or a string: a class name, its snake-case name or a Keras alias
    (`"mse"`, `"acc"`), or the name of a metric or loss function. `"accuracy"` gives
    `Accuracy` here; the trainer picks the binary/categorical/sparse variant itself.
    Unknown strings raise `ValueError`.
    """
    if identifier is None:
        return None
    obj = identifier
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = object_registry.lookup(identifier, "metrics")
        if obj is None:
            return MeanMetricWrapper(get_metric_function(identifier), name=identifier)
    if inspect.isclass(obj):
        obj = obj()
    if isinstance(obj, Metric):
        return obj
    if callable(obj):
        return MeanMetricWrapper(obj, name=getattr(obj, "__name__", None))
    raise ValueError(
        f"Could not interpret metric identifier. Received: identifier={identifier!r}"
    )
