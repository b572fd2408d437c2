import doctest

import numpy as np
import pytest
import torch
from torch import nn

from kestrel.layers import Dense, Input
from kestrel.layers.core import masking, torch_module_wrapper
from kestrel.layers.core.masking import Masking
from kestrel.layers.core.torch_module_wrapper import TorchModuleWrapper
from kestrel.layers.normalization import group_normalization, unit_normalization
from kestrel.layers.normalization.group_normalization import GroupNormalization
from kestrel.layers.normalization.unit_normalization import UnitNormalization
from kestrel.models.model import Model
from tests.layer_harness import run_layer_test


# ---------------------------------------------------------------- Masking
def test_masking_harness():
    run_layer_test(Masking, {"mask_value": -1.0}, input_shape=(2, 3, 4),
                   expected_output_shape=(2, 3, 4), expected_num_trainable_weights=0)


def test_masking_zeroes_and_masks_padded_steps():
    x = np.array([[[1, 2], [-1, -1], [0, -1]], [[-1, -1], [-1, -1], [3, 4]]], "float32")
    out = Masking(mask_value=-1)(torch.as_tensor(x))
    keep = np.any(x != -1, axis=-1)
    np.testing.assert_array_equal(out._keras_mask.numpy(), keep)
    np.testing.assert_array_equal(out.numpy(), x * keep[..., None])
    np.testing.assert_array_equal(Masking().compute_mask(torch.as_tensor(x)).numpy(),
                                  np.any(x != 0, axis=-1))


def test_masking_mask_reaches_the_next_layer_in_a_model():
    inputs = Input(shape=(3, 2))
    model = Model(inputs, Dense(4)(Masking()(inputs)))
    out = model(torch.tensor([[[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]]]))
    assert out._keras_mask.tolist() == [[True, False, True]]


def test_masking_errors():
    with pytest.raises(ValueError, match="Masking 'm'.*mask_value"):
        Masking(mask_value="pad", name="m")
    with pytest.raises(ValueError, match="Masking 'm1' expected an input of rank >= 2"):
        Masking(name="m1")(torch.zeros(3))


