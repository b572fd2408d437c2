"""`ReduceLROnPlateau`: lower the learning rate when a metric stops improving."""
from __future__ import annotations

import warnings

import numpy as np

from kestrel.callbacks._io import print_msg
from kestrel.callbacks.monitor_callback import MonitorCallback, monitored_value


class ReduceLROnPlateau(MonitorCallback):
    """Reduce the learning rate when a metric has stopped improving.

    After `patience` epochs without improvement the rate becomes `lr * factor` (never
    below `min_lr`), then the callback waits `cooldown` epochs before counting again.

    Args:
        monitor: Quantity to be monitored.
        factor: Factor by which the learning rate is reduced; must be below 1.
        patience: Number of epochs without improvement before reducing.
        verbose: 0 (quiet) or 1 (print a message on every reduction).
        mode: `"auto"`, `"min"` or `"max"`: direction of improvement for `monitor`.
        min_delta: Threshold for measuring a new optimum.
        cooldown: Number of epochs to wait after a reduction before counting again.
        min_lr: Lower bound on the learning rate.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0, **kwargs):
        if "epsilon" in kwargs:  # Keras 2 name of `min_delta`
            warnings.warn("`epsilon` argument is deprecated, use `min_delta` instead.",
                          stacklevel=2)
            min_delta = kwargs.pop("epsilon")
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(
                f"ReduceLROnPlateau does not support a factor >= 1.0. Received: factor={factor}"
            )
        if kwargs:
            raise TypeError(
                f"ReduceLROnPlateau got unexpected keyword arguments. Received: {kwargs}"
            )
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = {} if logs is None else logs
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = monitored_value(logs, self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` which is "
                f"not available. Available metrics are: {','.join(logs)}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(optimizer, epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def _reduce(self, optimizer, epoch: int) -> bool:
        old_lr = float(optimizer.learning_rate)
        if old_lr <= np.float32(self.min_lr):
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        optimizer.learning_rate = new_lr
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                      f"{new_lr}.")
        return True
