"""Callbacks that act on training, driven by a tiny fake model and a Keras-ordered loop.

EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN,
CSVLogger and BackupAndRestore.
"""
import csv
import json
import math
import os

import h5py
import numpy as np
import pytest
import torch

from kestrel.callbacks import (
    BackupAndRestore, Callback, CallbackList, CSVLogger, EarlyStopping,
    LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN,
)


class FakeOptimizer:
    """Keras' optimizer surface over torch SGD: `learning_rate`, `iterations`, state."""

    def __init__(self, params, learning_rate=0.1):
        self._sgd = torch.optim.SGD(params, lr=learning_rate, momentum=0.9)
        self.iterations = 0

    @property
    def learning_rate(self):
        return self._sgd.param_groups[0]["lr"]

    @learning_rate.setter
    def learning_rate(self, value):
        self._sgd.param_groups[0]["lr"] = value

    def state_dict(self):
        return self._sgd.state_dict()

    def load_state_dict(self, state):
        self._sgd.load_state_dict(state)


class FakeModel(torch.nn.Module):
    """One weight tensor; each epoch of "training" fills it with `epoch + 1`."""

    def __init__(self):
        super().__init__()
        self.kernel = torch.nn.Parameter(torch.zeros(2, 3))
        self.stop_training = False
        self.optimizer = FakeOptimizer(self.parameters())
        self.saved = []

    def train_epoch(self, epoch, steps):
        self.kernel.grad = torch.ones_like(self.kernel)
        self.optimizer._sgd.step()  # gives the optimizer some state (momentum)
        with torch.no_grad():
            self.kernel.fill_(epoch + 1)
        self.optimizer.iterations += steps

    def get_weights(self):
        return [self.kernel.detach().numpy().copy()]

    def set_weights(self, weights):
        with torch.no_grad():
            self.kernel.copy_(torch.as_tensor(weights[0]))

    def save_weights(self, filepath, overwrite=True):
        with h5py.File(filepath, "w") as f:
            f["kernel"] = self.kernel.detach().numpy()
        self.saved.append(os.path.basename(filepath))

    save = save_weights

    def load_weights(self, filepath):
        with h5py.File(filepath, "r") as f:
            self.set_weights([f["kernel"][()]])


def fit(model, callbacks, epoch_logs, steps=2, batch_loss=0.5, crash_at=None):
    """A Keras 3-ordered fit loop; epoch `i` ends with `epoch_logs[i]`."""
    callbacks = CallbackList(callbacks, add_history=True, model=model, verbose=0,
                             epochs=len(epoch_logs), steps=steps)
    model.stop_training = False
    model._initial_epoch = None
    callbacks.on_train_begin()
    start = model._initial_epoch or 0
    logs = {}
    for epoch in range(start, len(epoch_logs)):
        if epoch == crash_at:
            raise RuntimeError("simulated crash")
        callbacks.on_epoch_begin(epoch)
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            callbacks.on_train_batch_end(step, {"loss": torch.tensor(batch_loss)})
            if model.stop_training:
                break
        model.train_epoch(epoch, steps)
        logs = dict(epoch_logs[epoch])
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    return callbacks._history


def val_losses(*values):
    return [{"loss": 1.0, "val_loss": v} for v in values]


# EarlyStopping


def test_early_stopping_stops_after_patience_and_restores_best(capsys):
    model = FakeModel()
    stopper = EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    history = fit(model, [stopper], val_losses(1.0, 0.5, 0.6, 0.7, 0.8, 0.9))
    assert history.epoch == [0, 1, 2, 3]  # epochs 2 and 3 did not improve on 0.5
    assert stopper.stopped_epoch == 3 and stopper.best == 0.5
    np.testing.assert_array_equal(model.get_weights()[0], np.full((2, 3), 2.0))  # epoch 1
    out = capsys.readouterr().out
    assert "Epoch 4: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 2." in out


def test_early_stopping_min_delta_mode_baseline_and_warmup():
    accuracy = [{"val_accuracy": v} for v in (0.5, 0.52, 0.9, 0.91, 0.92)]
    assert fit(FakeModel(), [EarlyStopping("val_accuracy", min_delta=0.05)],
               accuracy).epoch == [0, 1]
    model = FakeModel()
    flat = val_losses(1.0, 1.0, 1.0, 1.0, 1.0)
    assert fit(model, [EarlyStopping(patience=3)], flat).epoch == [0, 1, 2, 3]
    # The first epoch does not beat the baseline, so it counts towards the patience.
    assert fit(model, [EarlyStopping(baseline=0.1, patience=3)], flat).epoch == [0, 1, 2]
    warm = EarlyStopping(start_from_epoch=3)
    assert fit(FakeModel(), [warm], val_losses(1, 2, 3, 4, 5, 6)).epoch == [0, 1, 2, 3, 4]


def test_early_stopping_warns_on_missing_metric():
    with pytest.warns(UserWarning, match="Available metrics are: loss"):
        fit(FakeModel(), [EarlyStopping()], [{"loss": 1.0}])


def test_mode_auto_needs_a_known_direction():
    with pytest.raises(ValueError, match="Pass `mode='max'`"):
        fit(FakeModel(), [EarlyStopping("val_foo")], [{"val_foo": 1.0}, {"val_foo": 2.0}])


# ModelCheckpoint


