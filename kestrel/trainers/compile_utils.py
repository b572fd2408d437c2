"""The loss and metrics given to `compile`, matched to a model's outputs."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from kestrel import losses as losses_module
from kestrel import metrics as metrics_module
from kestrel.layers.naming import to_snake_case
from kestrel.layers.node import flatten

_ACCURACY = ("accuracy", "acc")
_CROSSENTROPY = ("crossentropy", "ce")


def per_output(spec, output_names: list[str], what: str) -> list:
    """Spread a compile argument (single, list or dict by output name) over the outputs."""
    n = len(output_names)
    if isinstance(spec, dict):
        return _by_output_name(spec, output_names, f"compile() {what}")
    if what == "metrics" and n == 1 and isinstance(spec, (list, tuple)):
        return [flatten(spec)]  # one output takes every metric of a nested list, as Keras
    # A list of losses is one per output. A list of metrics is one entry per output when it
    # holds lists (`[["acc"], ["mae"]]`) or, as Keras 3, one entry for each output
    # (`["acc", "mae"]` on two outputs); a list of another length goes to every output
    # (tf.keras 2's reading, where Keras 3 refuses it).
    per_output_list = isinstance(spec, (list, tuple)) and (
        what != "metrics" or (n > 1 and bool(spec) and (len(spec) == n or all(
            isinstance(s, (list, tuple)) or s is None for s in spec))))
    if per_output_list:
        if len(spec) != n:
            raise ValueError(
                f"compile() got {len(spec)} {what} for a model with {n} outputs "
                f"{output_names}. Pass one per output, or a dict keyed by output name.")
        return list(spec)
    return [spec] * n


def _object_name(obj) -> str:
    """Keras' metric name for a callable: its `name`, else its snake-cased own or class name."""
    if hasattr(obj, "name"):
        return obj.name
    return to_snake_case(getattr(obj, "__name__", type(obj).__name__))


def _loss_object(identifier):
    if identifier is None:
        return None
    loss = losses_module.get(identifier)
    if isinstance(loss, losses_module.Loss):
        return loss
    return losses_module.LossFunctionWrapper(loss, name=getattr(loss, "__name__", "loss"))


def _numbered_outputs(count: int) -> list[str]:
    """tf.keras 2's names of a subclassed model's outputs: `output_1`, `output_2`, ..."""
    return [f"output_{i + 1}" for i in range(count)]


def _list_length(spec) -> int:
    return len(spec) if isinstance(spec, (list, tuple)) else 0


