"""Reduction metrics: `Sum`, `Mean` and `MeanMetricWrapper` (the mean of a function's values)."""
from __future__ import annotations

import inspect

import torch

from kestrel.losses.loss import (
    apply_mask,
    as_tensor,
    divide_no_nan,
    get_keras_mask,
    squeeze_or_expand_to_same_rank,
)
from kestrel.losses.losses import call_per_sample, serialize_function
from kestrel.metrics.metric import Metric
from kestrel.registry import object_registry
from kestrel.registry.object_registry import register_builtin
from kestrel.registry.serialization import raise_unknown


def reduce_to_samplewise_values(values, sample_weight, reduce_fn, dtype, device):
    """Weight `values` and reduce them (and the weights) to one value per sample, as Keras does."""
    mask = get_keras_mask(values)
    values = as_tensor(values, dtype, device)
    if sample_weight is not None:
        sample_weight = as_tensor(sample_weight, dtype, values.device)
        if mask is not None:
            sample_weight = apply_mask(sample_weight, mask.to(values.device), dtype, "sum")
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        weight_ndim = sample_weight.dim()
        if values.dim() > weight_ndim:
            values = reduce_fn(values, dim=tuple(range(weight_ndim, values.dim())))
        sample_weight = torch.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if weight_ndim > 1:
            sample_weight = reduce_fn(sample_weight, dim=tuple(range(1, weight_ndim)))
    if values.dim() > 1:
        values = reduce_fn(values, dim=tuple(range(1, values.dim())))
    return values, sample_weight


@register_builtin("metrics", "sum")
class Sum(Metric):
    """The (weighted) sum of the given values.

    Args:
        name: Name of the metric (default "sum").
        dtype: Dtype of the state and result.
    """

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), "zeros", name="total")

    def update_state(self, values, sample_weight=None):
        values, _ = reduce_to_samplewise_values(values, sample_weight, torch.sum,
                                                self._torch_dtype, self._device)
        self.total.add_(values.sum())

    def result(self):
        return self.total.clone()


@register_builtin("metrics", "mean")
class Mean(Metric):
    """The (weighted) mean of the given values: `sum(values * w) / sum(w)`.

    Args:
        name: Name of the metric (default "mean").
        dtype: Dtype of the state and result.
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), "zeros", name="total")
        self.count = self.add_variable((), "zeros", name="count")

    def update_state(self, values, sample_weight=None):
        if _is_plain(values, self.total.dtype) and (
                sample_weight is None or type(sample_weight) in (int, float)):
            weight = 1 if sample_weight is None else sample_weight  # fast path: loss, accuracy
            self.total.add_(values.sum() if values.dim() else values, alpha=weight)
            self.count.add_((values.shape[0] if values.dim() else 1) * weight)
            return
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, torch.mean,
                                                            self._torch_dtype, self._device)
        self.total.add_(values.sum())
        if sample_weight is not None:
            self.count.add_(sample_weight.sum())
        else:
            self.count.add_(values.shape[0] if values.dim() else 1)

    def result(self):
        return divide_no_nan(self.total, self.count)


def _is_plain(values, dtype: torch.dtype) -> bool:
    """A 0-d or 1-d tensor of `dtype` without a mask: per-sample values, nothing to reduce."""
    return (type(values) is torch.Tensor and values.dim() <= 1 and values.dtype is dtype
            and getattr(values, "_keras_mask", None) is None)


def _is_metric_function(function) -> bool:
    return object_registry.lookup(function.__name__, "metric_functions") is function


def get_metric_function(identifier, custom_objects=None):
    """The function a `MeanMetricWrapper` config names: a metric function or a loss function.

    A Keras-style reference from `keras.losses` prefers the loss of that name (e.g. the
    negative `cosine_similarity`); otherwise metric functions come first.
    """
    if callable(identifier):
        return identifier
    name = identifier.get("config") if isinstance(identifier, dict) else identifier
    categories = ["metric_functions", "losses"]
    if isinstance(identifier, dict) and identifier.get("module") == "keras.losses":
        categories.reverse()
    for category in categories:
        found = object_registry.lookup(name, category, custom_objects)
        if inspect.isfunction(found):
            return found
    raise_unknown(str(name), "metrics")


@register_builtin("metrics")
class MeanMetricWrapper(Mean):
    """The mean of `fn(y_true, y_pred, **kwargs)` over all samples seen.

    Args:
        fn: A per-sample function, e.g. `kestrel.losses.mean_squared_error`.
        name: Name of the metric.
        dtype: Dtype of the state and result.
        **kwargs: Keyword arguments passed to `fn`.
    """

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = get_keras_mask(y_pred)
        values = call_per_sample(self._fn, y_true, y_pred, self._fn_kwargs)
        if mask is not None:
            sample_weight = apply_mask(sample_weight, mask, self._torch_dtype, "sum")
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self) -> dict:
        module = "keras.metrics" if _is_metric_function(self._fn) else "keras.losses"
        return {**super().get_config(), "fn": serialize_function(self._fn, module),
                **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if "fn" in config:
            config["fn"] = get_metric_function(config["fn"])
        return cls(**config)


class BuiltinMeanMetric(MeanMetricWrapper):
    """A built-in `MeanMetricWrapper` whose config lists its arguments instead of `fn`."""

    def __init__(self, fn, name, dtype, **kwargs):
        super().__init__(fn, name=name, dtype=dtype, **kwargs)
        for key, value in kwargs.items():
            setattr(self, key, value)

    def get_config(self) -> dict:
        return {**Metric.get_config(self), **self._fn_kwargs}
