import doctest
import json

import numpy as np
import pytest
import torch

from kestrel import config, constraints
from kestrel.constraints import constraints as constraints_module

W = np.random.default_rng(0).normal(size=(3, 3, 4, 5)) * 2.0
EPS = 1e-7


def _np_norms(w, axis):
    return np.sqrt((w ** 2).sum(axis=axis, keepdims=True))


def _np_max_norm(w, max_value, axis):
    norms = _np_norms(w, axis)
    return w * np.clip(norms, 0, max_value) / (EPS + norms)


def _np_min_max_norm(w, min_value, max_value, rate, axis):
    norms = _np_norms(w, axis)
    desired = rate * np.clip(norms, min_value, max_value) + (1 - rate) * norms
    return w * desired / (EPS + norms)


AXES = [0, 1, -1, (0, 1, 2), [0, 1, 2], None]


@pytest.mark.parametrize("axis", AXES)
def test_max_norm(axis):
    out = constraints.MaxNorm(max_value=3.0, axis=axis)(torch.tensor(W))
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    np.testing.assert_allclose(out.numpy(), _np_max_norm(W, 3.0, np_axis), rtol=1e-12)
    assert (_np_norms(out.numpy(), np_axis) <= 3.0 + 1e-9).all()


@pytest.mark.parametrize("axis", AXES)
def test_unit_norm(axis):
    out = constraints.UnitNorm(axis=axis)(torch.tensor(W))
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    np.testing.assert_allclose(out.numpy(), W / (EPS + _np_norms(W, np_axis)), rtol=1e-12)
    np.testing.assert_allclose(_np_norms(out.numpy(), np_axis), 1.0, rtol=1e-6)


@pytest.mark.parametrize("rate", [1.0, 0.25])
@pytest.mark.parametrize("axis", [0, (0, 1, 2)])
def test_min_max_norm(rate, axis):
    out = constraints.MinMaxNorm(min_value=4.0, max_value=5.0, rate=rate, axis=axis)(
        torch.tensor(W))
    np.testing.assert_allclose(out.numpy(), _np_min_max_norm(W, 4.0, 5.0, rate, axis),
                               rtol=1e-12)


def test_non_neg():
    out = constraints.NonNeg()(torch.tensor(W))
    np.testing.assert_array_equal(out.numpy(), np.maximum(W, 0))


def test_keras_defaults():
    assert constraints.MaxNorm().get_config() == {"max_value": 2, "axis": 0}
    assert constraints.UnitNorm().get_config() == {"axis": 0}
    assert constraints.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0,
                                                     "rate": 1.0, "axis": 0}
    assert constraints.NonNeg().get_config() == {}
    dense_kernel = torch.tensor([[3.0, 0.0], [4.0, 1.0]])  # (in, out): unit 0 has norm 5
    np.testing.assert_allclose(constraints.MaxNorm()(dense_kernel)[:, 0].numpy(),
                               [1.2, 1.6], rtol=1e-6)


def test_epsilon_comes_from_config():
    w = torch.tensor([[3.0], [4.0]], dtype=torch.float64)
    config.set_epsilon(5.0)
    try:
        out = constraints.UnitNorm()(w)
    finally:
        config.set_epsilon(EPS)
    np.testing.assert_allclose(out.numpy(), [[0.3], [0.4]])


def test_keeps_dtype_and_gradients():
    w = torch.tensor(W, dtype=torch.float32, requires_grad=True)
    out = constraints.MaxNorm(1.0)(w)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert w.grad is not None


@pytest.mark.parametrize("con", [
    constraints.MaxNorm(3, axis=[0, 1, 2]), constraints.NonNeg(), constraints.UnitNorm(axis=1),
    constraints.MinMaxNorm(0.5, 2.0, rate=0.5, axis=-1),
])
def test_config_round_trip(con):
    saved = json.loads(json.dumps(constraints.serialize(con)))
    assert saved == {"module": "keras.constraints", "class_name": type(con).__name__,
                     "config": json.loads(json.dumps(con.get_config())),
                     "registered_name": None}
    restored = constraints.deserialize(saved)
    assert type(restored) is type(con)
    assert torch.equal(restored(torch.tensor(W)), con(torch.tensor(W)))


@pytest.mark.parametrize("name,cls", [
    ("max_norm", constraints.MaxNorm), ("non_neg", constraints.NonNeg),
    ("unit_norm", constraints.UnitNorm), ("min_max_norm", constraints.MinMaxNorm),
    ("MaxNorm", constraints.MaxNorm), ("maxnorm", constraints.MaxNorm),
    ("nonneg", constraints.NonNeg), ("unitnorm", constraints.UnitNorm),
])
def test_get_by_name(name, cls):
    assert type(constraints.get(name)) is cls


def test_get_accepts_none_classes_instances_and_callables():
    assert constraints.get(None) is None
    assert type(constraints.get(constraints.UnitNorm)) is constraints.UnitNorm
    con = constraints.MaxNorm(4)
    assert constraints.get(con) is con
    assert constraints.get(torch.abs) is torch.abs
    with pytest.raises(ValueError, match="Unknown constraint 'max_nrom'"):
        constraints.get("max_nrom")
    with pytest.raises(ValueError, match="identifier=2"):
        constraints.get(2)


def test_base_constraint_is_identity():
    w = torch.tensor(W)
    assert constraints.Constraint()(w) is w
    assert constraints.get({"class_name": "Constraint", "config": {}}).get_config() == {}


def test_docstring_examples():
    result = doctest.testmod(constraints_module)
    assert result.attempted > 0 and result.failed == 0
