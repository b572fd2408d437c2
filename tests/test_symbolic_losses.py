"""Loss functions on KerasTensors (one graph node each), Keras 2's `model.add_loss(tensor)`
on functional models, `Layer.add_loss(loss, inputs=...)`, and in-place arithmetic on
KerasTensors. Values are compared with real Keras 3 (torch backend)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel import ops  # noqa: E402

RNG = np.random.default_rng(11)


def _probs(*shape):
    x = RNG.random(shape).astype("float32") + 0.05
    return x / x.sum(-1, keepdims=True)


ONE_HOT = np.eye(5, dtype="float32")[RNG.integers(0, 5, 6)]
LABELS = RNG.integers(0, 5, (6, 1)).astype("int32")
REAL = RNG.normal(size=(6, 5)).astype("float32")
# name -> (y_true, y_pred, keyword arguments): every function form of keras.losses
CASES = {
    "mean_squared_error": (REAL, REAL[::-1].copy(), {}),
    "mean_absolute_error": (REAL, REAL[::-1].copy(), {}),
    "mean_absolute_percentage_error": (REAL, REAL[::-1].copy(), {}),
    "mean_squared_logarithmic_error": (np.abs(REAL), np.abs(REAL[::-1]).copy(), {}),
    "cosine_similarity": (REAL, REAL[::-1].copy(), {"axis": -1}),
    "huber": (REAL, REAL[::-1].copy(), {"delta": 0.5}),
    "log_cosh": (REAL, REAL[::-1].copy(), {}),
    "hinge": (np.sign(REAL), REAL[::-1].copy(), {}),
    "squared_hinge": (np.sign(REAL), REAL[::-1].copy(), {}),
    "categorical_hinge": (ONE_HOT, REAL, {}),
    "kl_divergence": (_probs(6, 5), _probs(6, 5), {}),
    "poisson": (np.abs(REAL), np.abs(REAL[::-1]).copy(), {}),
    "categorical_crossentropy": (ONE_HOT, _probs(6, 5), {"label_smoothing": 0.1}),
    "sparse_categorical_crossentropy": (LABELS, REAL, {"from_logits": True}),
    "binary_crossentropy": ((REAL > 0).astype("float32"), _probs(6, 5), {}),
    "binary_focal_crossentropy": ((REAL > 0).astype("float32"), REAL, {"from_logits": True}),
    "categorical_focal_crossentropy": (ONE_HOT, _probs(6, 5), {"gamma": 1.5}),
    "categorical_generalized_cross_entropy": (LABELS[:, 0], _probs(6, 5), {"q": 0.5}),
    "dice": (ONE_HOT, _probs(6, 5), {}),
    "tversky": (ONE_HOT, _probs(6, 5), {"alpha": 0.3, "beta": 0.7}),
    "circle": (LABELS[:, 0], REAL, {}),
    "ctc": (RNG.integers(1, 5, (6, 3)).astype("int32"), RNG.normal(size=(6, 7, 5))
            .astype("float32"), {}),
}


def _symbolic(value):
    return kestrel.Input(value.shape[1:], dtype=str(value.dtype))


def _loss_model():
    """One model whose outputs are every loss function applied to its inputs."""
    inputs, outputs = [], []
    for name, (y_true, y_pred, kwargs) in CASES.items():
        t, p = _symbolic(y_true), _symbolic(y_pred)
        inputs += [t, p]
        outputs.append(getattr(kestrel.losses, name)(t, p, **kwargs))
    return kestrel.Model(inputs, outputs)


def _data():
    return [torch.from_numpy(v) for y_true, y_pred, _ in CASES.values() for v in (y_true, y_pred)]


def test_every_loss_function_records_one_node_matching_keras():
    model = _loss_model()
    assert {type(op).__name__ for op in model.operations} == {"InputLayer", "FunctionOp"}
    assert len(model.operations) == 3 * len(CASES)
    for name, out, got in zip(CASES, model.outputs, model(_data())):
        y_true, y_pred, kwargs = CASES[name]
        y_true, y_pred = keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred)
        expected = keras.ops.convert_to_numpy(getattr(keras.losses, name)(y_true, y_pred,
                                                                           **kwargs))
        assert got.shape == expected.shape, name
        assert out.shape[1:] == expected.shape[1:], name  # symbolic shape (batch unknown)
        np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_loss_graph_saves_and_loads(tmp_path):
    model = _loss_model()
    path = tmp_path / "losses.keras"
    model.save(path)
    loaded = kestrel.models.load_model(path)
    for a, b in zip(model(_data()), loaded(_data())):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6)
    # the eager forms are unchanged: same objects in the registry, plain tensors out
    assert kestrel.losses.get("mse") is kestrel.losses.mean_squared_error
    assert isinstance(kestrel.losses.mse(REAL, REAL), torch.Tensor)


def _model_with_added_loss():
    x = kestrel.Input((3,))
    hidden = kestrel.layers.Dense(4, name="hidden")(x)
    y = kestrel.layers.Dense(2, name="out")(hidden)
    side = kestrel.layers.Dense(1, name="side")(hidden)  # only the added loss reads it
    model = kestrel.Model(x, y)
    model.add_loss(ops.mean(side ** 2) * 0.5)
    return model


def test_functional_add_loss_of_a_symbolic_tensor_trains_and_saves(tmp_path):
    """Keras 3 raises NotImplementedError here; Kestrel does what Keras 2 did."""
    kx = keras.Input((3,))
    kmodel = keras.Model(kx, keras.layers.Dense(2)(kx))
    with pytest.raises(NotImplementedError):
        kmodel.add_loss(keras.ops.mean(kmodel.outputs[0]))

    torch.manual_seed(0)
    model = _model_with_added_loss()
    assert [layer.name for layer in model.layers][1:] == ["hidden", "side", "out"]
    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    y = np.zeros((8, 2), "float32")
    model.compile("sgd", "mse")
    pred = model(torch.from_numpy(x))
    (added,) = model.losses
    side = model.get_layer("side")(model.get_layer("hidden")(torch.from_numpy(x)))
    np.testing.assert_allclose(float(added), 0.5 * float(side.pow(2).mean()), rtol=1e-5)
    mse = float(pred.pow(2).mean())
    assert model.evaluate(x, y, verbose=0) == pytest.approx(mse + float(added), rel=1e-5)
    before = model.get_layer("side").kernel.numpy().copy()
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.allclose(before, model.get_layer("side").kernel.numpy())  # trained by it
    path = tmp_path / "added.keras"
    model.save(path)
    loaded = kestrel.models.load_model(path)
    loaded(torch.from_numpy(x))
    model(torch.from_numpy(x))
    np.testing.assert_allclose(float(loaded.losses[0]), float(model.losses[0]), rtol=1e-6)


def test_add_loss_errors_and_keras2_signature():
    x = kestrel.Input((3,))
    y = kestrel.layers.Dense(2)(x)
    model = kestrel.Model(x, y)
    with pytest.raises(ValueError, match="Graph disconnected"):
        model.add_loss(ops.mean(kestrel.Input((2,))))
    model(torch.ones(1, 3))
    assert model.losses == []  # the failed add_loss left nothing behind
    with pytest.raises(ValueError, match="model.add_loss"):
        kestrel.layers.Dense(2).add_loss(ops.mean(y))
    layer = kestrel.layers.Dense(2)
    layer.add_loss([1.0, torch.tensor(2.0)], inputs=x)  # Keras 2 signature
    assert [float(v) for v in layer.losses] == [1.0, 2.0]


@pytest.mark.parametrize("lib", [kestrel, keras])
def test_inplace_arithmetic_on_keras_tensors_records_nodes(lib):
    x = lib.Input((3,))
    z = x
    z -= 1
    z *= 2
    z /= x
    assert z is not x and type(z) is type(x)
    model = lib.Model(x, z)
    assert len(model.operations) == 4
    data = np.array([[1.0, 2.0, 4.0]], "float32")
    out = keras.ops.convert_to_numpy(model(torch.from_numpy(data) if lib is kestrel else data))
    np.testing.assert_allclose(out, (data - 1) * 2 / data)