def test_checkpoint_formats_names_and_saves_only_improvements(tmp_path, capsys):
    model = FakeModel()
    path = tmp_path / "w.{epoch:02d}-{val_loss:.2f}.weights.h5"
    checkpoint = ModelCheckpoint(path, save_best_only=True, save_weights_only=True, verbose=1)
    fit(model, [checkpoint], val_losses(0.9, 0.5, 0.7, 0.25))
    assert model.saved == ["w.01-0.90.weights.h5", "w.02-0.50.weights.h5",
                           "w.04-0.25.weights.h5"]
    assert sorted(os.listdir(tmp_path)) == model.saved
    out = capsys.readouterr().out
    assert "Epoch 3: val_loss did not improve from 0.50000" in out
    assert "Epoch 4: val_loss improved from 0.50000 to 0.25000, saving model to" in out


def test_checkpoint_every_epoch_batches_and_threshold(tmp_path):
    model = FakeModel()
    fit(model, [ModelCheckpoint(tmp_path / "sub" / "m-{epoch}.keras")], val_losses(3, 2))
    assert model.saved == ["m-1.keras", "m-2.keras"]
    model = FakeModel()
    batches = ModelCheckpoint(tmp_path / "b-{epoch}-{batch}-{loss:.1f}.h5", save_freq=3)
    fit(model, [batches], val_losses(3, 2, 1), steps=2)
    assert model.saved == ["b-2-1-0.5.h5", "b-3-2-0.5.h5"]  # after batches 3 and 6
    model = FakeModel()
    best = ModelCheckpoint(tmp_path / "best.keras", save_best_only=True,
                           initial_value_threshold=0.6)
    fit(model, [best], val_losses(0.9, 0.7, 0.5))
    assert model.saved == ["best.keras"]
    with h5py.File(tmp_path / "best.keras") as f:
        assert f["kernel"][0, 0] == 3.0


def test_checkpoint_validates_arguments():
    with pytest.raises(ValueError, match="must end in `.weights.h5`"):
        ModelCheckpoint("w.pt", save_weights_only=True)  # .h5/.hdf5 are Keras 2 weight files
    with pytest.raises(ValueError, match="Received: filepath=model.pt"):
        ModelCheckpoint("model.pt")
    with pytest.raises(ValueError, match="Received: save_freq='batch'"):
        ModelCheckpoint("m.keras", save_freq="batch")


# ReduceLROnPlateau and LearningRateScheduler


def test_reduce_lr_on_plateau_after_patience_with_cooldown():
    model = FakeModel()
    reduce = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=2, min_lr=0.02)
    history = fit(model, [reduce], val_losses(*[1.0] * 9))
    # Reduced at the end of epochs 2, 5 and 8: two stale epochs, and after a reduction
    # one more epoch of cooldown (Keras counts the cooldown down before comparing);
    # the last reduction is clipped to min_lr. Logs show the rate the epoch ran with.
    assert history.history["learning_rate"] == [0.1] * 3 + [0.05] * 3 + [0.025] * 3
    assert model.optimizer.learning_rate == 0.02
    with pytest.raises(ValueError, match="Received: factor=1.5"):
        ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_respects_min_delta():
    model = FakeModel()
    fit(model, [ReduceLROnPlateau(patience=1, min_delta=0.1)], val_losses(1.0, 0.95, 0.5))
    assert model.optimizer.learning_rate == pytest.approx(0.01)


def test_learning_rate_scheduler_both_signatures(capsys):
    model = FakeModel()
    history = fit(model, [LearningRateScheduler(lambda epoch, lr: lr * 0.5, verbose=1)],
                  val_losses(1, 1, 1))
    assert history.history["learning_rate"] == [0.05, 0.025, 0.0125]
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.025." in \
        capsys.readouterr().out
    fit(model, [LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))], val_losses(1, 1))
    assert model.optimizer.learning_rate == 0.05
    with pytest.raises(ValueError, match="should be a float"):
        fit(model, [LearningRateScheduler(lambda epoch: "fast")], val_losses(1))


# TerminateOnNaN


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_terminate_on_nan_stops_training(capsys, bad):
    history = fit(FakeModel(), [TerminateOnNaN()], val_losses(1, 1, 1), batch_loss=bad)
    assert history.epoch == [0]
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 0"):
        fit(FakeModel(), [TerminateOnNaN(raise_error=True)], val_losses(1), batch_loss=bad)
    assert fit(FakeModel(), [TerminateOnNaN()], val_losses(1, 1)).epoch == [0, 1]


# CSVLogger


def test_csv_logger_writes_and_appends(tmp_path):
    path = tmp_path / "log.csv"
    fit(FakeModel(), [CSVLogger(path)], [{"loss": 0.5, "accuracy": 0.25},
                                         {"loss": 0.25, "accuracy": 0.5}])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    # Keras adds the val_ columns even without validation data.
    assert rows == [["epoch", "accuracy", "loss", "val_accuracy", "val_loss"],
                    ["0", "0.25", "0.5", "NA", "NA"], ["1", "0.5", "0.25", "NA", "NA"]]
    fit(FakeModel(), [CSVLogger(path, separator=";", append=True)],
        [{"loss": 0.125, "val_loss": 1.0, "vector": np.array([1, 2])}])
    with open(path) as f:
        lines = f.read().splitlines()
    # As Keras, a sequence is written as '"[1, 2]"' with its quotes, which csv escapes.
    assert lines[3:] == ['0;0.125;1.0;"""[1, 2]"""'] and len(lines) == 4
    fit(FakeModel(), [CSVLogger(path)], [{"loss": 1.0, "val_loss": 2.0}])
    with open(path) as f:
        assert f.read().splitlines() == ["epoch,loss,val_loss", "0,1.0,2.0"]


# BackupAndRestore


class Spy(Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)
