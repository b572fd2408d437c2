"""evaluate() with loss/metric updates per chunk equals the batch-by-batch evaluation."""
import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.callbacks import Callback
from kestrel.layers import Dense, Embedding, Input, LSTM
from kestrel.models import Model, Sequential
from kestrel.trainers import deferred_updates, fit_loop
from kestrel.trainers.logs import LazyLogs

RNG = np.random.default_rng(0)


def _two_heads(metrics=None, regularized=False):
    keras.utils.set_random_seed(0)
    a = Input(shape=(5,), name="a")
    reg = keras.regularizers.L2(0.01) if regularized else None
    h = Dense(8, activation="relu", kernel_regularizer=reg)(a)
    model = Model(a, [Dense(4, activation="softmax", name="cls")(h), Dense(1, name="reg")(h)])
    model.compile("sgd", loss={"cls": "sparse_categorical_crossentropy", "reg": "mae"},
                  loss_weights={"cls": 1.0, "reg": 0.3},
                  metrics=metrics or {"cls": ["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2)],
                                      "reg": ["mse"]})
    return model


def _data(n=45):
    x = RNG.normal(size=(n, 5)).astype("float32")
    y = {"cls": RNG.integers(0, 4, n), "reg": RNG.normal(size=(n, 1)).astype("float32")}
    return x, y, RNG.uniform(0.0, 2.0, n).astype("float32")


def _batch_by_batch(model, monkeypatch, *args, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(fit_loop, "can_defer", lambda model, callbacks: False)
        return model.evaluate(*args, verbose=0, return_dict=True, **kwargs)


class _CountUpdates:
    """Counts the model's metric updates (one per batch, or one per chunk when deferred)."""

    def __init__(self, model, monkeypatch):
        self.calls = 0
        original = model._update_metrics

        def counted(*args):
            self.calls += 1
            return original(*args)

        monkeypatch.setattr(model, "_update_metrics", counted)


@pytest.mark.parametrize("weighted", [False, True])
def test_chunked_updates_equal_batch_by_batch(monkeypatch, weighted):
    x, y, sw = _data()
    model = _two_heads()
    sample_weight = {"cls": sw, "reg": sw} if weighted else None
    expected = _batch_by_batch(model, monkeypatch, x, y, batch_size=8,
                               sample_weight=sample_weight)
    counter = _CountUpdates(model, monkeypatch)
    got = model.evaluate(x, y, batch_size=8, sample_weight=sample_weight, verbose=0,
                         return_dict=True)
    assert counter.calls == 1  # one chunk (the metrics exist since the first evaluate)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == pytest.approx(expected[name], rel=1e-5), name


def test_weight_penalties_count_once_per_sample(monkeypatch):
    x, y, _ = _data()
    model = _two_heads(regularized=True)
    expected = _batch_by_batch(model, monkeypatch, x, y, batch_size=7)
    got = model.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert got["loss"] > got["cls_loss"] + 0.3 * got["reg_loss"] + 1e-4  # the L2 term is in


def test_small_chunks_and_changing_shapes(monkeypatch):
    keras.utils.set_random_seed(0)
    model = Sequential([Input(shape=(None, 3)), LSTM(4, return_sequences=True),
                        Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    batches = [(RNG.normal(size=(6, steps, 3)).astype("float32"), RNG.integers(0, 2, (6, steps)))
               for steps in (4, 4, 7, 7, 7, 2)]
    expected = _batch_by_batch(model, monkeypatch, iter(batches))
    monkeypatch.setattr(deferred_updates, "CHUNK_BYTES", 1000)  # two batches of 7 steps
    counter = _CountUpdates(model, monkeypatch)
    got = model.evaluate(iter(batches), verbose=0, return_dict=True)
    assert counter.calls == 4  # steps 4+4 | 7+7 (bytes) | 7 | 2
    for name in expected:
        assert got[name] == pytest.approx(expected[name], rel=1e-5)


def test_masked_outputs_are_updated_batch_by_batch(monkeypatch):
    keras.utils.set_random_seed(0)
    model = Sequential([Input(shape=(6,)), Embedding(10, 4, mask_zero=True), Dense(3)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = RNG.integers(0, 10, (20, 6))
    y = RNG.integers(0, 3, (20, 6))
    expected = _batch_by_batch(model, monkeypatch, x, y, batch_size=6)
    counter = _CountUpdates(model, monkeypatch)
    got = model.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)
    assert counter.calls == 4
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def _custom_metric(y_true, y_pred):
    return torch.mean(y_pred)  # one value per batch: not additive over samples


def test_user_metrics_losses_and_callbacks_keep_batch_by_batch(monkeypatch):
    x, y, _ = _data()
    model = _two_heads()
    counter = _CountUpdates(model, monkeypatch)
    model.evaluate(x, y, batch_size=8, verbose=0)
    assert counter.calls == 2  # the first batch builds the metrics; the rest is one chunk

    model = _two_heads(metrics={"cls": [_custom_metric]})
    counter = _CountUpdates(model, monkeypatch)
    model.evaluate(x, y, batch_size=8, verbose=0)
    assert counter.calls == 6

    model = _two_heads()
    model.compile("sgd", loss=[lambda t, p: torch.mean((t - p[:, :1]) ** 2), "mae"])
    assert not deferred_updates.can_defer(model, fit_loop._callback_list(model, None, 0, 1, 1))

    class Reader(Callback):
        def on_test_batch_end(self, batch, logs=None):
            pass

    model = _two_heads()
    counter = _CountUpdates(model, monkeypatch)
    model.evaluate(x, y, batch_size=8, verbose=0, callbacks=[Reader()])
    assert counter.calls == 6


def test_reading_the_batch_logs_flushes_first(monkeypatch):
    x, y, _ = _data(16)
    model = _two_heads()
    expected = _batch_by_batch(model, monkeypatch, x, y, batch_size=16)
    model.reset_metrics()
    updates = deferred_updates.DeferredUpdates(model)
    tensors = (torch.from_numpy(x), {k: torch.from_numpy(v) for k, v in y.items()}, None)
    updates.test(tuple(t[:4] if not isinstance(t, dict) else {k: v[:4] for k, v in t.items()}
                       for t in tensors[:2]) + (None,))
    updates.test(tuple(t[4:] if not isinstance(t, dict) else {k: v[4:] for k, v in t.items()}
                       for t in tensors[:2]) + (None,))
    assert updates._pending  # the second batch waits for a flush
    logs = LazyLogs(model.metrics, updates.flush)
    assert float(logs["loss"]) == pytest.approx(expected["loss"], rel=1e-5)
    assert not updates._pending


def test_evaluating_without_targets_or_penalties_is_the_same_clear_error():
    x, y, _ = _data()
    model = _two_heads()
    model.evaluate(x, y, batch_size=8, verbose=0)  # the metrics exist: later passes defer
    with pytest.raises(ValueError, match="has no loss to optimize"):
        model.evaluate(x, batch_size=8, verbose=0)
