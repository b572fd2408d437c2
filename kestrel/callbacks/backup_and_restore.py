"""`BackupAndRestore`: resume an interrupted `fit` from its last backup."""
from __future__ import annotations

import json
import os

from kestrel.callbacks import _rng_state
from kestrel.callbacks._io import atomic_write
from kestrel.callbacks.callback import Callback
from kestrel.saving.api import load_training_state

_METADATA = "training_metadata.json"


class BackupAndRestore(Callback):
    """Backs up the training state so that an interrupted `fit` can resume.

    Each backup writes the weights and the optimizer state (one Keras 3 `.weights.h5`) and
    the position reached (epoch, and batch for `save_freq=N`) into `backup_dir`, with the
    random states (torch, NumPy, Python, seeded layers). Backups alternate between two slots
    and are committed by atomically replacing `training_metadata.json`, so a crash during a
    backup leaves the previous one intact. At the start of `fit` the last backup is
    restored and `model._initial_epoch` (and `model._initial_step`) set: training continues
    at the next batch of the same shuffled order, with the same random draws, so on CPU the
    result equals an uninterrupted run bit for bit (the resumed epoch's logged metrics cover
    only its remaining batches).

    Args:
        backup_dir: Folder for the backup; use it for nothing else.
        save_freq: `"epoch"` to back up after every epoch, an integer to back up every
            that many batches, or False to never back up (restore only).
        double_checkpoint: If True and the last backup cannot be loaded (e.g. a
            corrupted file), restore the one before it.
        delete_checkpoint: Whether to delete the backup when training ends normally.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint: bool = False,
                 delete_checkpoint: bool = True):
        super().__init__()
        if not backup_dir:
            raise ValueError(
                f"Empty `backup_dir` argument passed. Received: backup_dir={backup_dir!r}")
        if save_freq not in ("epoch", False) and not (
                isinstance(save_freq, int) and save_freq >= 1):
            raise ValueError("Invalid value for argument `save_freq`: expected 'epoch', a "
                             f"positive integer or False. Received: save_freq={save_freq!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._metadata_path = os.path.join(self.backup_dir, _METADATA)
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = -1
        self._current_epoch = 0
        self._metadata: dict | None = None
        self._epoch_rng: dict | None = None  # random states when the current epoch began
        self._resume: dict | None = None  # the restored backup, until its states are back

    def _needs_batch_logs(self) -> bool:
        return False

    def _slot_path(self, slot: int) -> str:
        return os.path.join(self.backup_dir, f"backup-{slot}.weights.h5")

    def on_train_begin(self, logs=None):
        self._metadata = None
        self._resume = None
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = -1
        if not os.path.exists(self._metadata_path):
            return
        with open(self._metadata_path, encoding="utf-8") as f:
            metadata = json.load(f)
        try:
            self._restore(metadata)
        except (OSError, ValueError):  # a damaged or missing backup file
            previous = metadata.get("previous")
            if not (self.double_checkpoint and previous):
                raise
            self._restore(previous)
            metadata = previous
        self._metadata = metadata
        self._current_epoch = metadata["epoch"]
        self.model._initial_epoch = metadata["epoch"]
        batch = metadata.get("batch", -1)
        if batch >= 0:  # a mid-epoch backup: continue at the next batch
            self.model._initial_step = batch + 1
            self._last_batch_seen = batch
        if "rng" in metadata:
            self._resume = metadata

    def _restore(self, entry: dict) -> None:
        load_training_state(self.model, self._slot_path(entry["slot"]))
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return
        if entry.get("learning_rate") is not None:
            optimizer.learning_rate = entry["learning_rate"]
        iterations = entry.get("iterations")
        if iterations is not None and int(optimizer.iterations) != iterations:
            optimizer.iterations = iterations  # not covered by the optimizer's state

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        resume = self._resume
        if resume is not None and resume.get("batch", -1) < 0:
            _rng_state.restore(self.model, resume["rng"])  # where the backed-up epoch ended
            self._resume = None
        elif resume is not None:  # the epoch's start: the same shuffled order is drawn again
            _rng_state.restore(self.model, resume["epoch_rng"])
        if self.save_freq not in ("epoch", False):
            self._epoch_rng = _rng_state.capture(self.model)

    def on_resume_position(self):
        """`fit` skipped the batches done before the backup: the states captured after the
        backed-up batch come back before the next batch is read (or the pass ends)."""
        if self._resume is not None:
            _rng_state.restore(self.model, self._resume["rng"])
            self._resume = None

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = -1
        if self.save_freq == "epoch":
            self._save(batch=-1)

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq in ("epoch", False):
            return
        added = batch + 1 if batch <= self._last_batch_seen else batch - self._last_batch_seen
        self._batches_seen_since_last_saving += added
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            self._save(batch=batch)

    def _save(self, batch: int) -> None:
        """Write the state into the slot not in use, then commit it in the metadata."""
        os.makedirs(self.backup_dir, exist_ok=True)
        slot = 1 - self._metadata["slot"] if self._metadata else 0
        # The Keras 3 weights file carries the optimizer's variables too (its optimizer/ group).
        self.model.save_weights(self._slot_path(slot), overwrite=True)
        entry = {"epoch": self._current_epoch, "batch": batch, "slot": slot,
                 "learning_rate": None, "iterations": None,
                 "rng": _rng_state.capture(self.model)}
        if batch >= 0:
            entry["epoch_rng"] = self._epoch_rng
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            if hasattr(optimizer, "learning_rate"):
                entry["learning_rate"] = float(optimizer.learning_rate)
            if hasattr(optimizer, "iterations"):
                entry["iterations"] = int(optimizer.iterations)
        if self._metadata:
            entry["previous"] = {k: v for k, v in self._metadata.items() if k != "previous"}
        text = json.dumps(entry)
        atomic_write(self._metadata_path, lambda path: _write_text(path, text))
        self._metadata = entry

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint or not os.path.isdir(self.backup_dir):
            return
        # The metadata goes first: without it no half-deleted backup is ever restored.
        for path in (self._metadata_path, self._slot_path(0), self._slot_path(1)):
            if os.path.exists(path):
                os.remove(path)
        if not os.listdir(self.backup_dir):
            os.rmdir(self.backup_dir)
        self._metadata = None


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
