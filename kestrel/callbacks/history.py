"""`History`: records epoch logs; `fit()` returns it."""
from __future__ import annotations

from kestrel.callbacks.callback import Callback
from kestrel.callbacks.monitor_callback import keras2_log_name


class _Logs(dict):
    """The history dict; Keras 2.0-2.2's log names (`history["val_acc"]`,
    `["val_mean_absolute_error"]`) read the lists of Keras 3's (`val_accuracy`, `val_mae`)."""

    def __missing__(self, key):
        name = keras2_log_name(key, self)
        if name == key:
            raise KeyError(key)
        return self[name]


class History(Callback):
    """Records the logs of every epoch into `history` (a dict of lists).

    Attributes:
        history: `{metric_name: [value_epoch_0, value_epoch_1, ...]}`.
        epoch: The epoch indices seen, 0-based.
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = _Logs()
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self

    def _needs_batch_logs(self) -> bool:
        return False
