"""`ModelCheckpoint`: save the model or its weights during training."""
from __future__ import annotations

import os
import warnings

from kestrel.callbacks._io import print_msg
from kestrel.callbacks.monitor_callback import MonitorCallback, monitored_value


class ModelCheckpoint(MonitorCallback):
    """Save the model or its weights every epoch or every `save_freq` batches.

    Args:
        filepath: Path of the file to write. It may hold format fields filled from
            `epoch` (1-based), `batch` (1-based, batch-level saving) and the logs, e.g.
            `"w.{epoch:02d}-{val_loss:.2f}.weights.h5"`. It must end in `.weights.h5`
            with `save_weights_only=True` (or be a tf.keras 2 checkpoint path such as
            `cp-{epoch:04d}.ckpt`, written in the Keras 2 HDF5 layout), else in `.keras`
            or `.h5`.
        monitor: Metric name to monitor, e.g. `"val_loss"` or `"val_accuracy"`.
        verbose: 0 (silent) or 1 (print a message when saving).
        save_best_only: Only save when the monitored quantity improves on the best so far.
        save_weights_only: Save with `model.save_weights` instead of `model.save`.
        mode: `"auto"`, `"min"` or `"max"`: direction of improvement for `monitor`.
        save_freq: `"epoch"`, or an integer: save after that many batches.
        initial_value_threshold: Initial "best" value; with `save_best_only`, a model is
            only saved once it beats this value.
        period: Keras 2's spelling (deprecated): save every `period` epochs.

    As `model.save` and `save_weights` do, the legacy `.h5` / `.hdf5` files of Keras 2
    scripts are accepted too (Keras 3 accepts `.keras`, `.h5` and `.weights.h5` only).
    """

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq="epoch", initial_value_threshold=None,
                 period=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0
        self.period = 1 if period is None else period
        self._epochs_since_last_save = 0
        if period is not None:
            warnings.warn("`period` argument is deprecated. Please use `save_freq` to specify "
                          "the frequency in number of batches seen.", DeprecationWarning,
                          stacklevel=2)
        if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(
                "Unrecognized save_freq: expected 'epoch' or a positive integer. "
                f"Received: save_freq={save_freq!r}"
            )
        from kestrel.saving.api import tf_checkpoint_path

        if save_weights_only and not self.filepath.endswith((".weights.h5", ".h5", ".hdf5")) \
                and not tf_checkpoint_path(self.filepath):
            raise ValueError(
                "When using `save_weights_only=True` in `ModelCheckpoint`, the filepath "
                "must end in `.weights.h5` (Keras weights format), or `.h5` / `.hdf5` (Keras "
                "2 layout; a tf.keras 2 checkpoint path such as `cp.ckpt` gets it too). "
                f"Received: filepath={self.filepath}"
            )
        if not save_weights_only and not self.filepath.endswith((".keras", ".h5", ".hdf5")):
            raise ValueError(
                "The filepath provided must end in `.keras` (Keras model format), `.h5` or "
                f"`.hdf5`. Received: filepath={self.filepath}"
            )

    def _needs_batch_logs(self) -> bool:
        return self.save_freq != "epoch"

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            logs = {k: _maybe_float(v) for k, v in (logs or {}).items()}
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._epochs_since_last_save += 1
            if self._epochs_since_last_save >= self.period:
                self._epochs_since_last_save = 0
                self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            added = batch + 1  # a new epoch started; batches are 0-based
        else:
            added = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += added
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch: int, logs: dict, filepath: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = monitored_value(logs, self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.",
                          stacklevel=2)
            return True
        current = _maybe_float(current)
        if not isinstance(current, float):
            warnings.warn("Can save best model only when `monitor` is a scalar value. "
                          f"Received: {current}. Falling back to `save_best_only=False`.",
                          stacklevel=2)
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} "
                          f"to {current:.5f}, saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch: int, batch: int | None, logs) -> None:
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        if os.path.isdir(filepath):
            raise IsADirectoryError(
                "Please specify a non-directory filepath for ModelCheckpoint. "
                f"Filepath used is an existing directory: {filepath}"
            )
        if not self._should_save_model(epoch, logs, filepath):
            return
        folder = os.path.dirname(filepath)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _get_file_path(self, epoch: int, batch: int | None, logs: dict) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as e:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}'
            ) from e


def _maybe_float(value):
    """A batch log value as a float when it is a scalar (one device sync per save)."""
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return value
