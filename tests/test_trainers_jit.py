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
    assert "train" in jit._steps._compiled and jit._steps.jit
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(h_jit.history[key], h_eager.history[key], rtol=RTOL, atol=ATOL)
    _assert_same_weights(eager, jit)
    assert jit.optimizer.iterations == eager.optimizer.iterations == 10

    np.testing.assert_allclose(jit.evaluate(x, y, batch_size=12, verbose=0),
                               eager.evaluate(x, y, batch_size=12, verbose=0),
                               rtol=RTOL, atol=ATOL)
    assert "predict" in jit._steps._compiled  # evaluate: compiled forward, metrics per chunk
    for _ in range(2):  # the first call is eager, the second compiled
        on_batch = jit.test_on_batch(x[:12], y[:12])
    assert "test" in jit._steps._compiled
    np.testing.assert_allclose(on_batch, eager.test_on_batch(x[:12], y[:12]),
                               rtol=RTOL, atol=ATOL)
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