class CompileLoss:
    """Weighted sum of per-output losses; also keeps one Mean tracker per output.

    A model whose outputs are unknown at compile (a subclassed one) takes as many outputs as
    a list of losses or of loss weights holds, else as many as its first predictions have
    (see `match_outputs`), named `output_1`, ... as tf.keras 2 named them.
    """

    def __init__(self, loss, loss_weights, output_names: list[str], outputs_known: bool = True):
        self._given = (loss, loss_weights)
        count = max(_list_length(loss), _list_length(loss_weights))
        if not outputs_known and count > 1:
            output_names, outputs_known = _numbered_outputs(count), True
        self._outputs_known = outputs_known
        self._spread(output_names)
        self.total_tracker = None  # the model's "loss" Mean, which Keras 2's public call feeds
        self.built = False  # as Keras, built by its first call (fit's or `compute_loss`')

    def _spread(self, output_names: list[str]) -> None:
        loss, loss_weights = self._given
        self.output_names = output_names
        self.losses = [_loss_object(l) for l in per_output(loss, output_names, "losses")]
        weights = per_output(loss_weights, output_names, "loss_weights") \
            if loss_weights is not None else [None] * len(output_names)
        self.weights = [1.0 if w is None else float(w) for w in weights]
        # as Keras, a Mean per output loss only when more than one output has a loss
        given = [i for i, l in enumerate(self.losses) if l is not None]
        self._tracked = {i: metrics_module.Mean(name=f"{output_names[i]}_loss")
                         for i in given} if len(given) > 1 else {}
        self.trackers = list(self._tracked.values())

    def match_outputs(self, y_pred) -> None:
        """Spread the losses over the outputs of the first predictions of a model whose
        outputs were unknown at compile: a single loss applies to each, as in tf.keras 2
        and Keras 3 (Géron's subclassed wide & deep model returns two)."""
        if self._outputs_known:
            return
        self._outputs_known = True
        if isinstance(y_pred, (list, tuple)) and len(y_pred) > 1:
            self._spread(_numbered_outputs(len(y_pred)))

    def order_trackers(self, output_names: list[str]) -> None:
        """Put the per-output loss trackers in this order (Keras tracks a dict-output model's
        losses in its loss dict's order)."""
        position = {f"{name}_loss": i for i, name in enumerate(output_names)}
        self.trackers.sort(key=lambda tracker: position.get(tracker.name, len(position)))

    def __call__(self, y_true, y_pred, sample_weight=None, regularization_losses=None):
        """The weighted loss total. `fit` passes per-output lists; Keras 2's
        `self.compiled_loss(y, y_pred)` in a custom `train_step` passes the model's own
        structures, and may add `regularization_losses`."""
        self.built = True
        public = not isinstance(sample_weight, list)
        if public:  # Keras 2's form
            names = self.output_names
            y_true = output_list(y_true, names, "y")
            y_pred = prediction_list(y_pred, names)
            sample_weight = output_list(sample_weight, names, "sample_weight")
        total = self._sum(y_true, y_pred, sample_weight)
        for extra in regularization_losses or ():
            total = extra if total is None else total + extra
        if public and total is not None and self.total_tracker is not None:
            pred = y_pred[0]
            self.total_tracker.update_state(
                total.detach(), sample_weight=pred.shape[0] if pred.dim() else 1)
        return total

    def _sum(self, y_true: list, y_pred: list, sample_weight: list):
        self._check_targets(y_true)
        total = None
        for index, loss in enumerate(self.losses):
            if loss is None or y_true[index] is None:
                continue
            value = loss(y_true[index], y_pred[index], sample_weight[index])
            tracker = self._tracked.get(index)
            if tracker is not None:  # weighted by batch size: a ragged last batch counts as Keras
                pred = y_pred[index]
                tracker.update_state(
                    value.detach(), sample_weight=pred.shape[0] if pred.dim() else 1)
            weighted = value * self.weights[index] if self.weights[index] != 1.0 else value
            total = weighted if total is None else total + weighted
        return total

    def _check_targets(self, y_true: list) -> None:
        """One target per output that has a loss (Keras refuses fewer too)."""
        if any(loss is not None for loss in self.losses[len(y_true):]):
            raise ValueError(
                f"compile() loss: the model has {len(self.losses)} outputs {self.output_names} "
                f"with a loss, but y holds {len(y_true)} target array(s). Pass one target per "
                "output: a list, or a dict keyed by output name.")

    def get_config(self) -> dict:
        return {"losses": [losses_module.serialize(l) if l is not None else None
                           for l in self.losses], "weights": self.weights}


