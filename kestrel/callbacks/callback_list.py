"""`CallbackList`: calls every hook of a list of callbacks at once."""
from __future__ import annotations

import torch

from kestrel.callbacks.callback import Callback
from kestrel.callbacks.history import History
from kestrel.callbacks.progbar_logger import ProgbarLogger
from kestrel.ops.core import convert_to_numpy


def _pythonify_logs(logs) -> dict:
    """Logs as a flat dict, sorted by name, with floats where possible."""
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(_pythonify_logs(value))
            continue
        if isinstance(value, torch.Tensor) and value.numel() != 1:  # as Keras: arrays that
            value = convert_to_numpy(value)  # are not one number (predict's outputs) as NumPy
        try:
            value = float(value)
        except (TypeError, ValueError, RuntimeError):
            pass
        result[key] = value
    return result


def _flatten(callbacks) -> list:
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError("callbacks must be Callback instances or lists of them. "
                        f"Received: callbacks={callbacks!r}")
    return [cb for item in callbacks for cb in _flatten(item)]


class CallbackList(Callback):
    """Container that forwards every hook to a list of callbacks.

    Batch hooks reach only the callbacks that override them (found when the list is built
    or appended to), with the logs untouched: they may hold device tensors. The other
    hooks get a flat dict of Python floats shared by all callbacks, so that one callback
    can add entries (e.g. `learning_rate`) that the next one sees.

    Args:
        callbacks: A list of `Callback` instances.
        add_history: Whether to append a `History` if none is in `callbacks`.
        add_progbar: Whether to append a `ProgbarLogger` if none is in `callbacks`.
        model: The model the callbacks are used with.
        **params: Passed to every callback with `set_params` (`verbose`, `epochs`, `steps`).

    Attributes:
        needs_batch_logs: Whether any callback reads batch-end `logs`, apart from the
            progress bar (see `wants_batch_logs`); when True they get a plain dict.
    """

    def __init__(self, callbacks=None, add_history: bool = False, add_progbar: bool = False,
                 model=None, **params):
        super().__init__()
        self.callbacks = _flatten(callbacks)
        self._history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        self._progbar = next((cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)),
                             None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self._refresh_flags()
        self.set_model(model)
        self.set_params(params)

    def _refresh_flags(self) -> None:
        """Cache which callbacks have batch hooks, so batches skip the others."""
        self.needs_batch_logs = any(cb._needs_batch_logs() for cb in self.callbacks)
        self._train_batch = [cb for cb in self.callbacks if cb._implements_train_batch_hooks()]
        self._test_batch = [cb for cb in self.callbacks if cb._implements_test_batch_hooks()]
        self._predict_batch = [
            cb for cb in self.callbacks if cb._implements_predict_batch_hooks()]

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)
        if self.params:
            callback.set_params(self.params)
        if self._model is not None:
            callback.set_model(self._model)
        self._refresh_flags()

    def __iter__(self):
        return iter(self.callbacks)

    def wants_batch_logs(self) -> bool:
        """Whether the coming train batch-end needs logs: a callback reads them or the
        progress bar is about to redraw (cheap enough to ask every batch)."""
        return self.needs_batch_logs or (
            self._progbar is not None and self._progbar.wants_batch_logs())

    def set_params(self, params: dict) -> None:
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def set_model(self, model) -> None:
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)

    def _implements_train_batch_hooks(self) -> bool:
        return bool(self._train_batch)

    def _implements_test_batch_hooks(self) -> bool:
        return bool(self._test_batch)

    def _implements_predict_batch_hooks(self) -> bool:
        return bool(self._predict_batch)

    def _needs_batch_logs(self) -> bool:
        return self.needs_batch_logs

    # Batch hooks: hot path; only callbacks with batch hooks are called. Begin hooks get an
    # empty dict; end hooks get the trainer's logs, made Python floats sorted by name (as
    # Keras) only when a callback other than the progress bar reads them (the bar reads
    # them lazily, so no batch waits for the device otherwise).
    def _end_logs(self, logs):
        if logs is None:
            return {}
        return _pythonify_logs(logs) if self.needs_batch_logs else logs

    def on_batch_begin(self, batch, logs=None):
        for callback in self._train_batch:
            callback.on_batch_begin(batch, logs={} if logs is None else logs)

    def on_batch_end(self, batch, logs=None):
        if self._train_batch:
            logs = self._end_logs(logs)
        for callback in self._train_batch:
            callback.on_batch_end(batch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        for callback in self._train_batch:
            callback.on_train_batch_begin(batch, logs={} if logs is None else logs)

    def on_train_batch_end(self, batch, logs=None):
        if self._train_batch:
            logs = self._end_logs(logs)
        for callback in self._train_batch:
            callback.on_train_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        for callback in self._test_batch:
            callback.on_test_batch_begin(batch, logs={} if logs is None else logs)

    def on_test_batch_end(self, batch, logs=None):
        if self._test_batch:
            logs = self._end_logs(logs)
        for callback in self._test_batch:
            callback.on_test_batch_end(batch, logs=logs)

    def on_predict_batch_begin(self, batch, logs=None):
        for callback in self._predict_batch:
            callback.on_predict_batch_begin(batch, logs={} if logs is None else logs)

    def on_predict_batch_end(self, batch, logs=None):
        if self._predict_batch:
            logs = self._end_logs(logs)
        for callback in self._predict_batch:
            callback.on_predict_batch_end(batch, logs=logs)

    # Epoch and begin/end hooks: logs made Python floats, one dict shared by all.
    def on_epoch_begin(self, epoch, logs=None):
        logs = _pythonify_logs(logs)
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = _pythonify_logs(logs)
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_resume_position(self):
        """Kestrel's own hook: `fit` has skipped the batches a resumed epoch had already done,
        and reads the next batch after this call (BackupAndRestore puts its random states
        back here, where they were captured)."""
        for callback in self.callbacks:
            hook = getattr(callback, "on_resume_position", None)
            if hook is not None:
                hook()

    def on_train_begin(self, logs=None):
        self._call_each("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call_each("on_train_end", logs)

    def on_test_begin(self, logs=None):
        self._call_each("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call_each("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._call_each("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call_each("on_predict_end", logs)

    def _call_each(self, hook: str, logs) -> None:
        logs = _pythonify_logs(logs)
        for callback in self.callbacks:
            getattr(callback, hook)(logs)
