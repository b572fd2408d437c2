"""Layers' own-variable saving hooks (in files written by Keras 3 too) and Variable attributes."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402

OFFSETS = np.array([0.5, -1.0, 2.0], "float32")


def _scaler_class(lib):
    """A custom layer that saves a NumPy array that is not a weight, next to its weight."""

    class Scaler(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.offsets = np.zeros(3, "float32")

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, x):
            return x * self.w + lib.ops.convert_to_tensor(self.offsets)

        def save_own_variables(self, store):
            super().save_own_variables(store)
            store["offsets"] = self.offsets

        def load_own_variables(self, store):
            self.w.assign(store["0"])
            self.offsets = np.array(store["offsets"])

    return Scaler


def _model(lib):
    return lib.Sequential([lib.Input((3,)), _scaler_class(lib)(name="scaler")])


@pytest.mark.parametrize("writer", [keras, kestrel])
def test_custom_state_round_trips_between_keras_and_kestrel(tmp_path, writer):
    reader = kestrel if writer is keras else keras
    saved = _model(writer)
    saved.layers[0].offsets = OFFSETS.copy()
    saved.set_weights([np.array([1.0, 2.0, 3.0], "float32")])
    path = str(tmp_path / "m.weights.h5")
    saved.save_weights(path)
    loaded = _model(reader)
    loaded.load_weights(path)
    np.testing.assert_array_equal(loaded.layers[0].offsets, OFFSETS)
    np.testing.assert_array_equal(loaded.get_weights()[0], [1.0, 2.0, 3.0])
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(np.asarray(loaded(x).detach().cpu()),
                               np.asarray(saved(x).detach().cpu()), rtol=1e-6)


def test_custom_state_in_a_keras_file(tmp_path):
    model = _model(kestrel)
    model.layers[0].offsets = OFFSETS.copy()
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = kestrel.models.load_model(path, custom_objects={"Scaler": type(model.layers[0])})
    np.testing.assert_array_equal(loaded.layers[0].offsets, OFFSETS)


def test_default_hooks_use_keras_order_and_errors():
    layer = kestrel.layers.BatchNormalization()
    layer.build((None, 2))
    store = {}
    layer.save_own_variables(store)
    assert sorted(store) == ["0", "1", "2", "3"]
    for value, weight in zip([store[k] for k in "0123"], layer.get_weights()):
        np.testing.assert_array_equal(value.numpy(), weight)
    other = kestrel.layers.BatchNormalization()
    other.build((None, 2))
    other.load_own_variables({k: np.full(2, float(k), "float32") for k in "0123"})
    assert [w.tolist() for w in other.get_weights()] == [[i, i] for i in range(4)]
    with pytest.raises(ValueError, match=r"expected 4 variables, but received 1 variables "
                       r"during loading\. Expected: \['gamma', 'beta', 'moving_mean', "):
        other.load_own_variables({"0": np.zeros(2)})
    with pytest.raises(ValueError, match="was never built"):
        kestrel.layers.Dense(2).load_own_variables({"0": np.zeros(2)})


def test_variable_attributes_as_keras():
    ours = kestrel.Variable(np.zeros(2, "float32"), name="v")
    theirs = keras.Variable(np.zeros(2, "float32"), name="v")
    for attr in ("constraint", "regularizer", "overwrite_with_gradient", "synchronization"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    ours.regularizer = kestrel.regularizers.L2(0.1)
    ours.constraint = kestrel.constraints.NonNeg()
    ours.overwrite_with_gradient = True
    assert ours.overwrite_with_gradient and float(ours.regularizer(torch.ones(2))) > 0
    assert isinstance(ours.constraint, kestrel.constraints.NonNeg)
    for attr, value, error in (("regularizer", 3, ValueError), ("constraint", "x", ValueError),
                               ("overwrite_with_gradient", 1, TypeError)):
        with pytest.raises(error):
            setattr(theirs, attr, value)
        with pytest.raises(error, match=f"{attr}"):
            setattr(ours, attr, value)
    assert kestrel.Variable(np.zeros(1), synchronization="on_read").synchronization == "on_read"
    assert kestrel.Variable(np.zeros(1), synchronization=None).synchronization == "none"
    with pytest.raises(ValueError, match="Received: synchronization='sometimes'"):
        kestrel.Variable(np.zeros(1), synchronization="sometimes")
