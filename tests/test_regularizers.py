import doctest
import json

import numpy as np
import pytest
import torch

from kestrel import config, regularizers
from kestrel.regularizers import regularizers as regularizers_module

W = np.random.default_rng(0).normal(size=(6, 4))


def _np_orthogonal(w, factor, mode):
    vectors = w if mode == "rows" else w.T
    norms = np.sqrt(np.maximum((vectors ** 2).sum(axis=1, keepdims=True), 1e-14))
    unit = vectors / norms
    product = unit @ unit.T
    size = product.shape[0]
    off_diagonal = np.abs(product * (1 - np.eye(size))).sum()
    return factor * 0.5 * off_diagonal / (size * (size - 1) / 2)


@pytest.mark.parametrize("reg,expected", [
    # L1's factor is held in float32, as Keras' (which gives these numbers on float64 weights)
    (regularizers.L1(0.3), np.float32(0.3) * np.abs(W).sum()),
    (regularizers.L2(0.3), 0.3 * (W ** 2).sum()),
    (regularizers.L1L2(l1=0.1, l2=0.2), 0.1 * np.abs(W).sum() + 0.2 * (W ** 2).sum()),
    (regularizers.L1L2(l2=0.2), 0.2 * (W ** 2).sum()),
    (regularizers.L1L2(), 0.0),
    (regularizers.L1(), np.float32(0.01) * np.abs(W).sum()),
    (regularizers.L2(), 0.01 * (W ** 2).sum()),
    (regularizers.OrthogonalRegularizer(0.5), _np_orthogonal(W, 0.5, "rows")),
    (regularizers.OrthogonalRegularizer(0.5, mode="columns"), _np_orthogonal(W, 0.5, "columns")),
])
def test_penalties_match_numpy(reg, expected):
    penalty = reg(torch.tensor(W))
    assert penalty.ndim == 0 and penalty.dtype == torch.float64
    np.testing.assert_allclose(penalty.numpy(), expected, rtol=1e-12)


def test_penalty_keeps_float32_and_is_differentiable():
    w = torch.tensor(W, dtype=torch.float32, requires_grad=True)
    penalty = regularizers.L2(0.5)(w)
    assert penalty.dtype == torch.float32
    penalty.backward()
    np.testing.assert_allclose(w.grad.numpy(), (2 * 0.5 * W).astype(np.float32), rtol=1e-6)


def test_orthogonal_regularizer_known_values():
    reg = regularizers.OrthogonalRegularizer(factor=0.2)
    assert reg(torch.eye(3)).item() == 0.0
    parallel = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    assert reg(parallel).item() == pytest.approx(0.2)
    assert reg(torch.tensor([[1.0, 0.0], [0.0, 0.0]])).isfinite()
    with pytest.raises(ValueError, match="rank 2.*inputs.shape=\\(2, 2, 2\\)"):
        reg(torch.ones(2, 2, 2))


def test_orthogonal_regularizer_uses_config_epsilon():
    reg = regularizers.OrthogonalRegularizer(factor=1.0)
    small = torch.tensor([[1e-3, 0.0], [1e-3, 1e-3]])
    before = reg(small)
    config.set_epsilon(0.1)
    try:
        after = reg(small)
    finally:
        config.set_epsilon(1e-7)
    assert after < before


@pytest.mark.parametrize("make,match", [
    (lambda: regularizers.L1(-0.1), "l1=-0.1"),
    (lambda: regularizers.L2(float("nan")), "l2=nan"),
    (lambda: regularizers.L1L2(l2="0.1"), "l2='0.1'"),
    (lambda: regularizers.OrthogonalRegularizer(factor=-1.0), "factor=-1.0"),
    (lambda: regularizers.OrthogonalRegularizer(mode="diagonal"), "mode='diagonal'"),
])
def test_invalid_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_none_factors_mean_keras_defaults():
    assert regularizers.L1(None).l1 == np.float32(0.01)  # held in float32, as Keras
    assert regularizers.L2(None).l2 == 0.01
    assert regularizers.L1L2(None, None).get_config() == {"l1": 0.0, "l2": 0.0}


@pytest.mark.parametrize("reg", [
    regularizers.L1(0.2), regularizers.L2(0.3), regularizers.L1L2(0.1, 0.4),
    regularizers.OrthogonalRegularizer(0.05, mode="columns"),
])
def test_config_round_trip(reg):
    saved = json.loads(json.dumps(regularizers.serialize(reg)))
    assert saved == {"module": "keras.regularizers", "class_name": type(reg).__name__,
                     "config": reg.get_config(), "registered_name": None}
    restored = regularizers.deserialize(saved)
    assert type(restored) is type(reg) and restored.get_config() == reg.get_config()
    assert torch.equal(restored(torch.tensor(W)), reg(torch.tensor(W)))


@pytest.mark.parametrize("name,cls", [
    ("l1", regularizers.L1), ("l2", regularizers.L2), ("l1_l2", regularizers.L1L2),
    ("orthogonal_regularizer", regularizers.OrthogonalRegularizer),
    ("L2", regularizers.L2),
])
def test_get_by_name(name, cls):
    assert type(regularizers.get(name)) is cls


def test_get_accepts_none_classes_instances_and_callables():
    assert regularizers.get(None) is None
    assert type(regularizers.get(regularizers.L1)) is regularizers.L1
    reg = regularizers.L2(0.5)
    assert regularizers.get(reg) is reg
    assert regularizers.get(torch.sum) is torch.sum
    with pytest.raises(ValueError, match="Unknown regularizer 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="identifier=0.5"):
        regularizers.get(0.5)


def test_base_class_has_no_config():
    assert regularizers.Regularizer()(torch.ones(3)).item() == 0.0
    with pytest.raises(NotImplementedError, match="Regularizer"):
        regularizers.Regularizer().get_config()


def test_docstring_examples():
    result = doctest.testmod(regularizers_module)
    assert result.attempted > 0 and result.failed == 0
