"""The keras-core guides run whole with Kestrel and with real Keras 3 (torch backend): what
differed, pinned against Keras."""
import os
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (real Keras 3: the reference)

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402

RNG = np.random.RandomState(0)
X = RNG.rand(26, 3).astype("float32")
Y = RNG.rand(26, 1).astype("float32")


def _steps_seen(lib, data, steps_per_epoch):
    """Batches per epoch and 'ran out of data' warnings of a 4-epoch fit."""
    seen = []

    class Count(lib.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(0)

        def on_train_batch_end(self, batch, logs=None):
            seen[-1] += 1

    model = fresh(lib).Sequential([lib.Input((3,)), lib.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(data, epochs=4, steps_per_epoch=steps_per_epoch, verbose=0,
                            callbacks=[Count()])
    ran_out = sum("ran out of data" in str(w.message) for w in caught)
    return seen, ran_out, all(loss > 0 for loss in history.history["loss"])


@pytest.mark.parametrize("steps_per_epoch", [5, 13, 100])
def test_dataloader_with_more_steps_than_batches_restarts_each_epoch_as_keras(steps_per_epoch):
    """training_with_built_in_methods: fit(train_dataset, epochs=3, steps_per_epoch=100) on a
    shorter dataset warns, ends the epoch, and the next epoch reads the data again."""
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), batch_size=2)
    ours = _steps_seen(kestrel, loader, steps_per_epoch)
    assert ours == _steps_seen(keras, loader, steps_per_epoch)
    assert ours[2]


def test_generator_read_to_its_end_warns_as_keras():
    def batches():
        for i in range(0, 26, 2):
            yield X[i:i + 2], Y[i:i + 2]

    seen, ran_out, _ = _steps_seen(kestrel, batches(), 5)
    assert seen == [5, 5, 3, 0] and ran_out == 2
