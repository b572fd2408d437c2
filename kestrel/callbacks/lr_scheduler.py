"""`LearningRateScheduler`: set the learning rate at the start of every epoch."""
from __future__ import annotations

import inspect
import numbers

from kestrel.callbacks._io import print_msg
from kestrel.callbacks.callback import Callback


def _takes_learning_rate(schedule) -> bool:
    """Whether `schedule` accepts `(epoch, lr)` rather than the older `(epoch)`."""
    try:
        inspect.signature(schedule).bind(0, 0.0)
    except TypeError:
        return False
    except ValueError:  # no signature available (some builtins): use the new API
        return True
    return True


def _optimizer_lr(optimizer) -> float:
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError('Optimizer must have a "learning_rate" attribute. '
                         f"Received: optimizer={optimizer!r}")
    return float(optimizer.learning_rate)


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate from `schedule` at the start of every epoch.

    Args:
        schedule: A function `schedule(epoch, lr) -> new_lr` (epoch 0-based, lr the
            current float learning rate), or the older `schedule(epoch) -> new_lr`.
        verbose: 0 (quiet) or 1 (print the new rate every epoch).

    Example:
    ```python
    def scheduler(epoch, lr):
        return lr if epoch < 10 else lr * math.exp(-0.1)

    model.fit(x, y, epochs=15, callbacks=[LearningRateScheduler(scheduler)])
    ```
    """

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        current = _optimizer_lr(optimizer)
        if _takes_learning_rate(self.schedule):
            learning_rate = self.schedule(epoch, current)
        else:
            learning_rate = self.schedule(epoch)
        if isinstance(learning_rate, bool) or not (
                isinstance(learning_rate, numbers.Real) or _is_scalar_tensor(learning_rate)):
            raise ValueError("The output of the `schedule` function should be a float. "
                             f"Received: learning_rate={learning_rate!r}")
        learning_rate = float(learning_rate)
        optimizer.learning_rate = learning_rate
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate "
                      f"to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _optimizer_lr(self.model.optimizer)


def _is_scalar_tensor(value) -> bool:
    return hasattr(value, "shape") and tuple(value.shape) == () and hasattr(value, "item")
