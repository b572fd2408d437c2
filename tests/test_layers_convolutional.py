import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kestrel.layers import Input
from kestrel.layers.convolutional import (
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
)
from kestrel.layers.pooling import GlobalAveragePooling2D, MaxPooling2D
from kestrel.registry.serialization import deserialize_keras_object
from tests.layer_harness import run_layer_test

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"
RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- NumPy references (channels-last)
def tf_same_pads(spatial, kernel, strides, dilation):
    """TF's 'same' rule: output ceil(n / s), total padding split with the extra at the end."""
    pads = []
    for n, k, s, d in zip(spatial, kernel, strides, dilation):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def np_conv(x, kernel, bias=None, strides=None, padding="valid", dilation=None, groups=1):
    """Direct loops over Keras' definition: x (B, *S, C), kernel (*K, C // groups, F)."""
    rank = x.ndim - 2
    ksize = kernel.shape[:rank]
    strides = strides or (1,) * rank
    dilation = dilation or (1,) * rank
    if padding == "same":
        pads = tf_same_pads(x.shape[1:-1], ksize, strides, dilation)
    elif padding == "causal":
        pads = [((ksize[0] - 1) * dilation[0], 0)]
    else:
        pads = [(0, 0)] * rank
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_sizes = [(xp.shape[1 + i] - (ksize[i] - 1) * dilation[i] - 1) // strides[i] + 1
                 for i in range(rank)]
    cin, filters = kernel.shape[-2], kernel.shape[-1]
    fg = filters // groups
    out = np.zeros((x.shape[0], *out_sizes, filters))
    for pos in np.ndindex(*out_sizes):
        for off in np.ndindex(*ksize):
            idx = tuple(p * s + o * d for p, o, s, d in zip(pos, off, strides, dilation))
            patch = xp[(slice(None), *idx)]
            for g in range(groups):
                out[(slice(None), *pos, slice(g * fg, (g + 1) * fg))] += (
                    patch[:, g * cin:(g + 1) * cin] @ kernel[off][:, g * fg:(g + 1) * fg])
    return out if bias is None else out + bias


def np_conv_transpose(x, kernel, bias, stride, padding, output_padding, dilation=1):
    """1D transposed conv as the adjoint of a TF conv: scatter, then TF's crop window."""
    batch, length, _ = x.shape
    k, filters = kernel.shape[0], kernel.shape[1]
    k_eff = (k - 1) * dilation + 1
    full = np.zeros((batch, (length - 1) * stride + k_eff + stride, filters))
    for i in range(length):
        for j in range(k):
            full[:, i * stride + j * dilation] += x[:, i] @ kernel[j].T  # kernel[j]: (out, in)
    if padding == "valid":
        out_len = (length - 1) * stride + k_eff + (
            max(stride - k_eff, 0) if output_padding is None else output_padding)
        start = 0
    else:
        out_len = length * stride if output_padding is None else (
            (length - 1) * stride + k_eff % 2 + output_padding)
        start = max((length - 1) * stride + k_eff - out_len, 0) // 2
    return full[:, start:start + out_len] + bias


def np_depthwise(x, kernel, bias, **kw):
    cin, mult = kernel.shape[-2:]
    outs = [np_conv(x[..., c:c + 1], kernel[..., c:c + 1, m:m + 1], **kw)
            for c in range(cin) for m in range(mult)]
    return np.concatenate(outs, axis=-1) + bias


