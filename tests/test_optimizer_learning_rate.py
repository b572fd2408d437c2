"""`optimizer.learning_rate` reads as a float and assigns like Keras' variable (and Keras 2's `lr`)."""
import os

import numpy as np
import pytest
import torch

import kestrel
from kestrel import backend as K

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")


def test_learning_rate_assign_matches_keras_and_steps_use_it():
    params = [torch.nn.Parameter(torch.ones(3))]
    ours = kestrel.optimizers.SGD(0.1)
    theirs = keras.optimizers.SGD(0.1)
    ours.build(params)
    ours.learning_rate.assign(0.5)
    theirs.learning_rate.assign(0.5)
    assert float(ours.learning_rate) == pytest.approx(float(theirs.learning_rate.numpy()))
    assert ours.learning_rate.numpy().dtype == np.float32
    ours.apply([torch.ones(3)], params)
    np.testing.assert_allclose(params[0].detach().numpy(), [0.5, 0.5, 0.5])


def test_keras2_lr_alias_and_backend_set_value():
    optimizer = kestrel.optimizers.Adam(1e-3)
    K.set_value(optimizer.lr, 0.25)
    assert K.get_value(optimizer.learning_rate) == pytest.approx(0.25)
    optimizer.lr = 0.125
    assert optimizer.get_config()["learning_rate"] == pytest.approx(0.125)
    assert optimizer.learning_rate * 2 == pytest.approx(0.25)


def test_schedule_learning_rate_refuses_assign():
    schedule = kestrel.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    optimizer = kestrel.optimizers.SGD(schedule)
    assert float(optimizer.learning_rate) == pytest.approx(0.1)
    with pytest.raises(TypeError, match="not settable"):
        optimizer.learning_rate.assign(0.2)


def _iterations_after_fit(lib):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), batch_size=4, epochs=2, verbose=0)
    iterations = model.optimizer.iterations
    read = {"int": int(iterations), "numpy": iterations.numpy(), "name": iterations.name,
            "dtype": str(iterations.dtype), "shape": tuple(iterations.shape),
            "float": float(lib.ops.convert_to_numpy(lib.ops.cast(iterations, "float32")))}
    iterations.assign(10)
    read["assigned"] = int(model.optimizer.iterations)
    return read


def test_iterations_reads_and_assigns_as_keras_variable():
    ours, theirs = _iterations_after_fit(kestrel), _iterations_after_fit(keras)
    assert ours.pop("numpy").dtype == theirs.pop("numpy").dtype == np.int32
    assert ours == theirs == {"int": 4, "name": "iteration", "dtype": "int32", "shape": (),
                              "float": 4.0, "assigned": 10}
    assert K.get_value(kestrel.optimizers.Adam().iterations) == 0
