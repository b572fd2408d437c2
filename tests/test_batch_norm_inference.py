"""BatchNormalization in inference as torch's own multiply-add (`batch_norm_inference`): bit
for bit `F.batch_norm`, terms recomputed when weights change, and written straight into the
padded buffer of a following activation and ZeroPadding (`padded_activation.after_norm`)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kestrel
from kestrel import layers
from kestrel.layers.normalization import batch_norm_inference
from kestrel.layers.normalization.batch_normalization import BatchNormalization
from kestrel.models import functional


def _randomize(norm, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in (norm.gamma, norm.beta, norm.moving_mean):
            if w is not None:
                w.copy_(torch.randn(w.shape, generator=g))
        norm.moving_variance.copy_(torch.rand(norm.moving_variance.shape, generator=g) + 0.2)


def _torch_reference(norm, x):
    """torch's batch norm kernel on `x` along the layer's axis (what Kestrel ran before: Keras'
    own three-step formula differs from both in the last bit)."""
    moved = x.movedim(norm._axis, 1).contiguous()
    out = F.batch_norm(moved, norm.moving_mean, norm.moving_variance, norm.gamma, norm.beta,
                       False, 0.0, norm.epsilon)
    return out.movedim(1, norm._axis)


@pytest.mark.parametrize("shape, axis", [
    ((4, 7), -1), ((3, 5, 17), -1), ((2, 6, 5, 96), -1), ((2, 96, 6, 5), 1),
    ((2, 3, 4, 5, 3), -1), ((2, 5, 9), 1)])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_equals_torch_batch_norm_bit_for_bit(shape, axis, center, scale):
    norm = BatchNormalization(axis=axis, center=center, scale=scale)
    x = torch.randn(shape) * 3
    norm.build(shape)
    _randomize(norm)
    assert batch_norm_inference.applies(x.detach()) is False  # gradients enabled here
    with torch.no_grad():
        assert batch_norm_inference.applies(x)
        out = batch_norm_inference.normalize(norm, x)
        assert torch.equal(out, _torch_reference(norm, x))
        assert torch.equal(norm(x, training=False), out)  # small: through F.batch_norm


def test_the_layer_takes_the_multiply_add_on_large_contiguous_inputs(monkeypatch):
    norm = BatchNormalization()
    x = torch.randn(4, 32, 32, 24)  # 98304 elements
    norm.build(x.shape)
    _randomize(norm)
    taken = []
    normalize = batch_norm_inference.normalize
    monkeypatch.setattr(batch_norm_inference, "normalize",
                        lambda *a, **k: taken.append(1) or normalize(*a, **k))
    with torch.no_grad():
        out = norm(x, training=False)
        assert taken == [1] and torch.equal(out, _torch_reference(norm, x))
        norm(x.transpose(1, 2), training=False)  # not contiguous: torch's kernel
        norm(x[:1, :1], training=False)  # small: torch's kernel
    assert taken == [1]
    with torch.enable_grad():
        assert torch.equal(norm(x, training=False).detach(), out)


def test_terms_follow_weight_updates():
    norm = BatchNormalization()
    x = torch.randn(8, 5)
    norm.build(x.shape)
    with torch.no_grad():
        before = batch_norm_inference.normalize(norm, x)
        norm.moving_mean.add_(1.0)
        assert torch.equal(batch_norm_inference.normalize(norm, x), _torch_reference(norm, x))
        assert not torch.equal(batch_norm_inference.normalize(norm, x), before)
    norm.set_weights([w + 0.5 for w in norm.get_weights()])
    with torch.no_grad():
        assert torch.equal(batch_norm_inference.normalize(norm, x), _torch_reference(norm, x))
    norm.moving_variance.data.mul_(2.0)  # through `.data`: no version counter moves
    with torch.no_grad():
        assert torch.equal(batch_norm_inference.normalize(norm, x), _torch_reference(norm, x))


def test_training_and_a_failed_agreement_check_keep_torch_batch_norm(monkeypatch):
    norm = BatchNormalization()
    x = torch.randn(16, 3) * 2 + 1
    norm.build(x.shape)
    with torch.no_grad():
        norm(x, training=True)  # batch statistics; the moving averages move
    assert not torch.equal(norm.moving_mean, torch.zeros(3))
    calls = []
    monkeypatch.setattr(batch_norm_inference, "_agrees", False)
    monkeypatch.setattr(batch_norm_inference, "normalize", lambda *a, **k: calls.append(a))
    large = torch.randn(1 << 16, 3)
    with torch.no_grad():
        out = norm(large, training=False)
    assert calls == [] and torch.equal(out, _torch_reference(norm, large))


def test_this_torch_build_agrees():
    assert batch_norm_inference._check_agreement() is True


ACTIVATIONS = {"relu6": lambda: layers.ReLU(6.0), "relu": lambda: layers.ReLU(),
               "silu": lambda: layers.Activation("swish")}


def _padded_block(activation, with_conv=True, padding=((0, 1), (0, 1)), side_output=False):
    # 16 channels: whole vectors, where torch's silu rounds alike in any layout
    inputs = kestrel.Input((10, 12, 16))
    x = layers.Conv2D(16, 1, use_bias=False)(inputs) if with_conv else inputs
    normalized = layers.BatchNormalization()(x)
    x = ACTIVATIONS[activation]()(normalized)
    x = layers.ZeroPadding2D(padding)(x)
    x = layers.DepthwiseConv2D(3, strides=2)(x)
    outputs = [x, normalized] if side_output else x
    model = kestrel.Model(inputs, outputs)
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            _randomize(layer, seed=3)
    return model


def _fused_steps(model):
    return [entry[2] for entry in model._plan if entry[1] is functional._PADDING_OUTPUT
            and entry[2].norm is not None]


def _one_by_one(model, x):
    for layer in model.layers[1:]:
        x = layer(x)
    return x


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("with_conv", [True, False])
def test_norm_writes_into_the_padded_buffer(activation, with_conv):
    model = _padded_block(activation, with_conv)
    fused = _fused_steps(model)
    assert len(fused) == 1 and (fused[0].conv is not None) == with_conv
    x = torch.randn(3, 10, 12, 16)
    with torch.no_grad():
        out = model(x, training=False)
        assert torch.equal(out, _one_by_one(model, x))
    with torch.enable_grad():  # the unfused path: normalization, padded activation
        assert torch.equal(model(x, training=False).detach(), out)


def test_padding_before_the_activation_stays_zero():
    model = _padded_block("silu", padding=((1, 2), (2, 1)))
    x = torch.randn(2, 10, 12, 16) * 5
    conv = model.layers[-1]
    with torch.no_grad():
        padded = []
        conv.register_forward_pre_hook(lambda module, args: padded.append(args[0]))
        out = model(x, training=False)
    assert out.shape == (2, 6, 7, 16)
    border = padded[0]
    assert torch.all(border[:, :1] == 0) and torch.all(border[:, -2:] == 0)
    assert torch.all(border[:, :, :2] == 0) and torch.all(border[:, :, -1:] == 0)
    assert torch.equal(out, _one_by_one(model, x))


def test_not_fused_where_the_normalization_output_is_read_elsewhere():
    model = _padded_block("relu6", side_output=True)
    assert _fused_steps(model) == []
    x = torch.randn(2, 10, 12, 16)
    with torch.no_grad():
        out, normalized = model(x, training=False)
    norm = model.layers[2]
    assert torch.equal(normalized, _torch_reference(norm, model.layers[1](x)))


def test_training_uses_batch_statistics_through_the_fused_step():
    model = _padded_block("relu6")
    norm = next(layer for layer in model.layers if isinstance(layer, BatchNormalization))
    moving = norm.moving_mean.detach().clone()
    x = torch.randn(4, 10, 12, 16)
    with torch.no_grad():
        trained = model(x, training=True)
    assert not torch.equal(norm.moving_mean, moving)
    with torch.no_grad():
        assert not torch.equal(trained, model(x, training=False))


def test_folding_takes_precedence_when_enabled():
    model = _padded_block("relu6")
    x = torch.randn(2, 10, 12, 16)
    kestrel.config.enable_batch_norm_folding()
    try:
        with torch.no_grad():
            folded = model(x, training=False)
    finally:
        kestrel.config.disable_batch_norm_folding()
    with torch.no_grad():
        exact = model(x, training=False)
    np.testing.assert_allclose(folded.numpy(), exact.numpy(), rtol=1e-5, atol=1e-5)


def test_normalization_layer_rows_equal_broadcasting():
    norm = layers.Normalization(mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
                                variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2,
                                          (0.225 * 255) ** 2])
    x = torch.rand(2, 9, 11, 3) * 255
    out = norm(x)
    mean, variance = norm._statistics()
    expected = (x - mean) / torch.clamp(torch.sqrt(variance), min=kestrel.config.epsilon())
    assert torch.equal(out, expected)
    strided = x.permute(0, 2, 1, 3)  # not contiguous: the plain broadcast
    assert torch.equal(norm(strided), (strided - mean) / torch.sqrt(variance))


def test_hooks_on_the_normalization_still_run():
    model = _padded_block("relu6")
    norm = next(layer for layer in model.layers if isinstance(layer, BatchNormalization))
    seen = []
    norm.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    x = torch.randn(2, 10, 12, 16)
    with torch.no_grad():
        out = model(x, training=False)
    assert seen == [(2, 10, 12, 16)] and torch.equal(out, _one_by_one(model, x))


def test_a_frozen_normalization_in_training_writes_into_the_buffer():
    model = _padded_block("relu")
    norm = next(layer for layer in model.layers if isinstance(layer, BatchNormalization))
    norm.trainable = False  # Keras: frozen BatchNormalization runs in inference
    moving = norm.moving_mean.detach().clone()
    x = torch.randn(2, 10, 12, 16)
    with torch.no_grad():
        out = model(x, training=True)
    assert torch.equal(norm.moving_mean, moving)
    with torch.no_grad():
        assert torch.equal(out, model(x, training=False))
