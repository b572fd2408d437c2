"""`jit_compile=True` (torch.compile of the steps) gives the eager results, or falls back."""
import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.trainers import step_functions

RTOL, ATOL = 1e-4, 1e-5


def _data(n=36, features=6, classes=3):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, features)).astype("float32"), rng.integers(0, classes, n)


def _mlp(jit, weights=None):
    model = keras.Sequential([keras.Input(shape=(6,)),
                              keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit)
    return model


def _pair():
    eager = _mlp(False)
    return eager, _mlp(True, eager.get_weights())


def _assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=RTOL, atol=ATOL)


def test_jit_fit_evaluate_predict_match_eager():
    x, y = _data()  # 36 samples at batch 8: the ragged last batch (4) runs eagerly
    eager, jit = _pair()
    h_eager = eager.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h_jit = jit.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert "train_whole" in jit._steps._compiled and jit._steps.jit  # one graph per step
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(h_jit.history[key], h_eager.history[key], rtol=RTOL, atol=ATOL)
    _assert_same_weights(eager, jit)
    assert jit.optimizer.iterations == eager.optimizer.iterations == 10

    np.testing.assert_allclose(jit.evaluate(x, y, batch_size=12, verbose=0),
                               eager.evaluate(x, y, batch_size=12, verbose=0),
                               rtol=RTOL, atol=ATOL)
    assert "test" in jit._steps._compiled  # forward, loss and metrics in one graph
    batch = torch.from_numpy(x[:12])
    for _ in range(2):  # the first predict call is eager, the second compiled
        out = jit._steps.predict(batch)
    np.testing.assert_allclose(out.numpy(), eager.predict(x[:12], verbose=0),
                               rtol=RTOL, atol=ATOL)
    assert "predict" in jit._steps._compiled


def test_jit_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("backend exploded")
        return run

    monkeypatch.setattr(step_functions.torch, "compile", broken_compile)
    x, y = _data()
    eager, jit = _pair()
    eager.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    with pytest.warns(UserWarning, match="torch.compile failed.*backend exploded") as caught:
        jit.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert len([w for w in caught if "jit_compile" in str(w.message)]) == 1
    assert not jit._steps.jit
    _assert_same_weights(eager, jit)


def test_user_errors_raise_and_keep_jit(monkeypatch):
    def failing_compile(fn, **kwargs):
        return fn  # "compiled" path is the eager body: a genuine error raises from both

    monkeypatch.setattr(step_functions.torch, "compile", failing_compile)
    x, y = _data()
    model = _mlp(True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    with pytest.raises(ValueError):
        model.fit(x, np.zeros((36, 5)), batch_size=8, epochs=1, verbose=0)
    assert model._steps.jit


def _lstm(jit):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(5, 3)), keras.layers.LSTM(4),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], jit_compile=jit)
    return model, np.random.default_rng(1).normal(size=(24, 5, 3)).astype("float32"), \
        np.random.default_rng(2).normal(size=(24, 1)).astype("float32")


def _two_heads(jit):
    keras.utils.set_random_seed(0)
    a, b = keras.Input(shape=(4,), name="a"), keras.Input(shape=(3,), name="b")
    h = keras.layers.Dense(6, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], [keras.layers.Dense(3, activation="softmax", name="cls")(h),
                                 keras.layers.Dense(1, name="reg")(h)])
    model.compile(optimizer="adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]},
                  jit_compile=jit)
    rng = np.random.default_rng(3)
    x = {"a": rng.normal(size=(24, 4)).astype("float32"),
         "b": rng.normal(size=(24, 3)).astype("float32")}
    return model, x, {"cls": rng.integers(0, 3, 24), "reg": rng.normal(size=(24, 1)).astype("float32")}


@pytest.mark.parametrize("build", [_lstm, _two_heads], ids=["lstm", "multi_output"])
def test_jit_matches_eager_on_recurrent_and_multi_output_models(build, monkeypatch):
    # compiled even on CPU (as on CUDA): the fused LSTM kernel runs outside the graph
    monkeypatch.setattr(step_functions, "_slower_compiled_on_cpu", lambda model: None)
    (eager, x, y), (jit, _, _) = build(False), build(True)
    h_eager = eager.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h_jit = jit.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert "train_whole" in jit._steps._compiled and jit._steps.jit
    for key in h_eager.history:
        np.testing.assert_allclose(h_jit.history[key], h_eager.history[key], rtol=RTOL, atol=ATOL)
    _assert_same_weights(eager, jit)
    np.testing.assert_allclose(jit.evaluate(x, y, batch_size=8, verbose=0),
                               eager.evaluate(x, y, batch_size=8, verbose=0), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("layer, kind", [(lambda: keras.layers.Conv1D(2, 3), "convolution"),
                                         (lambda: keras.layers.LSTM(2), "recurrent")])
def test_conv_and_recurrent_nets_stay_eager_on_cpu_with_one_warning(monkeypatch, layer, kind):
    def no_compile(fn, **kwargs):
        raise AssertionError("torch.compile must not be called")

    monkeypatch.setattr(step_functions.torch, "compile", no_compile)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(6, 2)), layer(), keras.layers.Flatten(),
                              keras.layers.Dense(2)], name="net")
    model.compile("sgd", "mse", jit_compile=True)
    x, y = np.ones((8, 6, 2), "float32"), np.zeros((8, 2), "float32")
    with pytest.warns(UserWarning, match=f"'net' runs eagerly: .* its {kind} layers") as caught:
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)
        model.evaluate(x, y, verbose=0)
    assert len([w for w in caught if "jit_compile" in str(w.message)]) == 1
    assert not model._steps.jit


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 3, 0.5)),
    lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.05, clipnorm=0.5),
    lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: keras.optimizers.Lion(0.001)], ids=["adam", "adamw", "sgd", "rmsprop", "lion"])
def test_whole_compiled_step_matches_eager(optimizer):
    x, y = _data()
    models = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(shape=(6,)),
                                  keras.layers.Dense(8, activation="relu",
                                                     kernel_regularizer="l2"),
                                  keras.layers.BatchNormalization(),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer=optimizer(), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], jit_compile=jit)
        history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
        models.append((model, history.history))
    (eager, h_eager), (jit, h_jit) = models
    assert list(jit._steps._compiled) == ["train_whole"] and jit._steps.jit
    for key in h_eager:
        np.testing.assert_allclose(h_jit[key], h_eager[key], rtol=RTOL, atol=ATOL)
    _assert_same_weights(eager, jit)
    assert jit.optimizer.iterations == eager.optimizer.iterations == 15
    for a, b in zip(jit.optimizer.get_weights(), eager.optimizer.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_whole_step_is_not_used_where_the_update_must_stay_eager(monkeypatch):
    x, y = _data()
    model = _mlp(True)
    model.compile(optimizer="nadam", loss="sparse_categorical_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert list(model._steps._compiled) == ["train"]  # forward + loss only

    model = _mlp(True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    calls = []
    original = model.optimizer.step
    monkeypatch.setattr(model.optimizer, "step", lambda: calls.append(1) or original())
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # a hooked step (data parallel) is kept
    assert len(calls) == 5
