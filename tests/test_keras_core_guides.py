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
    # the last epoch replays the two batches Keras read ahead from the generator
    assert (seen, ran_out) == _steps_seen(keras, batches(), 5)[:2] == ([5, 5, 3, 2], 2)


def _masked_chain(lib):
    """understanding_masking_and_padding: a mask made by Embedding, passed along by layers
    that support masking (the guide prints `x._keras_mask`)."""

    class MyActivation(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs):
            return lib.ops.relu(inputs)

    inputs = fresh(lib).Input(shape=(None,), dtype="int32")
    x = lib.layers.Embedding(input_dim=50, output_dim=4, mask_zero=True)(inputs)
    y = MyActivation()(x)
    z = lib.layers.Dropout(0.1)(lib.layers.Activation("relu")(y))
    pooled = lib.layers.GlobalAveragePooling1D()(z)
    outputs = lib.layers.LSTM(3)(y)
    names = [t.name for t in (inputs, x, x._keras_mask, y, y._keras_mask, z, pooled, outputs)]
    return names, y._keras_mask is x._keras_mask, z._keras_mask is x._keras_mask, \
        repr(y._keras_mask), lib.Input((1,)).name


def test_symbolic_masks_are_named_and_passed_through_as_keras():
    ours, theirs = _masked_chain(kestrel), _masked_chain(keras)
    assert ours == theirs
    assert ours[1] and ours[2] and ours[0][2] == "keras_tensor_2"


def _logs_order(lib):
    """transfer_learning prints `model.evaluate(..., return_dict=True)`: Keras lists by name."""
    keys = []

    class FirstBatch(lib.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                keys.append(list(logs))

    inputs = fresh(lib).Input(shape=(3,))
    model = lib.Model(inputs, lib.layers.Dense(1)(inputs))
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["binary_accuracy", "auc"])
    y = (Y > 0.5).astype("float32")
    model.fit(X, y, verbose=0, callbacks=[FirstBatch()])
    keys += [list(model.evaluate(X, y, verbose=0, return_dict=True)),
             list(model.train_on_batch(X, y, return_dict=True)),
             list(model.test_on_batch(X, y, return_dict=True)),
             len(model.evaluate(X, y, verbose=0)), list(model.get_metrics_result())]
    return keys


def test_returned_and_batch_logs_are_ordered_by_name_as_keras():
    ours = _logs_order(kestrel)
    assert ours == _logs_order(keras)
    assert ours[1] == ["auc", "binary_accuracy", "loss"]
    assert ours[-1] == ["loss", "binary_accuracy", "auc"]
