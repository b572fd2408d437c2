"""`MonitorCallback`: shared base of callbacks that watch a metric for improvement."""
from __future__ import annotations

import operator
import warnings

from kestrel.callbacks.callback import Callback

# Fallback when the model's metrics do not say their direction (Keras' `_direction`).
_UP_NAMES = ("acc", "auc", "precision", "recall", "f1_score", "fbeta", "iou", "r2_score")
_DOWN_NAMES = ("loss", "error", "crossentropy", "hinge", "divergence", "poisson", "logcosh",
               "mae", "mse", "mape", "msle")

# Keras 2.0-2.2 logged a metric given by a short name under the name of the function it
# resolved to (`metrics=['mae']` logged `mean_absolute_error`); `acc` was its accuracy name.
# Keras 2 and tf.keras 2 (to 2.10) logged the learning rate of LearningRateScheduler and
# ReduceLROnPlateau as `lr`.
_KERAS2_LOG_NAMES = {
    "acc": ("accuracy", "Keras 2.2"),
    "mean_absolute_error": ("mae", "Keras 2.2"),
    "mean_squared_error": ("mse", "Keras 2.2"),
    "mean_absolute_percentage_error": ("mape", "Keras 2.2"),
    "mean_squared_logarithmic_error": ("msle", "Keras 2.2"),
    "lr": ("learning_rate", "Keras 2"),
}


def keras2_log_name(name: str, logged) -> str:
    """The key of `logged` that `name` means: the Keras 2.0-2.2 names of the logs of
    `metrics=['accuracy']` (`acc`, `val_acc`) and of `metrics=['mae']` and the other short
    names (`mean_absolute_error`, ...), and Keras 2's `lr`: the names scripts of that time
    read and monitor."""
    prefix = "val_" if name.startswith("val_") else ""
    known = _KERAS2_LOG_NAMES.get(name[len(prefix):])
    if known is None or name in logged or prefix + known[0] not in logged:
        return name
    new_name = prefix + known[0]
    warnings.warn(f"`{name}` is the {known[1]} name of the `{new_name}` log; reading "
                  f"`{new_name}`.", DeprecationWarning, stacklevel=3)
    return new_name


def monitored_value(logs: dict, name: str):
    """`logs[name]`, Keras 2.2's log names included; None when absent."""
    return logs.get(keras2_log_name(name, logs))


def _model_metrics(model) -> list:
    """The model's metric objects, with compile-time containers flattened."""
    found = []
    for metric in getattr(model, "metrics", None) or []:
        inner = getattr(metric, "metrics", None)
        found.extend(inner if isinstance(inner, (list, tuple)) else [metric])
    return found


class MonitorCallback(Callback):
    """Base class for callbacks that monitor a quantity and decide what improves it.

    Args:
        monitor: Quantity to be monitored, e.g. `"val_loss"`.
        mode: `"auto"`, `"min"` or `"max"`; `"auto"` infers the direction from the name.
        baseline: Initial "best" value; `None` takes the first value seen.
        min_delta: Minimum change that counts as an improvement.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", baseline=None,
                 min_delta: float = 0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(
                f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.",
                stacklevel=2,
            )
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self) -> None:
        if self.mode == "min":
            self.monitor_op = operator.lt
        elif self.mode == "max":
            self.monitor_op = operator.gt
        else:
            self.monitor_op = self._infer_monitor_op()
        if self.monitor_op is operator.lt:
            self.min_delta *= -1

    def _infer_monitor_op(self):
        name = self.monitor.removeprefix("val_")
        if name == "loss":
            return operator.lt
        for metric in _model_metrics(self.model):
            if getattr(metric, "name", None) == name and hasattr(metric, "_direction"):
                return operator.gt if metric._direction == "up" else operator.lt
        if any(part in name for part in _UP_NAMES):
            return operator.gt
        if any(part in name for part in _DOWN_NAMES):
            return operator.lt
        raise ValueError(
            f"{type(self).__name__} callback received monitor={self.monitor}, but cannot "
            "tell whether that metric should be maximized or minimized. Pass "
            "`mode='max'` to monitor the highest value or `mode='min'` for the lowest."
        )

    def _is_improvement(self, monitor_value, reference_value) -> bool:
        if reference_value is None:
            return True
        return self.monitor_op(monitor_value - self.min_delta, reference_value)
