"""Activation layers against real Keras 3 (torch backend) on the same inputs."""
import os

import numpy as np
import pytest
import torch

import kestrel
from kestrel.layers import Dense, Input
from kestrel.layers.activations import ELU, LeakyReLU, PReLU, ReLU, Softmax
from kestrel.registry.serialization import deserialize_keras_object
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(0)
X = (RNG.standard_normal((3, 4, 5)) * 3).astype(np.float32)


@pytest.fixture(scope="module")
def real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    assert keras.backend.backend() == "torch"
    return keras


CASES = [
    ("ReLU", {}),
    ("ReLU", {"max_value": 2.0, "negative_slope": 0.1, "threshold": 0.5}),
    ("ReLU", {"max_value": 4.0}),
    ("LeakyReLU", {}),
    ("LeakyReLU", {"negative_slope": 0.05}),
    ("ELU", {"alpha": 0.7}),
    ("Softmax", {}),
    ("Softmax", {"axis": 1}),
    ("Softmax", {"axis": [1, 2]}),
    ("PReLU", {"alpha_initializer": "ones", "shared_axes": [1]}),
]
CLASSES = {c.__name__: c for c in (ELU, LeakyReLU, PReLU, ReLU, Softmax)}


@pytest.mark.parametrize("name, kwargs", CASES)
def test_matches_keras_and_config_keys(real_keras, name, kwargs):
    ours = CLASSES[name](**kwargs)
    theirs = getattr(real_keras.layers, name)(**kwargs)
    expected = np.asarray(theirs(X).detach().cpu())
    if name == "PReLU":  # a learned slope: share Keras' random values
        ours.build(X.shape)
        alpha = RNG.standard_normal(theirs.get_weights()[0].shape).astype(np.float32)
        theirs.set_weights([alpha])
        ours.set_weights([alpha])
        expected = np.asarray(theirs(X).detach().cpu())
    np.testing.assert_allclose(ours(torch.from_numpy(X)).detach().numpy(), expected,
                               rtol=1e-6, atol=1e-6)
    theirs_config = theirs.get_config()
    assert set(theirs_config) - {"alpha"} <= set(ours.get_config())  # Keras' ELU omits alpha


@pytest.mark.parametrize("name, kwargs", CASES)
def test_harness(name, kwargs):
    run_layer_test(CLASSES[name], kwargs, input_shape=(2, 4, 5), expected_output_shape=(2, 4, 5),
                   expected_num_trainable_weights=int(name == "PReLU"),
                   expected_num_non_trainable_weights=0)


def test_prelu_weight_layout_and_gradient():
    layer = PReLU(shared_axes=[1, 2])
    layer(torch.zeros(2, 4, 5, 3))
    assert [w.shape for w in layer.get_weights()] == [(1, 1, 3)]
    assert layer.weights[0] is layer.alpha and layer.get_config()["shared_axes"] == [1, 2]
    layer.set_weights([np.array([[[0.5, 1.0, 2.0]]], np.float32)])
    np.testing.assert_allclose(layer(-torch.ones(1, 1, 1, 3)).detach().numpy().ravel(),
                               [-0.5, -1.0, -2.0])
    with pytest.raises(ValueError, match="shared_axes"):
        PReLU(shared_axes=[0])


def test_softmax_mask_matches_keras_and_propagated_mask(real_keras):
    logits = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 1]], bool)[:, None, :]
    expected = np.asarray(real_keras.layers.Softmax()(logits, mask=mask).cpu())
    got = Softmax()(torch.from_numpy(logits), mask=torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert np.all(got[np.broadcast_to(~mask, got.shape)] == 0)
    float_mask = Softmax()(torch.from_numpy(logits), mask=torch.from_numpy(mask).float())
    np.testing.assert_allclose(float_mask.numpy(), expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="broadcastable"):
        Softmax()(torch.zeros(2, 3), mask=torch.ones(2, 4, dtype=torch.bool))
    x = torch.from_numpy(logits[:, 0])
    x._keras_mask = torch.from_numpy(mask[:, 0])  # a mask carried by the input
    np.testing.assert_allclose(Softmax()(x).numpy(), expected[:, 0], rtol=1e-6, atol=1e-7)


def test_leaky_relu_accepts_keras2_alpha():
    config = {"class_name": "LeakyReLU", "config": {"name": "lr", "alpha": 0.2,
                                                     "trainable": True, "dtype": "float32"}}
    layer = deserialize_keras_object(config, "layers")
    assert layer.negative_slope == 0.2 and "alpha" not in layer.get_config()


@pytest.mark.parametrize("cls, kwargs, arg", [
    (ReLU, {"max_value": -1.0}, "max_value"), (ReLU, {"negative_slope": -0.1}, "negative_slope"),
    (ReLU, {"threshold": None}, "threshold"), (LeakyReLU, {"negative_slope": -1}, "negative_slope"),
    (ELU, {"alpha": "big"}, "alpha")])
def test_bad_arguments(cls, kwargs, arg):
    with pytest.raises(ValueError, match=f"{cls.__name__} .*{arg}.*Received: {arg}="):
        cls(**kwargs)


def test_functional_model_save_and_load(tmp_path):
    inputs = Input((6,))
    hidden = PReLU(alpha_initializer="ones")(Dense(5)(inputs))
    hidden = ELU(0.5)(LeakyReLU(0.1)(ReLU(max_value=3.0)(hidden)))
    model = kestrel.Model(inputs, Softmax()(Dense(3)(hidden)))
    assert model.output_shape == (None, 3)
    model.layers[2].set_weights([np.linspace(-1, 1, 5, dtype=np.float32)])
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = kestrel.saving.load_model(tmp_path / "m.keras")
    assert [type(l).__name__ for l in loaded.layers][2:] == [
        "PReLU", "ReLU", "LeakyReLU", "ELU", "Dense", "Softmax"]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
