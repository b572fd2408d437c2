"""Dense inference through oneDNN with a packed kernel: same numbers as addmm, safe fallbacks."""
import warnings

import pytest
import torch

import kestrel as keras
from kestrel.layers import Dense
from kestrel.layers.core import packed_linear

pytestmark = pytest.mark.skipif(not packed_linear._usable(), reason="needs oneDNN on x86")


def _layer(activation="relu", use_bias=True, units=256, dim=784):
    keras.utils.set_random_seed(1)
    layer = Dense(units, activation=activation, use_bias=use_bias,
                  bias_initializer="random_normal")
    layer(torch.zeros(1, dim))
    return layer


def _reference(layer, x):
    with torch.enable_grad():  # autograd on: the addmm path
        return layer(x).detach()


@pytest.mark.parametrize("activation, use_bias", [("relu", True), ("sigmoid", True),
                                                  (None, True), ("relu", False)])
def test_inference_matches_addmm(activation, use_bias):
    layer = _layer(activation, use_bias)
    x = torch.randn(512, 784)
    with torch.no_grad():
        out = layer(x)
    assert layer._packed_kernel is not None  # the packed path ran
    torch.testing.assert_close(out, _reference(layer, x), rtol=1e-5, atol=1e-5)
    assert layer._packed_kernel is None  # released once autograd is on again


def test_packed_kernel_follows_weight_updates():
    layer = _layer()
    x = torch.randn(300, 784)
    with torch.no_grad():
        layer(x)
        layer.kernel.mul_(-1.0)  # an optimizer-style in-place update
        updated = layer(x)
    torch.testing.assert_close(updated, _reference(layer, x), rtol=1e-5, atol=1e-5)
    weights = layer.get_weights()
    weights[0] = weights[0] * 0.5
    layer.set_weights(weights)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _reference(layer, x), rtol=1e-5, atol=1e-5)


def test_predict_after_fit_uses_the_trained_kernel():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input(shape=(784,)), Dense(256, activation="relu"),
                              Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = torch.randn(512, 784), torch.randint(0, 10, (512,))
    before = model.predict(x, batch_size=512)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    after = model.predict(x, batch_size=512)
    with torch.enable_grad():
        expected = model(x).detach().numpy()
    assert abs(after - before).max() > 1e-4
    torch.testing.assert_close(torch.from_numpy(after), torch.from_numpy(expected),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["few rows", "small layer", "float64", "3-d", "autocast",
                                  "vmap"])
def test_other_calls_keep_addmm(case):
    layer = _layer(units=10 if case == "small layer" else 256,
                   dim=32 if case == "small layer" else 784)
    x = torch.randn(255 if case == "few rows" else 512, 32 if case == "small layer" else 784)
    with torch.no_grad():
        if case == "float64":
            layer = Dense(256, dtype="float64")
            layer(torch.zeros(1, 784, dtype=torch.float64))
            out = layer(x.double())
        elif case == "3-d":
            out = layer(x.reshape(2, 256, 784))
        elif case == "autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = layer(x)
        elif case == "vmap":
            out = torch.vmap(layer)(x.reshape(2, 256, 784))
        else:
            out = layer(x)
    assert layer._packed_kernel is None
    assert out.shape[-1] == layer.units


def test_traced_graphs_hold_plain_ops():
    layer = _layer()
    x = torch.randn(512, 784)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)  # none from the path's checks
        with torch.no_grad():
            traced = torch.jit.trace(layer, x)
    assert "mkldnn" not in str(traced.inlined_graph)
    torch.testing.assert_close(traced(x), _reference(layer, x))


def test_a_failing_op_falls_back_to_addmm_for_good(monkeypatch):
    monkeypatch.setattr(packed_linear, "_available", None)

    def broken(layer, rows):
        raise RuntimeError("no such kernel in this build")

    monkeypatch.setattr(packed_linear, "_packed", broken)
    layer = _layer()
    x = torch.randn(512, 784)
    with torch.no_grad():
        out = layer(x)
    torch.testing.assert_close(out, _reference(layer, x))
    assert packed_linear._available is False
    assert not packed_linear.applies(layer, x)