def run(layer, x):
    return layer(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- harness for every layer
@pytest.mark.parametrize("cls, kwargs, in_shape, out_shape, n_weights", [
    (Conv1D, {"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
     (2, 9, 3), (2, 9, 4), 2),
    (Conv2D, {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same",
              "activation": "relu"}, (2, 8, 7, 3), (2, 4, 4, 4), 2),
    (Conv3D, {"filters": 2, "kernel_size": 2, "use_bias": False}, (1, 4, 4, 4, 3),
     (1, 3, 3, 3, 2), 1),
    (Conv1DTranspose, {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
     (2, 5, 3), (2, 10, 4), 2),
    (Conv2DTranspose, {"filters": 4, "kernel_size": 3, "strides": 2}, (2, 4, 4, 8),
     (2, 9, 9, 4), 2),
    (Conv3DTranspose, {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same"},
     (1, 2, 3, 2, 3), (1, 4, 6, 4, 2), 2),
    (DepthwiseConv1D, {"kernel_size": 3, "depth_multiplier": 2}, (2, 7, 3), (2, 5, 6), 2),
    (DepthwiseConv2D, {"kernel_size": 3, "padding": "same", "strides": 2}, (2, 6, 6, 3),
     (2, 3, 3, 3), 2),
    (SeparableConv1D, {"filters": 4, "kernel_size": 3, "depth_multiplier": 2}, (2, 7, 3),
     (2, 5, 4), 3),
    (SeparableConv2D, {"filters": 4, "kernel_size": 3, "data_format": "channels_first"},
     (2, 3, 6, 6), (2, 4, 4, 4), 3),
])
def test_harness(cls, kwargs, in_shape, out_shape, n_weights):
    run_layer_test(cls, kwargs, input_shape=in_shape, expected_output_shape=out_shape,
                   expected_num_trainable_weights=n_weights,
                   expected_num_non_trainable_weights=0)


# ---------------------------------------------------------------- forward numbers
@pytest.mark.parametrize("kwargs, size", [
    ({"kernel_size": 3, "strides": 2, "padding": "same"}, (7, 8)),   # asymmetric 'same'
    ({"kernel_size": (2, 3), "strides": (2, 1), "padding": "same"}, (6, 5)),
    ({"kernel_size": 3, "dilation_rate": 2, "padding": "same"}, (7, 6)),
    ({"kernel_size": 2, "dilation_rate": (1, 2), "padding": "valid"}, (5, 7)),
    ({"kernel_size": 3, "groups": 2, "strides": 2}, (7, 7)),
])
def test_conv2d_matches_numpy(kwargs, size):
    layer = Conv2D(4, **kwargs)
    x = randn(2, *size, 4)
    out = run(layer, x)
    kernel, bias = layer.get_weights()
    expected = np_conv(x, kernel, bias, strides=layer.strides, padding=layer.padding,
                       dilation=layer.dilation_rate, groups=layer.groups)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("padding, strides, dilation", [
    ("causal", 1, 2), ("same", 2, 1), ("same", 1, 3), ("valid", 3, 1)])
def test_conv1d_matches_numpy(padding, strides, dilation):
    layer = Conv1D(3, 4, strides=strides, padding=padding, dilation_rate=dilation,
                   activation="tanh")
    x = randn(2, 11, 2)
    out = run(layer, x)
    kernel, bias = layer.get_weights()
    expected = np.tanh(np_conv(x, kernel, bias, (strides,), padding, (dilation,)))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_causal_output_ignores_the_future():
    layer = Conv1D(2, 3, padding="causal", dilation_rate=2)
    x = torch.randn(1, 10, 3)
    y = torch.cat([x[:, :6], torch.randn(1, 4, 3)], dim=1)
    torch.testing.assert_close(layer(x)[:, :6], layer(y)[:, :6])


def test_conv3d_and_channels_first_match_numpy():
    layer = Conv3D(3, (2, 3, 2), strides=2, padding="same")
    x = randn(1, 5, 6, 3, 2)
    out = run(layer, x)
    np.testing.assert_allclose(out, np_conv(x, *layer.get_weights(), layer.strides, "same"),
                               rtol=1e-4, atol=1e-5)
    first = Conv2D(3, 3, strides=2, padding="same", data_format="channels_first")
    x = randn(2, 2, 7, 6)
    out = run(first, x)
    expected = np_conv(x.transpose(0, 2, 3, 1), *first.get_weights(), (2, 2), "same")
    np.testing.assert_allclose(out, expected.transpose(0, 3, 1, 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k, s, padding, op, d", [
    (k, s, p, op, 1) for k, s, p, op in itertools.product(
        (1, 2, 3, 4, 5), (1, 2, 3), ("valid", "same"), (None, 0, 1, 2)) if op is None or op < s
] + [(3, 1, "same", None, 2), (2, 1, "valid", None, 3), (3, 1, "same", 0, 2)])
def test_conv1d_transpose_matches_numpy(k, s, padding, op, d):
    layer = Conv1DTranspose(3, k, strides=s, padding=padding, output_padding=op,
                            dilation_rate=d, bias_initializer="random_normal")
    x = randn(2, 4, 2)
    out = run(layer, x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (k, 3, 2)
    np.testing.assert_allclose(out, np_conv_transpose(x, kernel, bias, s, padding, op, d),
                               rtol=1e-4, atol=1e-5)
    assert out.shape[1:] == layer.compute_output_shape((None, 4, 2))[1:]


def test_conv2d_transpose_same_gives_stride_times_size():
    layer = Conv2DTranspose(4, 3, strides=2, padding="same")
    x = randn(2, 5, 3, 8)
    out = run(layer, x)
    assert out.shape == (2, 10, 6, 4)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 3, 4, 8)
    # 2D transposed conv = 1D transposed conv along each axis for a separable kernel.
    sep = Conv2DTranspose(1, 3, strides=2, padding="same", use_bias=False)
    sep(torch.zeros(1, 5, 3, 1))
    a, b = randn(3), randn(3)
    sep.set_weights([np.einsum("i,j->ij", a, b)[:, :, None, None]])
    img = randn(1, 5, 3, 1)
    rows = np.stack([np_conv_transpose(img[:, :, j], a[:, None, None], 0, 2, "same", None)
                     for j in range(3)], axis=2)
    both = np.stack([np_conv_transpose(rows[:, i], b[:, None, None], 0, 2, "same", None)
                     for i in range(10)], axis=1)
    np.testing.assert_allclose(run(sep, img), both, rtol=1e-4, atol=1e-5)
    first = Conv2DTranspose(4, 3, strides=2, padding="same", data_format="channels_first")
    first(torch.zeros(1, 8, 5, 3))
    first.set_weights(layer.get_weights())
    np.testing.assert_allclose(run(first, x.transpose(0, 3, 1, 2)), out.transpose(0, 3, 1, 2),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls, rank", [(DepthwiseConv1D, 1), (DepthwiseConv2D, 2)])
def test_depthwise_matches_numpy(cls, rank):
    layer = cls(3, strides=2, padding="same", depth_multiplier=2,
                bias_initializer="random_normal")
    x = randn(2, *(7,) * rank, 3)
    out = run(layer, x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3,) * rank + (3, 2) and bias.shape == (6,)
    np.testing.assert_allclose(
        out, np_depthwise(x, kernel, bias, strides=(2,) * rank, padding="same"),
        rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls, rank", [(SeparableConv1D, 1), (SeparableConv2D, 2)])
def test_separable_matches_numpy(cls, rank):
    layer = cls(5, 3, dilation_rate=2, padding="same", depth_multiplier=2,
                bias_initializer="random_normal")
    x = randn(2, *(8,) * rank, 3)
    out = run(layer, x)
    depthwise, pointwise, bias = layer.get_weights()
    assert depthwise.shape == (3,) * rank + (3, 2)
    assert pointwise.shape == (1,) * rank + (6, 5) and bias.shape == (5,)
    inner = np_depthwise(x, depthwise, 0, padding="same", dilation=(2,) * rank)
    expected = inner @ pointwise.reshape(6, 5) + bias
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- weights
@pytest.mark.parametrize("layer, x_shape, shapes", [
    (Conv1D(4, 3, groups=2), (1, 5, 6), [(3, 3, 4), (4,)]),
    (Conv2D(8, (3, 2)), (1, 5, 5, 3), [(3, 2, 3, 8), (8,)]),
    (Conv3D(2, 2), (1, 3, 3, 3, 5), [(2, 2, 2, 5, 2), (2,)]),
    (Conv3DTranspose(4, 2), (1, 3, 3, 3, 5), [(2, 2, 2, 4, 5), (4,)]),
    (DepthwiseConv2D(3, depth_multiplier=2), (1, 5, 5, 3), [(3, 3, 3, 2), (6,)]),
    (SeparableConv2D(4, 3, depth_multiplier=2), (1, 5, 5, 3),
     [(3, 3, 3, 2), (1, 1, 6, 4), (4,)]),
])
def test_weight_layouts_and_set_weights_round_trip(layer, x_shape, shapes):
    x = torch.randn(x_shape)
    layer(x)
    assert [w.shape for w in layer.get_weights()] == shapes
    new = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="shape"):
        layer.set_weights([np.zeros((1,) * len(s)) for s in shapes])


def test_depthwise_torch_layout_maps_channel_c_times_mult_plus_m():
    layer = DepthwiseConv2D(1, depth_multiplier=2, use_bias=False)
    layer(torch.zeros(1, 2, 2, 3))
    kernel = np.arange(6, dtype=np.float32).reshape(1, 1, 3, 2)
    layer.set_weights([kernel])
    x = torch.ones(1, 2, 2, 3) * torch.tensor([1.0, 10.0, 100.0])
    out = layer(x)[0, 0, 0].detach().numpy()
    # channel c*2+m = x[c] * k[c, m]
    np.testing.assert_allclose(out, [0, 1, 20, 30, 400, 500])
    assert tuple(layer.kernel.shape) == (6, 1, 1, 1)  # stored as torch's grouped weight


def test_kernel_regularizer_and_constraint_see_keras_layout():
    from kestrel import constraints
    layer = Conv2D(2, 3, kernel_regularizer="l2",
                   kernel_constraint=constraints.NonNeg())
    layer(torch.zeros(1, 4, 4, 3))
    assert len(layer.losses) == 1
    layer.set_weights([-np.ones((3, 3, 3, 2)), np.zeros(2)])
    layer._apply_constraints()
    assert (layer.get_weights()[0] >= 0).all()


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("cls, kwargs, arg", [
    (Conv2D, {"filters": -1, "kernel_size": 3}, "filters"),
    (Conv2D, {"filters": 4, "kernel_size": 3, "padding": "full"}, "padding"),
    (Conv2D, {"filters": 4, "kernel_size": 3, "padding": "causal"}, "padding"),
    (Conv2D, {"filters": 4, "kernel_size": (3, 3, 3)}, "kernel_size"),
    (Conv2D, {"filters": 4, "kernel_size": 0}, "kernel_size"),
    (Conv2D, {"filters": 4, "kernel_size": 3, "groups": 3}, "groups"),
    (Conv2D, {"filters": 4, "kernel_size": 3, "strides": 2, "dilation_rate": 2}, "dilation"),
    (Conv1D, {"filters": 4, "kernel_size": 3, "data_format": "nhwc"}, "data_format"),
    (Conv2DTranspose, {"filters": 4, "kernel_size": 3, "strides": 2, "output_padding": 2},
     "output_padding"),
    (Conv1DTranspose, {"filters": 4, "kernel_size": 3, "padding": "causal"}, "padding"),
    (DepthwiseConv2D, {"kernel_size": 3, "depth_multiplier": 0}, "depth_multiplier"),
    (SeparableConv1D, {"filters": 0, "kernel_size": 3}, "filters"),
])
def test_invalid_arguments_name_the_argument(cls, kwargs, arg):
    with pytest.raises(ValueError, match=rf"{cls.__name__} '.*'.*{arg}.*Received"):
        cls(**kwargs)


def test_wrong_rank_and_channels_name_the_layer_and_shapes():
    layer = Conv2D(4, 3, name="c2")
    layer(torch.zeros(1, 5, 5, 3))
    with pytest.raises(ValueError, match=r"Conv2D 'c2' expected last dimension .* 3, got 5"
                                         r".*\(1, 5, 5, 5\)"):
        layer(torch.zeros(1, 5, 5, 5))
    with pytest.raises(ValueError, match=r"Conv2D 'c2' expected an input of rank 4, got rank 3"
                                         r".*\(5, 5, 3\)"):
        layer(torch.zeros(5, 5, 3))
    with pytest.raises(ValueError, match="rank 4"):
        layer(Input(shape=(5, 3)))
    first = DepthwiseConv2D(3, data_format="channels_first", name="dw")
    first(torch.zeros(1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"DepthwiseConv2D 'dw' expected dimension 1 2, got 3"):
        first(torch.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match="zero or negative"):
        Conv1D(2, 5)(torch.zeros(1, 3, 2))


def test_symbolic_shapes_with_unknown_spatial_dims():
    out = Conv2DTranspose(3, 3, strides=2, padding="same")(Input(shape=(None, 5, 2)))
    assert out.shape == (None, None, 10, 3)
    out = Conv1D(3, 3, strides=2, padding="same")(Input(shape=(None, 2)))
    assert out.shape == (None, None, 3)


# ---------------------------------------------------------------- Keras configs and numbers
def test_keras_config_loads_and_registry_aliases():
    layers = json.loads((FIXTURES / "seq_cnn.json").read_text())["config"]["layers"]
    conv_config = next(layer for layer in layers if layer["class_name"] == "Conv2D")
    conv = deserialize_keras_object(conv_config, "layers")
    assert isinstance(conv, Conv2D) and conv.padding == "same" and conv.filters == 8
    assert set(conv_config["config"]) <= set(conv.get_config())
    alias = {"class_name": "Convolution2DTranspose", "config": {"filters": 2, "kernel_size": 3}}
    assert isinstance(deserialize_keras_object(alias, "layers"), Conv2DTranspose)
    keras2_depthwise = {"class_name": "DepthwiseConv2D", "config": {
        "kernel_size": [3, 3], "groups": 1, "depth_multiplier": 2, "name": "dw"}}
    assert deserialize_keras_object(keras2_depthwise, "layers").depth_multiplier == 2


def test_seq_cnn_fixture_matches_real_keras():
    """Conv2D(relu, same) -> MaxPooling2D -> Conv2D -> BN -> GAP2D -> Dense, weights from Keras."""
    h5py = pytest.importorskip("h5py")
    x = np.load(FIXTURES / "seq_cnn.x.npy")
    with h5py.File(FIXTURES / "seq_cnn.weights.h5", "r") as f:
        w = {name: [f[f"layers/{name}/vars/{i}"][()] for i in range(len(f[f"layers/{name}/vars"]))]
             for name in ("conv2d", "conv2d_1", "batch_normalization", "dense")}
    conv1, conv2 = Conv2D(8, 3, padding="same", activation="relu"), Conv2D(16, 3)
    conv1.build((None, 16, 16, 3))
    conv2.build((None, 8, 8, 8))
    conv1.set_weights(w["conv2d"])
    conv2.set_weights(w["conv2d_1"])
    h = conv2(MaxPooling2D()(conv1(torch.as_tensor(x)))).detach().numpy()
    gamma, beta, mean, var = w["batch_normalization"]
    h = (h - mean) / np.sqrt(var + 1e-3) * gamma + beta
    pooled = GlobalAveragePooling2D()(torch.as_tensor(h)).numpy()
    logits = pooled @ w["dense"][0] + w["dense"][1]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, np.load(FIXTURES / "seq_cnn.y.npy"), atol=2e-6)


# ---------------------------------------------------------------- layout helpers (speed paths)
@pytest.mark.parametrize("shape, rank", [((3, 3, 5, 7), 2), ((1, 4, 5), 1),
                                         ((2, 3, 4, 5, 6), 3), ((3, 3, 0, 4), 2)])
def test_kernel_to_torch_is_the_permutation(shape, rank):
    from kestrel.layers.convolutional import conv_utils as cu
    kernel = torch.randn(*shape)
    out = cu.kernel_to_torch(kernel, rank)
    assert out.is_contiguous()
    assert torch.equal(out, kernel.permute(rank + 1, rank, *range(rank)))
    assert torch.equal(cu.kernel_to_keras(out, rank), kernel)


@pytest.mark.parametrize("channels_last_memory", [True, False])
def test_pad_matches_f_pad_and_keeps_the_memory_layout(channels_last_memory):
    from kestrel.layers.convolutional import conv_utils as cu
    x = torch.randn(2, 6, 7, 3).permute(0, 3, 1, 2) if channels_last_memory \
        else torch.randn(2, 3, 6, 7)
    out = cu.pad(x, ((0, 1), (2, 1)), 2, value=-0.5)
    assert torch.equal(out, torch.nn.functional.pad(x, [2, 1, 0, 1], value=-0.5))
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last_memory
    leaf = x.clone().requires_grad_()
    cu.pad(leaf, ((0, 1), (2, 1)), 2).sum().backward()
    assert torch.equal(leaf.grad, torch.ones_like(x))


def test_same_padding_stride_2_keeps_channels_last_and_matches_numpy():
    layer = Conv2D(4, 3, strides=2, padding="same", use_bias=False)
    x = torch.randn(2, 8, 8, 3)
    out = layer(x)
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x.permute(0, 3, 1, 2), [0, 1, 0, 1]),
        layer.kernel, stride=2).permute(0, 2, 3, 1)
    assert out.is_contiguous()
    torch.testing.assert_close(out, expected)