class CompileMetrics:
    """Metrics per output; strings like 'accuracy' are resolved from the loss and shapes."""

    def __init__(self, metrics, weighted_metrics, output_names: list[str], losses: list):
        self.output_names = output_names
        self.multi = len(output_names) > 1
        self._specs = [(spec, False) for spec in [per_output(metrics, output_names, "metrics")]] + \
                      [(spec, True) for spec in [per_output(weighted_metrics, output_names, "metrics")]]
        self._losses = losses
        # as Keras: `metrics=[]` still makes the (empty) "compile_metrics" container
        self.configured = metrics is not None or weighted_metrics is not None
        self.built = False
        self.entries: list[tuple[int, object, bool]] = []  # (output index, metric, weighted)
        self.order_names: list[str] = []  # as Keras orders evaluate's list (see build)

    def build(self, y_true: list, y_pred: list) -> None:
        for per_out, weighted in self._specs:
            # as Keras, outputs pair with the flat targets: a model returning more outputs
            # than there are targets (a compute_loss override) gets metrics on the first ones
            for index, spec in enumerate(per_out[:len(y_true)]):
                for identifier in (spec if isinstance(spec, (list, tuple)) else [spec]):
                    if identifier is None:
                        continue
                    metric = self._resolve(identifier, index, y_true[index], y_pred[index])
                    # Keras orders evaluate's list by these unprefixed names: a weighted
                    # twin repeats its unweighted value, per-output metrics sort last
                    self.order_names.append(metric.name)
                    prefix = f"{self.output_names[index]}_" if self.multi else ""
                    name = prefix + metric.name
                    if weighted and any(m.name == name for _, m, _ in self.entries):
                        name = f"{prefix}weighted_{metric.name}"
                    metric.name = name
                    self.entries.append((index, metric, weighted))
        self.built = True

    def _resolve(self, identifier, index, y_true, y_pred):
        if isinstance(identifier, str) and identifier in _ACCURACY + _CROSSENTROPY:
            loss = self._losses[index]
            loss_name = getattr(getattr(loss, "fn", None), "__name__", "") or type(loss).__name__
            out_dim = y_pred.shape[-1] if y_pred.dim() else 1
            true_last = y_true.shape[-1] if y_true is not None and y_true.dim() else 1
            sparse = y_true is not None and (y_true.dim() < y_pred.dim() or (
                true_last == 1 and out_dim > 1))
            binary = "binary" in loss_name.lower() or out_dim == 1
            kind = "binary" if binary else "sparse_categorical" if sparse else "categorical"
            if identifier in _ACCURACY:
                metric = metrics_module.get(f"{kind}_accuracy")
                metric = metric if isinstance(metric, metrics_module.Metric) else \
                    metrics_module.MeanMetricWrapper(metric, name=identifier)
                metric.name = identifier
                return metric
            metric = metrics_module.get(f"{kind}_crossentropy")
        elif callable(identifier) and not isinstance(identifier, (type, metrics_module.Metric)):
            metric = metrics_module.MeanMetricWrapper(identifier)  # numbered, as Keras wraps it
            metric.name = _object_name(identifier)
            return metric
        else:
            metric = metrics_module.get(identifier)
        if isinstance(metric, type):
            metric = metric()
        if not isinstance(metric, metrics_module.Metric):
            name = identifier if isinstance(identifier, str) else metric.__name__
            metric = metrics_module.MeanMetricWrapper(metric, name=name)
        if isinstance(identifier, str):
            metric.name = identifier  # Keras logs a string metric under the string itself
        return metric

    def update(self, y_true: list, y_pred: list, sample_weight: list) -> None:
        if not self.built:
            self.build(y_true, y_pred)
        for index, metric, weighted in self.entries:
            if y_true[index] is None:
                continue
            metric.update_state(y_true[index], y_pred[index],
                                sample_weight[index] if weighted else None)

    @property
    def metrics(self) -> list:
        return [metric for _, metric, _ in self.entries]

    # The Metric API, as Keras' "compile_metrics" container: a custom train_step that loops
    # over `model.metrics` updates every compiled metric at once (building them first).
    name = "compile_metrics"

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Update every compiled metric with a batch of targets and predictions."""
        names = self.output_names
        y_pred = prediction_list(y_pred, names)
        with torch.no_grad():
            self.update(output_list(y_true, names, "y"), y_pred,
                        output_list(sample_weight, names, "sample_weight"))

    def result(self) -> dict:
        return {metric.name: metric.result() for metric in self.metrics}

    def reset_state(self) -> None:
        for metric in self.metrics:
            metric.reset_state()

    @property
    def variables(self) -> list:
        return [v for metric in self.metrics for v in metric.variables]


def output_list(values, output_names: list[str], what: str) -> list:
    """Targets / sample weights as a list aligned with the outputs."""
    n = len(output_names)
    if values is None:
        return [None] * n
    if isinstance(values, dict):
        return _by_output_name(values, output_names, what)
    if isinstance(values, (list, tuple)) and n > 1:
        if len(values) != n:
            raise ValueError(f"{what}: expected {n} arrays (one per output {output_names}), "
                             f"got {len(values)}.")
        return list(values)
    if isinstance(values, torch.Tensor) or n == 1:
        return [values if not isinstance(values, (list, tuple)) else values[0]]
    return flatten(values)


def prediction_list(y_pred, output_names: list[str]) -> list:
    """Predictions as a list aligned with the outputs; a single output's prediction as given,
    unless it comes in a one-entry dict (a model whose outputs are a dict), as Keras 3."""
    if len(output_names) > 1:
        return output_list(y_pred, output_names, "y_pred")
    if isinstance(y_pred, Mapping) and len(y_pred) == 1:
        return list(y_pred.values())
    return [y_pred]


def _by_output_name(values: dict, output_names: list[str], what: str) -> list:
    """The values of a dict keyed by output name, in output order; unknown keys are errors."""
    unknown = set(values) - set(output_names)
    if unknown:
        raise ValueError(f"{what} has keys {sorted(unknown)} that name no output of the model. "
                         f"The model's outputs are: {output_names}")
    return [values.get(name) for name in output_names]
