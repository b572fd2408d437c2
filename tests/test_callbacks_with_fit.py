"""Callbacks driven by a real `fit`: order of hooks, checkpoints and resuming after a crash."""
import json
import os

import numpy as np
import pytest

import kestrel as keras
from kestrel.callbacks import (BackupAndRestore, Callback, EarlyStopping, ModelCheckpoint,
                               ReduceLROnPlateau)
from kestrel.layers import Dense, Input


def _data(n=48):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, n)


def _model(seed=1):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([Input(shape=(4,)), Dense(8, activation="relu"), Dense(3)])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


_HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
          "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
          "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
          "on_predict_batch_begin", "on_predict_batch_end"]


def _recording(hook):
    def record(self, *args, **kwargs):
        self.calls.append(hook)
    return record


class Recorder(Callback):
    """Overrides every hook and records the order they are called in."""

    def __init__(self):
        super().__init__()
        self.calls = []


for _hook in _HOOKS:
    setattr(Recorder, _hook, _recording(_hook))


class CrashAt(Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_hooks_fire_in_keras_order():
    x, y = _data(16)
    recorder = Recorder()
    _model().fit(x, y, batch_size=8, epochs=1, validation_data=(x, y), callbacks=[recorder],
                 verbose=0)
    assert recorder.calls == [
        "on_train_begin", "on_epoch_begin",
        "on_train_batch_begin", "on_train_batch_end",
        "on_train_batch_begin", "on_train_batch_end",
        "on_test_begin", "on_test_batch_begin", "on_test_batch_end",
        "on_test_batch_begin", "on_test_batch_end", "on_test_end",
        "on_epoch_end", "on_train_end"]


def test_model_checkpoint_writes_loadable_files(tmp_path):
    x, y = _data()
    model = _model()
    pattern = str(tmp_path / "w.{epoch:02d}-{val_loss:.2f}.weights.h5")
    model.fit(x, y, epochs=3, validation_split=0.25, verbose=0,
              callbacks=[ModelCheckpoint(pattern, save_weights_only=True)])
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 3 and files[0].startswith("w.01-")
    clone = _model(seed=2)
    clone.load_weights(str(tmp_path / files[-1]))
    for a, b in zip(clone.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    best = tmp_path / "best.keras"
    model.fit(x, y, epochs=2, validation_split=0.25, verbose=0,
              callbacks=[ModelCheckpoint(str(best), save_best_only=True)])
    restored = keras.models.load_model(str(best))
    assert restored.count_params() == model.count_params()


def test_early_stopping_and_reduce_lr_act_on_a_real_fit():
    x, y = _data()
    model = _model()
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")  # no progress
    reduce = ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=1.0)
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[
        EarlyStopping(monitor="loss", patience=2, min_delta=1.0), reduce])
    assert history.epoch == [0, 1, 2]
    assert model.optimizer.learning_rate == 0.0


def test_backup_and_restore_resumes_exactly(tmp_path):
    x, y = _data()
    backup = str(tmp_path / "backup")
    reference = _model()
    start = reference.get_weights()
    reference.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0)

    crashed = _model()
    crashed.set_weights(start)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0,
                    callbacks=[BackupAndRestore(backup), CrashAt(3)])
    metadata = json.loads(open(os.path.join(backup, "training_metadata.json")).read())
    assert metadata["epoch"] == 3
    assert not [n for n in os.listdir(backup) if n.endswith(".pt")]  # no pickle files

    resumed = _model(seed=7)  # different weights: everything must come from the backup
    history = resumed.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0,
                          callbacks=[BackupAndRestore(backup)])
    assert history.epoch == [3, 4]
    assert resumed.optimizer.iterations == reference.optimizer.iterations == 15
    for a, b in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # Adam moments restored too
    assert not os.path.exists(backup)


def test_backup_falls_back_to_the_previous_one_when_damaged(tmp_path):
    x, y = _data()
    backup = str(tmp_path / "backup")
    with pytest.raises(RuntimeError):
        _model().fit(x, y, batch_size=16, epochs=5, verbose=0,
                     callbacks=[BackupAndRestore(backup), CrashAt(2)])
    metadata = json.loads(open(os.path.join(backup, "training_metadata.json")).read())
    with open(os.path.join(backup, f"backup-{metadata['slot']}.weights.h5"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match="not a valid HDF5"):
        _model().fit(x, y, epochs=5, verbose=0, callbacks=[BackupAndRestore(backup)])
    history = _model().fit(x, y, epochs=5, verbose=0,
                           callbacks=[BackupAndRestore(backup, double_checkpoint=True)])
    assert history.epoch == [1, 2, 3, 4]
