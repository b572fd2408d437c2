"""fit with a LossScaleOptimizer or `loss_scale_factor` scales the loss before backward (as Keras),
and a model without trainable weights trains with Keras' warning instead of failing."""
import os
import warnings

import numpy as np
import pytest

import kestrel

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

X = np.random.RandomState(0).rand(32, 4).astype("float32")
Y = np.random.RandomState(1).rand(32, 2).astype("float32")


def _fit(lib, optimizer, weights=None, jit_compile=False):
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(2)])
    if weights is not None:
        model.set_weights(weights)
    kwargs = {"jit_compile": jit_compile} if lib is kestrel else {}
    model.compile(optimizer=optimizer, loss="mse", **kwargs)
    model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize("make", [
    lambda lib: lib.optimizers.LossScaleOptimizer(lib.optimizers.SGD(0.1), initial_scale=1024.0),
    lambda lib: lib.optimizers.SGD(0.1, loss_scale_factor=128.0),
])
def test_scaled_fit_matches_keras(make):
    start = kestrel.Sequential([kestrel.Input((4,)), kestrel.layers.Dense(2)]).get_weights()
    ours, theirs = _fit(kestrel, make(kestrel), start), _fit(keras, make(keras), start)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours[0], start[0])


def test_loss_scale_factor_in_the_compiled_step_matches_eager():
    start = kestrel.Sequential([kestrel.Input((4,)), kestrel.layers.Dense(2)]).get_weights()
    eager = _fit(kestrel, kestrel.optimizers.SGD(0.1, loss_scale_factor=64.0), start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = _fit(kestrel, kestrel.optimizers.SGD(0.1, loss_scale_factor=64.0), start,
                        jit_compile=True)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fit_without_trainable_weights_warns_like_keras():
    class AddsLoss(kestrel.layers.Layer):
        def call(self, inputs):
            self.add_loss(kestrel.ops.mean(inputs))
            return inputs

    inputs = kestrel.Input((3,))
    model = kestrel.Model(inputs, AddsLoss()(inputs))
    model.compile(optimizer="adam", loss="mse")
    with pytest.warns(UserWarning, match="does not have any trainable weights"):
        history = model.fit(X[:, :3], X[:, :3], verbose=0)
    assert np.isfinite(history.history["loss"][0])
