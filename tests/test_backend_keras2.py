"""Keras 2's `K` functions: Keras 2 semantics (NumPy references), Keras 3 ops where they agree,
and symbolic use inside functional models."""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import backend as K
from tests.ops_harness import keras

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 3)).astype("float32")
Y = RNG.normal(size=(3, 5)).astype("float32")
P = RNG.uniform(0.05, 0.95, size=(4, 3)).astype("float32")
T = (RNG.uniform(size=(4, 3)) > 0.5).astype("float32")


def close(got, expected, tol=1e-5):
    np.testing.assert_allclose(K.eval(got), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name, args, kwargs", [
    ("mean", (X,), {"axis": 1}), ("sum", (X,), {"axis": 0, "keepdims": True}),
    ("max", (X,), {"axis": -1}), ("min", (X,), {}), ("std", (X,), {"axis": 0}),
    ("var", (X,), {}), ("prod", (X,), {"axis": 1}), ("square", (X,), {}),
    ("abs", (X,), {}), ("exp", (X,), {}), ("argmax", (X,), {"axis": -1}),
    ("argmin", (X,), {"axis": 0}), ("maximum", (X, 0.0), {}), ("equal", (X, X), {}),
    ("cumsum", (X,), {"axis": 1}), ("transpose", (X,), {}), ("tanh", (X,), {}),
    ("sigmoid", (X,), {}), ("softplus", (X,), {}), ("expand_dims", (X,), {"axis": 1}),
    ("one_hot", (np.array([0, 2, 1]), 3), {}), ("stack", ([X, X],), {"axis": 1}),
])
def test_functions_shared_with_keras3_ops(name, args, kwargs):
    expected = getattr(keras().ops, {"abs": "absolute"}.get(name, name))(*args, **kwargs)
    got = getattr(K, name)(*args, **kwargs)
    np.testing.assert_allclose(K.eval(got), K.eval(expected), rtol=1e-6)


def test_keras2_specific_semantics():
    close(K.sqrt(np.array([-1.0, 4.0], "float32")), [0.0, 2.0])
    close(K.clip(X, 0.5, 0.1), np.clip(X, 0.5, 0.5))
    close(K.concatenate([X, X]), np.concatenate([X, X], axis=-1))
    close(K.batch_flatten(np.ones((2, 3, 4), "float32")), np.ones((2, 12)))
    close(K.flatten(X), X.reshape(-1))
    close(K.permute_dimensions(np.ones((2, 3, 4), "float32"), (2, 0, 1)), np.ones((4, 2, 3)))
    close(K.repeat_elements(X, 2, axis=1), np.repeat(X, 2, axis=1))
    close(K.repeat(X, 2), np.stack([X, X], axis=1))
    close(K.switch(X > 0, X, -X), np.abs(X))
    close(K.gather(X, np.array([2, 0])), X[[2, 0]])
    close(K.hard_sigmoid(X), np.clip(0.2 * X + 0.5, 0, 1))
    close(K.relu(X, alpha=0.1, max_value=0.5), np.minimum(np.where(X > 0, X, 0.1 * X), 0.5))
    close(K.l2_normalize(X, axis=1), X / np.linalg.norm(X, axis=1, keepdims=True))
    close(K.softmax(X), np.exp(X) / np.exp(X).sum(-1, keepdims=True))
    close(K.pow(P, 2), P ** 2)


def test_dot_and_batch_dot_follow_keras2_shapes():
    close(K.dot(X, Y), X @ Y)
    a = RNG.normal(size=(2, 3, 4)).astype("float32")
    b = RNG.normal(size=(4, 5)).astype("float32")
    close(K.dot(a, b), np.tensordot(a, b, axes=[[2], [0]]))
    x = RNG.normal(size=(32, 20)).astype("float32")
    y = RNG.normal(size=(32, 30, 20)).astype("float32")
    out = K.batch_dot(x, y, axes=(1, 2))
    assert K.int_shape(out) == (32, 30)  # Keras 2's documented example
    close(out, np.einsum("bi,bji->bj", x, y), tol=1e-4)
    close(K.batch_dot(X, X, axes=1), (X * X).sum(1, keepdims=True))


def test_crossentropies_match_keras_losses():
    expected = -(T * np.log(P) + (1 - T) * np.log(1 - P))
    close(K.binary_crossentropy(T, P), expected, tol=1e-4)
    probs = P / P.sum(-1, keepdims=True)
    onehot = np.eye(3, dtype="float32")[[0, 2, 1, 1]]
    close(K.categorical_crossentropy(onehot, probs), -(onehot * np.log(probs)).sum(-1), 1e-4)
    close(K.sparse_categorical_crossentropy(np.array([0, 2, 1, 1]), probs),
          -(onehot * np.log(probs)).sum(-1), 1e-4)


def test_variables_and_values():
    v = K.variable(np.ones((2, 2)), name="v")
    assert K.int_shape(v) == (2, 2) and K.dtype(v) == "float32" and K.ndim(v) == 2
    K.set_value(v, np.full((2, 2), 3.0))
    np.testing.assert_array_equal(K.get_value(v), np.full((2, 2), 3.0))
    K.update_add(v, np.ones((2, 2), "float32"))
    K.batch_set_value([(v, np.zeros((2, 2)))])
    assert K.batch_get_value([v])[0].sum() == 0
    assert K.count_params(K.zeros((3, 4))) == 12
    np.testing.assert_array_equal(K.eval(K.eye(2)), np.eye(2))
    assert K.int_shape(K.placeholder(shape=(None, 3))) == (None, 3)  # an Input, as Keras 2


def test_config_and_learning_phase():
    assert K.backend() == "torch" and K.floatx() == "float32" and K.epsilon() == 1e-7
    assert K.learning_phase() == 0
    K.set_learning_phase(1)
    assert K.learning_phase() == 1
    K.set_learning_phase(0)


def test_symbolic_use_in_a_functional_model_round_trips(tmp_path):
    x = kestrel.Input((4, 3))
    y = K.concatenate([K.mean(x, axis=1), K.l2_normalize(K.max(x, axis=1), axis=-1)])
    model = kestrel.Model(x, y)
    data = torch.randn(2, 4, 3)
    model.save(tmp_path / "k.keras")
    restored = kestrel.models.load_model(tmp_path / "k.keras")
    torch.testing.assert_close(restored(data), model(data))
    assert K.int_shape(y) == (None, 6)


def test_function_and_gradients():
    x = kestrel.Input((3,))
    hidden = kestrel.layers.Dense(2)
    out = hidden(x)
    fn = K.function([x], [out])
    np.testing.assert_allclose(fn([X[:, :3]])[0], hidden(torch.from_numpy(X)).detach().numpy(),
                               rtol=1e-6)
    w = K.variable(np.ones(3))
    loss = K.sum(K.square(w * 2.0))
    (grad,) = K.gradients(loss, [w])
    np.testing.assert_allclose(grad.numpy(), 8.0 * np.ones(3))
