import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kestrel.layers import Dense, Input
from kestrel.layers.merging import Add
from kestrel.layers.normalization import BatchNormalization, LayerNormalization
from tests.layer_harness import run_layer_test

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"


def _fixture_layer(model_name, layer_name):
    layers = json.loads((FIXTURES / f"{model_name}.json").read_text())["config"]["layers"]
    return next(l for l in layers if l["config"]["name"] == layer_name)


def _fixture_vars(model_name, group):
    with h5py.File(FIXTURES / f"{model_name}.weights.h5", "r") as f:
        vars_ = f[f"layers/{group}/vars"]
        return [vars_[str(i)][()] for i in range(len(vars_))]


def _bn_ref(x, gamma, beta, mean, var, axis, eps=1e-3):
    shape = [1] * x.ndim
    shape[axis] = -1
    r = lambda v: np.reshape(v, shape)  # noqa: E731
    return (x - r(mean)) / np.sqrt(r(var) + eps) * r(gamma) + r(beta)


def _randomize(layer, rng):
    c = layer.get_weights()[0].shape[0]
    weights = [rng.uniform(0.5, 1.5, c), rng.normal(size=c), rng.normal(size=c),
               rng.uniform(0.5, 2.0, c)]
    layer.set_weights([w.astype("float32") for w in weights])
    return weights


# ---------------------------------------------------------------- BatchNormalization
def test_batch_norm_harness():
    run_layer_test(BatchNormalization, {}, input_shape=(4, 3), expected_output_shape=(4, 3),
                   expected_num_trainable_weights=2, expected_num_non_trainable_weights=2)
    run_layer_test(BatchNormalization, {"axis": 1, "momentum": 0.9}, input_shape=(2, 3, 4, 4),
                   expected_output_shape=(2, 3, 4, 4))


@pytest.mark.parametrize("shape,axis", [((6, 3), -1), ((4, 5, 3), -1), ((2, 4, 4, 3), -1),
                                        ((2, 2, 3, 2, 3), -1), ((2, 3, 4, 4), 1),
                                        ((2, 4, 3, 5), 2)])
def test_batch_norm_inference_matches_numpy(shape, axis):
    rng = np.random.default_rng(0)
    layer = BatchNormalization(axis=axis)
    x = rng.normal(size=shape).astype("float32")
    layer(torch.as_tensor(x))
    gamma, beta, mean, var = _randomize(layer, rng)
    out = layer(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(out, _bn_ref(x, gamma, beta, mean, var, axis), rtol=1e-5,
                               atol=1e-5)
    assert layer._weight_order == ["gamma", "beta", "moving_mean", "moving_variance"]


@pytest.mark.parametrize("shape,axis", [((8, 3), -1), ((4, 5, 5, 3), -1), ((4, 3, 5, 5), 1),
                                        ((4, 5, 3, 2), 2)])
def test_batch_norm_training_uses_batch_stats_and_updates_moving(shape, axis):
    rng = np.random.default_rng(1)
    layer = BatchNormalization(axis=axis, momentum=0.9)
    xs = [rng.normal(2.0, 3.0, size=shape).astype("float32") for _ in range(2)]
    layer(torch.as_tensor(xs[0]))
    gamma, beta, mean, var = _randomize(layer, rng)
    reduce = tuple(d for d in range(len(shape)) if d != axis % len(shape))
    for x in xs:
        out = layer(torch.as_tensor(x), training=True).detach().numpy()
        batch_mean, batch_var = x.mean(reduce), x.var(reduce)  # biased, as Keras
        np.testing.assert_allclose(out, _bn_ref(x, gamma, beta, batch_mean, batch_var, axis),
                                   rtol=1e-4, atol=1e-4)
        mean = mean * 0.9 + batch_mean * 0.1
        var = var * 0.9 + batch_var * 0.1
    np.testing.assert_allclose(layer.get_weights()[2], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.get_weights()[3], var, rtol=1e-5, atol=1e-6)


def test_batch_norm_keras_momentum_default_and_train_mode():
    layer = BatchNormalization()
    x = torch.randn(16, 4) * 2 + 5
    layer(x)
    layer.train()  # what fit() does; training=None follows the module mode
    layer(x)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.01 * x.mean(0).numpy(), rtol=1e-5)
    layer.eval()
    before = layer.moving_mean.clone()
    layer(x)
    assert torch.equal(layer.moving_mean, before)


