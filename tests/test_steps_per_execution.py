"""compile(steps_per_execution=k): the same weights as k=1, callbacks once per group of k.

Keras 3's torch backend refuses k > 1; the expected callback indices below are what Keras 3.15
on JAX reports for the same calls (begin hook: a group's first batch; end hook: begin + k - 1,
also for a last, shorter group).
"""
import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.trainers.step_groups import groups

X = np.random.default_rng(0).standard_normal((40, 3)).astype("float32")
Y = np.random.default_rng(1).integers(0, 4, 40)


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(("train_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("train_end", batch, float(logs["loss"])))

    def on_test_batch_begin(self, batch, logs=None):
        self.events.append(("test_begin", batch))

    def on_test_batch_end(self, batch, logs=None):
        self.events.append(("test_end", batch))

    def on_predict_batch_begin(self, batch, logs=None):
        self.events.append(("predict_begin", batch))

    def on_predict_batch_end(self, batch, logs=None):
        self.events.append(("predict_end", batch, logs["outputs"].shape[0]))

    def indices(self, prefix):
        return [e[:2] for e in self.events if e[0].startswith(prefix)]


def _model(k, jit=False):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.0), keras.layers.Dense(4, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=k, jit_compile=jit)
    return model


def _fit(k, jit=False, **kwargs):
    model = _model(k, jit)
    history = model.fit(X, Y, batch_size=4, epochs=2, verbose=0, shuffle=False, **kwargs)
    return model, history


GROUPS_OF_3 = [("train_begin", 0), ("train_end", 2), ("train_begin", 3), ("train_end", 5),
               ("train_begin", 6), ("train_end", 8), ("train_begin", 9), ("train_end", 11)]


@pytest.mark.parametrize("jit", [False, True])
def test_same_weights_and_logs_as_one_step(jit):
    one, h1 = _fit(1, jit)
    three, h3 = _fit(3, jit)  # 10 batches: groups of 3, 3, 3, 1
    for a, b in zip(one.get_weights(), three.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1.history == h3.history
    assert one.optimizer.iterations == three.optimizer.iterations == 20
    if not jit:  # compiled evaluate / predict are covered below, once
        assert one.evaluate(X, Y, verbose=0) == three.evaluate(X, Y, verbose=0)
        np.testing.assert_array_equal(one.predict(X, verbose=0), three.predict(X, verbose=0))


def test_train_callback_indices_as_keras():
    recorder = Recorder()
    model, _ = _fit(3, callbacks=[recorder])
    assert recorder.indices("train") == GROUPS_OF_3 * 2
    # the end hook sees the metrics after the group's last batch
    assert recorder.events[-1][2] == pytest.approx(model.get_metrics_result()["loss"].item())


def test_steps_per_epoch_not_a_multiple_of_k():
    recorder = Recorder()
    model, _ = _fit(3, callbacks=[recorder], steps_per_epoch=5)
    expected = [("train_begin", 0), ("train_end", 2), ("train_begin", 3), ("train_end", 5)]
    assert recorder.indices("train") == expected * 2
    assert model.optimizer.iterations == 10  # exactly 5 batches per epoch, as Keras on JAX
    reference, _ = _fit(1, steps_per_epoch=5)
    for a, b in zip(reference.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("jit", [False, True])
def test_evaluate_and_predict_groups(jit):
    model = _model(3, jit)
    recorder = Recorder()
    model.evaluate(X, Y, batch_size=4, verbose=0, callbacks=[recorder])
    assert recorder.indices("test") == [(kind.replace("train", "test"), i) for kind, i in GROUPS_OF_3]
    recorder = Recorder()
    out = model.predict(X, batch_size=4, verbose=0, callbacks=[recorder])
    ends = [e for e in recorder.events if e[0] == "predict_end"]
    assert ends == [("predict_end", 2, 12), ("predict_end", 5, 12), ("predict_end", 8, 12),
                    ("predict_end", 11, 4)]  # a group's outputs, joined
    assert out.shape == (40, 4)


def test_progress_bar_counts_groups(capsys):
    model = _model(3)
    model.fit(X, Y, batch_size=4, epochs=1, verbose=1)
    assert "10/10" in capsys.readouterr().out


def test_uncompiled_predict_and_bad_values():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert model.predict(X, verbose=0).shape == (40, 2)
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="steps_per_execution"):
            model.compile("sgd", "mse", steps_per_execution=bad)


def test_groups_of_a_generator():
    assert list(groups(iter(range(7)), 3, start=2)) == [
        (2, 4, [0, 1, 2]), (5, 7, [3, 4, 5]), (8, 10, [6])]
    assert list(groups([], 3)) == []


def test_generator_data_with_changing_shapes_is_safe_under_jit():
    """Batches of different sizes inside one group are checked with all guards."""
    def data():
        for size in (4, 4, 4, 4, 2, 4):
            yield torch.from_numpy(X[:size]), torch.from_numpy(Y[:size])

    one, three = _model(1, jit=True), _model(3, jit=True)
    for model in (one, three):
        model.fit(data(), epochs=1, verbose=0)
    for a, b in zip(one.get_weights(), three.get_weights()):
        np.testing.assert_array_equal(a, b)
