import doctest
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from kestrel import activations
from kestrel.activations import activations as activations_module

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"
X = np.linspace(-7.0, 7.0, 141).reshape(3, 47)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _np_softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_relu6(x):
    return np.clip(x, 0.0, 6.0)


REFERENCES = {
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "relu6": _np_relu6,
    "sigmoid": _np_sigmoid,
    "log_sigmoid": lambda x: -_np_softplus(-x),
    "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "celu": lambda x: np.maximum(x, 0) + np.minimum(0, np.expm1(x)),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    "softplus": _np_softplus,
    "softsign": lambda x: x / (np.abs(x) + 1),
    "silu": lambda x: x * _np_sigmoid(x),
    "swish": lambda x: x * _np_sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
    "exponential": np.exp,
    "linear": lambda x: x,
    "hard_sigmoid": lambda x: _np_relu6(x + 3) / 6,
    "hard_silu": lambda x: x * _np_relu6(x + 3) / 6,
    "hard_swish": lambda x: x * _np_relu6(x + 3) / 6,
    "hard_tanh": lambda x: np.clip(x, -1, 1),
    "mish": lambda x: x * np.tanh(_np_softplus(x)),
    "softmax": lambda x: _np_softmax(x, -1),
    "log_softmax": lambda x: np.log(_np_softmax(x, -1)),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0),
    "soft_shrink": lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "squareplus": lambda x: (x + np.sqrt(x * x + 4)) / 2,
    "sparse_plus": lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, (x + 1) ** 2 / 4)),
    "sparse_sigmoid": lambda x: np.clip((x + 1) / 2, 0, 1),
    "glu": lambda x: x[..., :23] * _np_sigmoid(x[..., 23:46]),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_numpy_reference(name):
    x = X[..., :46] if name == "glu" else X
    out = activations.get(name)(torch.tensor(x))
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), REFERENCES[name](x), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kwargs", [
    {"negative_slope": 0.1}, {"max_value": 6.0}, {"max_value": 2.5},
    {"threshold": 1.5}, {"threshold": -1.0, "max_value": 3.0},
    {"negative_slope": 0.3, "max_value": 4.0}, {"negative_slope": 0.3, "threshold": 2.0},
    {"negative_slope": 0.2, "max_value": 5.0, "threshold": 1.0},
])
def test_relu_options_follow_keras_formula(kwargs):
    slope = kwargs.get("negative_slope", 0.0)
    max_value, threshold = kwargs.get("max_value"), kwargs.get("threshold", 0.0)
    expected = np.where(X > threshold, X, 0.0) if threshold else np.maximum(X, 0)
    if max_value is not None:
        expected = np.clip(expected, 0, max_value)
    expected = expected - slope * np.maximum(threshold - X, 0)
    out = activations.relu(torch.tensor(X), **kwargs)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


def test_keyword_defaults_and_options():
    x = torch.tensor(X)
    np.testing.assert_allclose(activations.leaky_relu(x, negative_slope=0.5).numpy(),
                               np.where(X > 0, X, 0.5 * X))
    np.testing.assert_allclose(activations.elu(x, alpha=2.0).numpy(),
                               np.where(X > 0, X, 2.0 * np.expm1(X)), rtol=1e-12)
    tanh_gelu = 0.5 * X * (1 + np.tanh(math.sqrt(2 / math.pi) * (X + 0.044715 * X ** 3)))
    np.testing.assert_allclose(activations.gelu(x, approximate=True).numpy(), tanh_gelu,
                               rtol=1e-6, atol=1e-9)
    assert not torch.allclose(activations.gelu(x), activations.gelu(x, approximate=True))
    np.testing.assert_allclose(activations.threshold(x, 1.0, -3.0).numpy(),
                               np.where(X > 1.0, X, -3.0))


def test_hard_sigmoid_uses_keras3_slope():
    out = activations.hard_sigmoid(torch.tensor([-3.0, 0.0, 1.0, 3.0]))
    np.testing.assert_allclose(out.numpy(), [0.0, 0.5, 4.0 / 6.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("axis", [0, 1, -1, (0, 1)])
def test_softmax_and_log_softmax_axes(axis):
    x = torch.tensor(X)
    np.testing.assert_allclose(activations.softmax(x, axis=axis).numpy(),
                               _np_softmax(X, axis), rtol=1e-10)
    np.testing.assert_allclose(activations.log_softmax(x, axis=axis).numpy(),
                               np.log(_np_softmax(X, axis)), rtol=1e-10, atol=1e-12)


def _np_sparsemax(z):
    z_sorted = np.sort(z)[::-1]
    cumsum = np.cumsum(z_sorted)
    k = np.arange(1, len(z) + 1)
    k_z = k[1 + k * z_sorted > cumsum][-1]
    tau = (cumsum[k_z - 1] - 1) / k_z
    return np.maximum(z - tau, 0)


@pytest.mark.parametrize("axis", [0, -1])
def test_sparsemax_projects_onto_simplex(axis):
    x = np.random.default_rng(0).normal(size=(4, 6))
    out = activations.sparsemax(torch.tensor(x), axis=axis).numpy()
    expected = np.apply_along_axis(_np_sparsemax, axis, x)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_allclose(out.sum(axis=axis), 1.0)


def test_get_resolves_none_names_dicts_and_callables():
    assert activations.get(None) is activations.linear
    assert activations.get("swish") is activations.silu
    assert activations.get("hard_swish") is activations.hard_silu
    config = {"module": "builtins", "class_name": "function", "config": "tanh",
              "registered_name": "function"}
    assert activations.get(config) is activations.tanh
    assert activations.get(torch.relu) is torch.relu


def test_get_rejects_unknown_names_and_non_callables():
    with pytest.raises(ValueError, match="Unknown activation 'foo'"):
        activations.get("foo")
    with pytest.raises(ValueError, match="identifier=3"):
        activations.get(3)


@pytest.mark.parametrize("name", sorted(set(activations.__all__)
                                        - {"get", "serialize", "deserialize"}))
def test_builtins_serialize_to_plain_names_and_back(name):
    fn = getattr(activations, name)
    saved = activations.serialize(fn)
    assert saved == fn.__name__
    assert activations.deserialize(saved) is fn
    assert activations.get(json.loads(json.dumps(saved))) is fn


def test_aliases_serialize_to_their_canonical_name():
    assert activations.serialize(activations.swish) == "silu"
    assert activations.serialize(activations.hard_swish) == "hard_silu"


def test_custom_function_round_trips_through_custom_objects():
    def scaled_tanh(x):
        return 2 * torch.tanh(x)

    saved = activations.serialize(scaled_tanh)
    assert activations.deserialize(saved, custom_objects={"scaled_tanh": scaled_tanh}) \
        is scaled_tanh
    with pytest.raises(ValueError, match="scaled_tanh"):
        activations.deserialize(saved)


def test_activation_names_in_keras_fixtures_resolve():
    files = sorted(FIXTURES.glob("*.json"))
    assert files
    pattern = re.compile(r'"(?:recurrent_)?activation": "(\w+)"')
    names = {name for path in files for name in pattern.findall(path.read_text())}
    assert {"relu", "softmax", "linear"} <= names
    for name in names:
        assert activations.serialize(activations.get(name)) == name


def test_docstring_examples():
    result = doctest.testmod(activations_module)
    assert result.attempted > 0 and result.failed == 0