def test_batch_norm_training_gradient_matches_reference():
    x = torch.randn(6, 5, 3, dtype=torch.float64, requires_grad=True)
    layer = BatchNormalization(dtype="float64")
    layer(x)
    layer.set_weights([np.array([0.5, 1.0, 2.0]), np.array([0.1, 0.0, -0.1]),
                       np.zeros(3), np.ones(3)])
    (layer(x, training=True) ** 3).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    var, mean = torch.var_mean(x, (0, 1), correction=0)
    ref = (x - mean) / torch.sqrt(var + 1e-3) * torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    ((ref + torch.tensor([0.1, 0.0, -0.1], dtype=torch.float64)) ** 3).sum().backward()
    torch.testing.assert_close(grad, x.grad)


def test_frozen_batch_norm_runs_in_inference_mode():
    rng = np.random.default_rng(2)
    layer = BatchNormalization()
    x = rng.normal(size=(8, 3)).astype("float32")
    layer(torch.as_tensor(x))
    gamma, beta, mean, var = _randomize(layer, rng)
    layer.trainable = False
    out = layer(torch.as_tensor(x), training=True).detach().numpy()
    np.testing.assert_allclose(out, _bn_ref(x, gamma, beta, mean, var, -1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.get_weights()[2], mean, rtol=1e-6)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4


def test_batch_norm_masked_training_statistics():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 2)).astype("float32")
    mask = rng.random((3, 5)) > 0.4
    layer = BatchNormalization(momentum=0.5)
    out = layer(torch.as_tensor(x), training=True, mask=torch.as_tensor(mask)).detach().numpy()
    w = mask[..., None].astype("float32")
    count = w.sum((0, 1)) + 1e-7
    mean = (x * w).sum((0, 1)) / count
    var = (((x - mean) * w) ** 2).sum((0, 1)) / count
    np.testing.assert_allclose(out, _bn_ref(x, np.ones(2), np.zeros(2), mean, var, -1),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.get_weights()[2], 0.5 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.get_weights()[3], 0.5 + 0.5 * var, rtol=1e-5)
    with pytest.raises(ValueError, match="one dimension less"):
        layer(torch.as_tensor(x), training=True, mask=torch.ones(3, 5, 2, dtype=torch.bool))


def test_batch_norm_without_center_and_scale():
    layer = BatchNormalization(center=False, scale=False)
    x = torch.randn(10, 4)
    out = layer(x, training=True)
    assert len(layer.weights) == 2 and layer.trainable_weights == []
    expected = (x - x.mean(0)) / torch.sqrt(x.var(0, correction=0) + 1e-3)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_batch_norm_configs_and_errors():
    config = _fixture_layer("seq_cnn", "batch_normalization")["config"]
    layer = BatchNormalization.from_config(config)
    assert (layer.axis, layer.momentum, layer.epsilon) == (-1, 0.99, 0.001)
    out_config = layer.get_config()
    assert out_config["synchronized"] is False
    assert out_config["moving_variance_initializer"]["class_name"] == "Ones"
    assert BatchNormalization.from_config({"axis": [3], "name": "bn_k2"}).axis == 3
    with pytest.raises(ValueError, match="synchronized"):
        BatchNormalization(synchronized=True)
    with pytest.raises(ValueError, match="axis must be an integer"):
        BatchNormalization(axis=[1, 2])
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        BatchNormalization(axis=3)(torch.ones(2, 3))
    layer = BatchNormalization(name="bn")
    layer(torch.ones(2, 3))
    with pytest.raises(ValueError, match="BatchNormalization 'bn' expected .* 3, got 4"):
        layer(Input((4,)))


def test_batch_norm_matches_keras_fixture():
    bn = BatchNormalization.from_config(_fixture_layer("seq_cnn", "batch_normalization")["config"])
    bn.build_from_config({"input_shape": [None, 6, 6, 16]})
    bn.set_weights(_fixture_vars("seq_cnn", "batch_normalization"))
    dense = Dense.from_config(_fixture_layer("seq_cnn", "dense")["config"])
    dense.build_from_config({"input_shape": [None, 16]})
    dense.set_weights(_fixture_vars("seq_cnn", "dense"))
    k1, b1 = (torch.as_tensor(v) for v in _fixture_vars("seq_cnn", "conv2d"))
    k2, b2 = (torch.as_tensor(v) for v in _fixture_vars("seq_cnn", "conv2d_1"))
    x = torch.as_tensor(np.load(FIXTURES / "seq_cnn.x.npy")).permute(0, 3, 1, 2)
    h = F.max_pool2d(F.relu(F.conv2d(x, k1.permute(3, 2, 0, 1), b1, padding=1)), 2)
    h = F.conv2d(h, k2.permute(3, 2, 0, 1), b2).permute(0, 2, 3, 1)  # channels-last
    y = dense(bn(h).mean((1, 2)))
    np.testing.assert_allclose(y.detach().numpy(), np.load(FIXTURES / "seq_cnn.y.npy"),
                               atol=1e-5)


