"""A convolution and the BatchNormalization reading it, folded into one convolution where a
model runs in inference without gradients (`kestrel.config.enable_batch_norm_folding()`):
the same values as the layers run one by one, and the two-step path wherever folding does
not apply or is not enabled."""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import layers
from kestrel.layers.normalization.batch_normalization import BatchNormalization
from kestrel.models import functional

CONVS = {
    "conv1d": (lambda df: layers.Conv1D(5, 3, data_format=df), 1),
    "conv2d": (lambda df: layers.Conv2D(5, 3, strides=2, padding="same", data_format=df), 2),
    "conv2d_no_bias": (lambda df: layers.Conv2D(5, 3, use_bias=False, data_format=df), 2),
    "conv2d_groups": (lambda df: layers.Conv2D(6, 3, groups=2, data_format=df), 2),
    "conv3d": (lambda df: layers.Conv3D(4, 2, data_format=df), 3),
    "depthwise": (lambda df: layers.DepthwiseConv2D(3, depth_multiplier=2, data_format=df), 2),
    "separable": (lambda df: layers.SeparableConv2D(5, 3, data_format=df), 2),
}


@pytest.fixture(autouse=True)
def folding():
    kestrel.config.enable_batch_norm_folding()
    yield
    kestrel.config.disable_batch_norm_folding()


def _model(conv, rank, data_format="channels_last", padding=None, **norm_kwargs):
    spatial = (7, 8, 6)[:rank]
    shape = (*spatial, 4) if data_format == "channels_last" else (4, *spatial)
    inputs = kestrel.Input(shape)
    x = inputs
    if padding is not None:
        x = layers.ZeroPadding2D(padding, data_format=data_format)(x)
    x = conv(x)
    axis = -1 if data_format == "channels_last" else 1
    x = layers.BatchNormalization(axis=axis, **norm_kwargs)(x)
    return kestrel.Model(inputs, layers.ReLU()(x))


def _randomize_statistics(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            with torch.no_grad():
                for w in (layer.gamma, layer.beta, layer.moving_mean):
                    if w is not None:
                        w.copy_(torch.randn(w.shape, generator=g))
                layer.moving_variance.copy_(torch.rand(layer.moving_variance.shape,
                                                       generator=g) + 0.2)


def _layer_by_layer(model, x):
    for layer in model.layers[1:]:
        x = layer(x)
    return x


def _kinds(model):
    return [entry[1] for entry in model._plan]


def _count_norm_calls(monkeypatch):
    calls = []
    original = BatchNormalization.call

    def counted(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(BatchNormalization, "call", counted)
    return calls


@pytest.mark.parametrize("name", CONVS)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_folded_equals_layer_by_layer(name, data_format, monkeypatch):
    torch.manual_seed(0)
    conv, rank = CONVS[name]
    model = _model(conv(data_format), rank, data_format)
    _randomize_statistics(model)
    assert functional._CONV_NORM in _kinds(model)
    x = torch.randn(3, *model.inputs[0].shape[1:])
    expected = _layer_by_layer(model, x).detach()
    calls = _count_norm_calls(monkeypatch)
    with torch.inference_mode():
        folded = model(x)
    assert calls == []  # the normalization did not run: it was folded
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected.numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm_kwargs", [{"center": False}, {"scale": False},
                                         {"center": False, "scale": False, "epsilon": 0.5}])
def test_folded_without_gamma_or_beta(norm_kwargs):
    model = _model(layers.Conv2D(5, 3), 2, **norm_kwargs)
    _randomize_statistics(model, seed=1)
    x = torch.randn(2, 7, 8, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _layer_by_layer(model, x), rtol=1e-5, atol=1e-5)


def test_folded_after_fused_asymmetric_padding():
    model = _model(layers.DepthwiseConv2D(3, strides=2), 2, padding=((0, 1), (0, 1)))
    _randomize_statistics(model)
    assert functional._PAD in _kinds(model) and functional._CONV_NORM in _kinds(model)
    x = torch.randn(2, 7, 8, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _layer_by_layer(model, x), rtol=1e-5, atol=1e-5)


def test_float64_model_folds_in_float64():
    inputs = kestrel.Input((7, 8, 4), dtype="float64")
    model = kestrel.Model(inputs, layers.BatchNormalization(dtype="float64")(
        layers.Conv2D(5, 3, dtype="float64")(inputs)))
    _randomize_statistics(model)
    x = torch.randn(2, 7, 8, 4, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, _layer_by_layer(model, x), rtol=1e-12, atol=1e-12)


