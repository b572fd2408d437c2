"""BackupAndRestore resumes exactly: after a kill mid-epoch, a fresh model and `fit` continue at
the next batch of the same shuffled order with the same random draws, so the final weights
equal an uninterrupted run bit for bit (shuffle=True, Dropout, Adam state)."""
import json
import os

import numpy as np
import pytest
import torch

import kestrel
from kestrel.utils import set_random_seed

X = np.random.default_rng(0).standard_normal((40, 6)).astype("float32")
Y = (np.arange(40) % 3).astype("int64")
FIT = {"epochs": 3, "batch_size": 8, "shuffle": True, "verbose": 0}  # 5 batches an epoch


class Kill(Exception):
    pass


class KillAfter(kestrel.callbacks.Callback):
    """Raises after `count` training batches, as a killed process would stop."""

    def __init__(self, count):
        super().__init__()
        self.count = count
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.count:
            raise Kill()


class Batches(kestrel.callbacks.Callback):
    """Records (epoch, batch) of every trained batch."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append((self.epoch, batch))


def _model(seed):
    set_random_seed(seed)
    layers = kestrel.layers
    model = kestrel.Sequential([
        kestrel.Input((6,)), layers.Dense(16, activation="relu"), layers.Dropout(0.3),
        layers.Dense(16, activation="relu"), layers.Dropout(0.2, seed=7),
        layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _uninterrupted():
    model = _model(0)
    model.fit(X, Y, **FIT)
    return model


@pytest.mark.parametrize("save_freq, kill_at, resumed", [
    (3, 8, (1, 1)),  # last backup after epoch 1's first batch; killed 2 batches later
    (5, 10, (2, 0)),  # last backup after epoch 1's last batch: epoch 1 has nothing left
    ("epoch", 7, (1, 0)),  # epoch backups: the random states at the epoch's end come back
])
def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, save_freq, kill_at, resumed):
    reference = _uninterrupted()
    backup_dir = str(tmp_path / "backup")

    model = _model(0)
    with pytest.raises(Kill):
        model.fit(X, Y, callbacks=[kestrel.callbacks.BackupAndRestore(backup_dir, save_freq),
                                   KillAfter(kill_at)], **FIT)
    with open(os.path.join(backup_dir, "training_metadata.json"), encoding="utf-8") as f:
        assert "rng" in json.load(f)

    fresh = _model(123)  # a new process: other initial weights and random states
    batches = Batches()
    fresh.fit(X, Y, callbacks=[kestrel.callbacks.BackupAndRestore(backup_dir, save_freq),
                               batches], **FIT)
    assert batches.seen[0] == resumed
    assert len(batches.seen) == 15 - (resumed[0] * 5 + resumed[1])
    for ours, theirs in zip(fresh.weights, reference.weights):
        assert torch.equal(ours.value, theirs.value), ours.path
    assert int(fresh.optimizer.iterations) == int(reference.optimizer.iterations) == 15
    assert not os.path.exists(backup_dir)  # deleted after the finished run


def test_a_second_kill_after_resuming_still_resumes_exactly(tmp_path):
    reference = _uninterrupted()
    backup_dir = str(tmp_path / "backup")
    for seed, kill_at in ((0, 4), (5, 5)):  # killed at global batch 4, then at 4 + 5 = 9
        model = _model(seed)  # the first run starts as the reference, the second is resumed
        with pytest.raises(Kill):
            model.fit(X, Y, callbacks=[kestrel.callbacks.BackupAndRestore(backup_dir, 2),
                                       KillAfter(kill_at)], **FIT)
    fresh = _model(99)
    fresh.fit(X, Y, callbacks=[kestrel.callbacks.BackupAndRestore(backup_dir, 2)], **FIT)
    for ours, theirs in zip(fresh.weights, reference.weights):
        assert torch.equal(ours.value, theirs.value), ours.path