# ---------------------------------------------------------------- UnitNormalization
def test_unit_normalization_harness():
    run_layer_test(UnitNormalization, {"axis": [1, 2]}, input_shape=(2, 3, 4),
                   expected_output_shape=(2, 3, 4), expected_num_trainable_weights=0)


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]])
def test_unit_normalization_matches_numpy(axis):
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    x[0, 0] = 0.0  # a zero vector stays zero
    dims = tuple(axis) if isinstance(axis, list) else axis
    norm = np.sqrt(np.maximum((x ** 2).sum(axis=dims, keepdims=True), 1e-24))
    out = UnitNormalization(axis=axis)(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(out, x / norm, rtol=1e-5, atol=1e-6)
    assert np.isfinite(out).all()


def test_unit_normalization_errors():
    with pytest.raises(TypeError, match="axis"):
        UnitNormalization(axis="last")
    with pytest.raises(ValueError, match="UnitNormalization 'u'.*axis 3 is out of bounds"):
        UnitNormalization(axis=3, name="u")(torch.zeros(2, 3))


# ---------------------------------------------------------------- GroupNormalization
def np_group_norm(x, gamma, beta, groups, axis=-1, eps=1e-3):
    x = np.moveaxis(x, axis, -1)
    shape = x.shape
    g = x.reshape(shape[0], -1, groups, shape[-1] // groups)
    mean = g.mean(axis=(1, 3), keepdims=True)
    var = g.var(axis=(1, 3), keepdims=True)
    out = ((g - mean) / np.sqrt(var + eps)).reshape(shape) * gamma + beta
    return np.moveaxis(out, -1, axis)


def test_group_normalization_harness():
    run_layer_test(GroupNormalization, {"groups": 2}, input_shape=(2, 3, 4),
                   expected_output_shape=(2, 3, 4), expected_num_trainable_weights=2)
    run_layer_test(GroupNormalization, {"groups": -1, "axis": 1, "center": False},
                   input_shape=(2, 4, 3, 3), expected_output_shape=(2, 4, 3, 3),
                   expected_num_trainable_weights=1)


@pytest.mark.parametrize("groups, axis, shape", [(2, -1, (3, 5, 4, 6)), (3, 1, (2, 6, 7)),
                                                 (-1, -1, (2, 5, 4)), (1, -1, (4, 6))])
def test_group_normalization_matches_numpy(groups, axis, shape):
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=shape).astype("float32")
    layer = GroupNormalization(groups=groups, axis=axis)
    layer(torch.as_tensor(x))
    channels = shape[axis]
    gamma, beta = (rng.normal(size=channels).astype("float32") for _ in range(2))
    layer.set_weights([gamma, beta])
    expected = np_group_norm(x.astype("float64"), gamma, beta,
                             channels if groups == -1 else groups, axis)
    np.testing.assert_allclose(layer(torch.as_tensor(x)).detach().numpy(), expected,
                               rtol=1e-4, atol=1e-5)
    assert layer.get_config()["groups"] == groups


def test_group_normalization_bfloat16_is_accurate():
    x = (torch.randn(2, 8, 8) * 100 + 1000).to(torch.bfloat16)
    layer = GroupNormalization(groups=4, dtype="bfloat16")
    out = layer(x)
    assert out.dtype == torch.bfloat16 and layer.gamma.dtype == torch.bfloat16
    reference = GroupNormalization(groups=4)(x.float())  # float32 on the same values
    torch.testing.assert_close(out.float(), reference, atol=0.03, rtol=0.02)


def test_group_normalization_errors():
    with pytest.raises(ValueError, match="groups must be a positive integer.*groups=0"):
        GroupNormalization(groups=0)
    with pytest.raises(ValueError, match=r"GroupNormalization 'g'.*channels \(6\).*groups \(4\)"):
        GroupNormalization(groups=4, name="g")(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="GroupNormalization 'g0'.*axis 0"):
        GroupNormalization(groups=1, axis=0, name="g0")(torch.zeros(2, 6))
    layer = GroupNormalization(groups=2, name="g1")
    layer(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="GroupNormalization 'g1' expected an input of rank 3"):
        layer(torch.zeros(2, 4))


# ---------------------------------------------------------------- TorchModuleWrapper
def _module():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_torch_module_wrapper_weights_follow_the_module():
    module = _module()
    layer = TorchModuleWrapper(module, name="torch_block")
    assert [w is p for w, p in zip(layer.trainable_weights, module.parameters())] == [True] * 6
    assert [tuple(w.shape) for w in layer.non_trainable_weights] == [(4,), (4,), ()]
    assert layer.count_params() == 3 * 4 + 4 + 4 + 4 + 4 * 2 + 2 + 4 + 4 + 1
    new = [np.full(w.shape, i, dtype=w.dtype) for i, w in enumerate(layer.get_weights())]
    layer.set_weights(new)
    np.testing.assert_array_equal(module[0].bias.detach().numpy(), np.full(4, 1.0))
    np.testing.assert_array_equal(module[1].running_var.numpy(), np.full(4, 7.0))


def test_torch_module_wrapper_call_modes_and_gradients():
    module = _module()
    layer = TorchModuleWrapper(module)
    x = torch.randn(8, 3)
    assert not module.training
    with torch.no_grad():
        torch.testing.assert_close(layer(x), module(x))
    out = layer(x, training=True)
    assert not module.training and int(module[1].num_batches_tracked) == 1
    out.square().mean().backward()
    assert all(p.grad is not None for p in layer.trainable_weights)


def test_torch_module_wrapper_in_functional_model():
    inputs = Input(shape=(3,))
    hidden = TorchModuleWrapper(_module())(inputs)
    assert hidden.shape == (None, 2)
    fixed = TorchModuleWrapper(nn.Linear(3, 5), output_shape=(None, 5))(inputs)
    assert fixed.shape == (None, 5)
    model = Model(inputs, Dense(1)(hidden))
    assert model(torch.randn(4, 3)).shape == (4, 1)
    assert len(model.trainable_weights) == 8


def test_torch_module_wrapper_refuses_configs_and_bad_modules():
    layer = TorchModuleWrapper(nn.Linear(2, 2))
    with pytest.raises(NotImplementedError, match="subclass kestrel.layers.Layer"):
        layer.get_config()
    with pytest.raises(NotImplementedError, match="cannot be serialized"):
        TorchModuleWrapper.from_config({"module": "gASV...", "name": "w"})
    with pytest.raises(ValueError, match="module must be a torch.nn.Module"):
        TorchModuleWrapper(lambda x: x)
    with pytest.raises(ValueError, match="lazy modules"):
        TorchModuleWrapper(nn.LazyLinear(3))


@pytest.mark.parametrize("module", [masking, torch_module_wrapper, group_normalization,
                                    unit_normalization])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0