def test_training_and_gradients_run_both_layers(monkeypatch):
    model = _model(layers.Conv2D(5, 3), 2)
    _randomize_statistics(model)
    norm = model.layers[2]
    x = torch.randn(4, 7, 8, 4)
    calls = _count_norm_calls(monkeypatch)
    before = norm.moving_mean.detach().clone()
    model(x, training=True)  # batch statistics, moving averages updated
    assert calls == [norm.name]
    assert not torch.equal(before, norm.moving_mean.detach())
    # inference with gradients wanted (saliency, integrated gradients): not folded
    x = x.clone().requires_grad_()
    model(x, training=False).sum().backward()
    assert len(calls) == 2 and x.grad is not None


def test_frozen_base_in_fit_keeps_moving_statistics():
    model = _model(layers.Conv2D(5, 3), 2)
    model.layers[2].trainable = False
    mean = model.layers[2].moving_mean.detach().clone()
    model.compile("sgd", "mse")
    model.fit(np.random.rand(8, 7, 8, 4), np.random.rand(8, 5, 6, 5), verbose=0)
    torch.testing.assert_close(model.layers[2].moving_mean.detach(), mean)
    x = torch.randn(2, 7, 8, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _layer_by_layer(model, x), rtol=1e-5, atol=1e-5)


def test_not_fused_where_the_convolution_output_is_read_elsewhere():
    inputs = kestrel.Input((6, 6, 3))
    conv = layers.Conv2D(4, 3)(inputs)
    model = kestrel.Model(inputs, [layers.BatchNormalization()(conv), conv])
    assert functional._CONV_NORM not in _kinds(model)
    activated = kestrel.Model(inputs, layers.BatchNormalization()(
        layers.Conv2D(4, 3, activation="relu")(inputs)))
    assert functional._CONV_NORM not in _kinds(activated)
    wrong_axis = kestrel.Model(inputs, layers.BatchNormalization(axis=1)(
        layers.Conv2D(4, 3)(inputs)))
    assert functional._CONV_NORM not in _kinds(wrong_axis)


def test_hooked_normalization_runs_unfolded():
    model = _model(layers.Conv2D(5, 3), 2)
    seen = []
    model.layers[2].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    x = torch.randn(2, 7, 8, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _layer_by_layer(model, x))
    assert seen[0] == (2, 5, 6, 5)


def test_half_inputs_run_unfolded(monkeypatch):
    model = _model(layers.Conv2D(5, 3, dtype="bfloat16"), 2, dtype="bfloat16")
    calls = _count_norm_calls(monkeypatch)
    with torch.no_grad():
        out = model(torch.randn(2, 7, 8, 4, dtype=torch.bfloat16))
    assert calls and torch.isfinite(out).all()


def test_sequential_folds_a_convolution_and_its_normalization(monkeypatch):
    model = kestrel.Sequential([layers.Conv2D(5, 3), layers.BatchNormalization(),
                                layers.ReLU(), layers.Conv2D(3, 1), layers.BatchNormalization(),
                                layers.Dense(2)])
    x = torch.randn(2, 7, 8, 4)
    model.build((None, 7, 8, 4))
    _randomize_statistics(model)
    expected = x
    for layer in model.layers:
        expected = layer(expected)
    calls = _count_norm_calls(monkeypatch)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected.detach(), rtol=1e-5, atol=1e-5)
    assert calls == []
    model.pop()
    model.add(layers.BatchNormalization())  # the steps follow the stack
    with torch.no_grad():
        model(x)
    assert calls == [model.layers[-1].name]


def test_off_by_default_with_keras_numbers(monkeypatch):
    kestrel.config.disable_batch_norm_folding()
    assert not kestrel.config.is_batch_norm_folding_enabled()
    model = _model(layers.Conv2D(5, 3), 2)
    _randomize_statistics(model)
    x = torch.randn(2, 7, 8, 4)
    calls = _count_norm_calls(monkeypatch)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(out, _layer_by_layer(model, x))  # bit for bit
    assert calls[0] == model.layers[2].name


def test_compiled_sequential_folds_in_predict_and_trains():
    model = kestrel.Sequential([kestrel.Input((7, 8, 4)), layers.Conv2D(5, 3),
                                layers.BatchNormalization(), layers.Flatten(), layers.Dense(2)])
    model.compile("sgd", "mse")
    x, y = np.random.rand(8, 7, 8, 4).astype("float32"), np.random.rand(8, 2)
    model.fit(x, y, verbose=0)
    expected = torch.tensor(x)
    for layer in model.layers:
        expected = layer(expected)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected.detach().numpy(),
                               rtol=1e-5, atol=1e-5)
