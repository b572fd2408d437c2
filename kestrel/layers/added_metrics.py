"""Keras 2's `Layer.add_metric(value, name)`: a value logged as the mean over the epoch.

Keras 3 dropped it; Keras 2 scripts (VAEs logging their KL term, layers logging an activation
statistic) call it inside `call`. Each name gets a `Mean` metric kept on the layer, found by
`model.metrics` with the metrics assigned as attributes, so fit, evaluate and their logs
report it like a compiled metric and reset it at each epoch.
"""
from __future__ import annotations

import torch

from kestrel.backend.scopes import in_symbolic_scope
from kestrel.layers.node import KerasTensor


def add_metric(layer, value, name=None, aggregation="mean") -> None:
    """Add `value` (a tensor, or anything `Mean` reads) to the metric `name` of `layer`."""
    if aggregation not in ("mean", None):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': add_metric supports "
                         f"aggregation='mean' or None, got {aggregation!r}")
    metric = getattr(value, "_metric_obj", None)
    if name is None and metric is not None:  # tf.keras 2: `self.add_metric(self.mean(x))`
        _track_metric_object(layer, metric)
        return
    if name is None:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': add_metric needs a name, "
                         "e.g. self.add_metric(ops.mean(x), name='mean_activation')")
    if isinstance(value, KerasTensor):
        raise NotImplementedError(
            f"{type(layer).__name__} '{layer.name}': add_metric on a symbolic tensor (Keras "
            "2's model.add_metric on a functional graph) is not supported; call it inside a "
            "layer's call, or compile the model with a metric")
    if in_symbolic_scope():  # the shape-inference run on placeholders
        return
    metrics = layer.__dict__.setdefault("_added_metrics", {})
    if name not in metrics:
        from kestrel.metrics import Mean

        metrics[name] = Mean(name=name)
    with torch.no_grad():
        value = value.detach() if isinstance(value, torch.Tensor) else value
        metrics[name].update_state(value)


def _track_metric_object(layer, metric) -> None:
    """Log `metric` itself (already updated by its call) under its name, unless the layer
    already tracks it as an attribute."""
    if in_symbolic_scope() or any(m is metric for m in layer._attribute_metrics()):
        return
    layer.__dict__.setdefault("_added_metrics", {}).setdefault(metric.name, metric)