# ---------------------------------------------------------------- LayerNormalization
def _ln_ref(x, gamma, beta, axes, eps=1e-3):
    mean = x.mean(axes, keepdims=True)
    var = x.var(axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_layer_norm_harness():
    run_layer_test(LayerNormalization, {}, input_shape=(2, 5, 8), expected_output_shape=(2, 5, 8),
                   expected_num_trainable_weights=2)
    run_layer_test(LayerNormalization, {"axis": [1, 2]}, input_shape=(2, 3, 4, 5),
                   expected_num_trainable_weights=2)


@pytest.mark.parametrize("shape,axis,param_shape", [
    ((4, 8), -1, (8,)), ((2, 5, 8), -1, (8,)), ((2, 3, 4, 5), [-2, -1], (4, 5)),
    ((2, 3, 4, 5), [1, 2], (3, 4)), ((2, 6, 4), 1, (6,))])
def test_layer_norm_matches_numpy(shape, axis, param_shape):
    rng = np.random.default_rng(4)
    x = rng.normal(1.0, 2.0, size=shape).astype("float32")
    layer = LayerNormalization(axis=axis)
    layer(torch.as_tensor(x))
    gamma = rng.uniform(0.5, 1.5, param_shape).astype("float32")
    beta = rng.normal(size=param_shape).astype("float32")
    layer.set_weights([gamma, beta])
    axes = tuple(a % len(shape) for a in (axis if isinstance(axis, list) else [axis]))
    bshape = [shape[d] if d in axes else 1 for d in range(len(shape))]
    expected = _ln_ref(x, gamma.reshape(bshape), beta.reshape(bshape), axes)
    out = layer(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_layer_norm_rms_scaling_and_no_center_scale():
    x = torch.randn(3, 6)
    layer = LayerNormalization(rms_scaling=True)
    out = layer(x)
    assert [w.shape for w in layer.get_weights()] == [(6,)]
    torch.testing.assert_close(out, x / torch.sqrt(x.var(-1, correction=0, keepdim=True) + 1e-3))
    plain = LayerNormalization(center=False, scale=False)
    plain(x)
    assert plain.weights == []


def test_layer_norm_configs_and_errors():
    config = _fixture_layer("func_layernorm_mha", "layer_norm")["config"]
    layer = LayerNormalization.from_config(config)
    assert layer.axis == [-1] and layer.epsilon == 0.001 and layer.rms_scaling is False
    assert LayerNormalization(axis=(1, 2)).get_config()["axis"] == [1, 2]
    with pytest.raises(ValueError, match="axis must be an int or a list of ints"):
        LayerNormalization(axis="last")
    with pytest.raises(ValueError, match="axis 3 is out of bounds"):
        LayerNormalization(axis=3)(torch.ones(2, 3))


def test_layer_norm_and_add_match_keras_fixture():
    config = _fixture_layer("func_layernorm_mha", "layer_norm")["config"]
    ln = LayerNormalization.from_config(config)
    ln.build_from_config({"input_shape": [None, 6, 16]})
    ln.set_weights(_fixture_vars("func_layernorm_mha", "layer_normalization"))
    dense = Dense.from_config(_fixture_layer("func_layernorm_mha", "out")["config"])
    dense.build_from_config({"input_shape": [None, 16]})
    dense.set_weights(_fixture_vars("func_layernorm_mha", "dense"))
    mha = {part: _fixture_vars("func_layernorm_mha", f"multi_head_attention/{part}_dense")
           for part in ("query", "key", "value", "output")}
    x = np.load(FIXTURES / "func_layernorm_mha.x.npy")
    q, k, v = (np.einsum("btd,dhk->bthk", x, mha[p][0]) + mha[p][1]
               for p in ("query", "key", "value"))
    scores = np.einsum("bqhk,bthk->bhqt", q / np.sqrt(q.shape[-1]), k)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    attended = np.einsum("bqhk,hkd->bqd", np.einsum("bhqt,bthk->bqhk", probs, v),
                         mha["output"][0]) + mha["output"][1]
    residual = Add()([torch.as_tensor(x), torch.as_tensor(attended, dtype=torch.float32)])
    y = dense(ln(residual).mean(1))
    np.testing.assert_allclose(y.detach().numpy(), np.load(FIXTURES / "func_layernorm_mha.y.npy"),
                               atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_batch_norm_channels_last_images_stay_contiguous(training):
    layer = BatchNormalization()
    x = torch.randn(2, 5, 5, 3, requires_grad=True)
    out = layer(x, training=training)
    assert out.is_contiguous()  # normalized as a channels_last view, no layout copy
    out.sum().backward()
    assert x.grad.shape == x.shape
