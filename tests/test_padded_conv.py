"""Convolutions of zero-padded inputs without a padded copy (`padded_conv`), and functional
models fusing a `ZeroPadding` into the convolution that reads it."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kestrel
from kestrel.layers.convolutional import padded_conv
from kestrel.layers.convolutional.padded_conv import conv_with_pads
from kestrel.models import functional

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _reference(rank, x, w, b, strides, pads, dilation, groups):
    flat = [amount for pair in reversed(pads) for amount in pair]
    return CONV[rank](F.pad(x, flat), w, b, strides, 0, dilation, groups)


CASES = [  # rank, size, kernel, stride, dilation, pads
    (2, (8, 7), (3, 3), (2, 2), (1, 1), ((0, 1), (0, 1))),      # Keras' correct_pad
    (2, (9, 9), (5, 5), (2, 2), (1, 1), ((1, 2), (1, 2))),      # "same", 5x5, stride 2
    (2, (6, 8), (3, 2), (1, 3), (1, 1), ((2, 0), (0, 3))),      # before > after, mixed
    (2, (7, 7), (3, 3), (1, 1), (2, 2), ((1, 3), (3, 1))),      # dilated
    (2, (4, 5), (4, 4), (3, 3), (1, 1), ((0, 3), (0, 2))),      # several lost rows
    (2, (2, 2), (3, 3), (2, 2), (1, 1), ((0, 3), (1, 1))),      # more lost rows than input
    (1, (10,), (4,), (3,), (1,), ((1, 2),)),
    (3, (5, 4, 6), (3, 2, 3), (2, 1, 2), (1, 1, 1), ((0, 1), (1, 0), (0, 2))),
]


@pytest.mark.parametrize("rank,size,kernel,strides,dilation,pads", CASES)
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_equals_padding_then_convolving(rank, size, kernel, strides, dilation, pads, groups,
                                        monkeypatch):
    monkeypatch.setattr(padded_conv, "JOIN_UNDER_AUTOGRAD_FROM", 0)  # small inputs joined too
    torch.manual_seed(0)
    x = torch.randn(2, 4, *size, dtype=torch.float64, requires_grad=True)
    # fewer output than input channels: the outputs are joined rather than the input padded;
    # depthwise (groups 4, two outputs per channel): the kernel is widened
    filters = 8 if groups == 4 else 2
    w = torch.randn(filters, 4 // groups, *kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(filters, dtype=torch.float64, requires_grad=True)
    expected = _reference(rank, x, w, b, strides, pads, dilation, groups)
    got = conv_with_pads(CONV[rank], x, w, b, strides, pads, dilation, groups)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)
    cotangent = torch.randn_like(expected)
    for g, e in zip(torch.autograd.grad(got, (x, w, b), cotangent),
                    torch.autograd.grad(expected, (x, w, b), cotangent)):
        torch.testing.assert_close(g, e)
    frozen = x.detach()  # gradients for the weights only: the joined outputs
    got = conv_with_pads(CONV[rank], frozen, w, b, strides, pads, dilation, groups)
    expected = _reference(rank, frozen, w, b, strides, pads, dilation, groups)
    torch.testing.assert_close(got, expected)
    for g, e in zip(torch.autograd.grad(got, (w, b), cotangent),
                    torch.autograd.grad(expected, (w, b), cotangent)):
        torch.testing.assert_close(g, e)
    with torch.no_grad():
        torch.testing.assert_close(
            conv_with_pads(CONV[rank], x, w, b, strides, pads, dilation, groups), expected)


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("case", [0, 1, 4, 6])  # zeros after >= before
def test_gradients_join_without_padding_and_differentiate_twice(case, groups, monkeypatch):
    monkeypatch.setattr(padded_conv, "JOIN_UNDER_AUTOGRAD_FROM", 0)
    rank, size, kernel, strides, dilation, pads = CASES[case]
    torch.manual_seed(0)
    x = torch.randn(1, 3, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3 // groups, *kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    out = conv_with_pads(CONV[rank], x, w, b, strides, pads, dilation, groups)
    assert type(out.grad_fn).__name__ == "_JoinedConvBackward"  # no padded copy of x
    torch.autograd.gradgradcheck(
        lambda *t: conv_with_pads(CONV[rank], *t, strides, pads, dilation, groups), (x, w, b))


def test_small_inputs_are_padded_under_autograd_and_large_ones_joined():
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    for size, expected in ((8, "ConvolutionBackward0"), (1500, "_JoinedConvBackward")):
        x = torch.randn(1, 4, size, size)  # 4 * 1500 ** 2 = 9M elements: joined
        out = conv_with_pads(F.conv2d, x, w, None, (2, 2), ((0, 1), (0, 1)), (1, 1), 4)
        assert type(out.grad_fn).__name__ == expected


def test_autocast_differentiates_the_padding(monkeypatch):
    monkeypatch.setattr(padded_conv, "JOIN_UNDER_AUTOGRAD_FROM", 0)
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv_with_pads(F.conv2d, x, w, None, (2, 2), ((0, 1), (0, 1)), (1, 1), 2)
        expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), w, None, 2, 0, 1, 2)
    assert out.dtype == torch.bfloat16 and type(out.grad_fn).__name__ != "_JoinedConvBackward"
    torch.testing.assert_close(out, expected)
    out.float().sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape


def _padded_model(conv, also_return_padded=False, pad=((0, 1), (0, 1))):
    inputs = kestrel.Input((9, 9, 4))
    padded = kestrel.layers.ZeroPadding2D(pad, name="pad")(inputs)
    outputs = conv(padded)
    return kestrel.Model(inputs, [outputs, padded] if also_return_padded else outputs)


def _fused_steps(model):
    return [(layer.name, simple) for layer, simple, *_ in model._plan
            if simple in (functional._PAD, functional._PADDED)]


CONVS = {
    "conv": lambda: kestrel.layers.Conv2D(5, 3, strides=2, name="conv"),
    "same": lambda: kestrel.layers.Conv2D(5, 4, strides=2, padding="same", name="conv"),
    "depthwise": lambda: kestrel.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2,
                                                       name="conv"),
    "separable": lambda: kestrel.layers.SeparableConv2D(6, 3, strides=2, name="conv"),
}


@pytest.mark.parametrize("kind", sorted(CONVS))
def test_model_fuses_padding_and_matches_the_unfused_graph(kind):
    kestrel.utils.set_random_seed(0)
    fused = _padded_model(CONVS[kind]())
    plain = _padded_model(CONVS[kind](), also_return_padded=True)  # padded output kept: no fusion
    plain.set_weights(fused.get_weights())
    assert _fused_steps(fused) == [("pad", functional._PAD), ("conv", functional._PADDED)]
    assert _fused_steps(plain) == []
    x = torch.randn(3, 9, 9, 4, requires_grad=True)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x)[0])
    out, expected = fused(x), plain(x)[0]
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), [x, *fused.trainable_weights])
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, *plain.trainable_weights])
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)


def test_fused_model_trains_and_saves_like_any_other(tmp_path):
    kestrel.utils.set_random_seed(0)
    model = _padded_model(CONVS["depthwise"]())
    model.compile("sgd", "mse")
    x, y = np.random.rand(8, 9, 9, 4), np.random.rand(8, 4, 4, 8)
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, verbose=0)
    assert model.evaluate(x, y, verbose=0) < first
    model.save(tmp_path / "m.keras")
    loaded = kestrel.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def test_hooks_see_the_padded_tensor():
    kestrel.utils.set_random_seed(0)
    model = _padded_model(CONVS["conv"]())
    seen = []
    handle = model.get_layer("conv").register_forward_pre_hook(
        lambda module, args: seen.append(tuple(args[0].shape)))
    x = torch.randn(2, 9, 9, 4)
    with_hook = model(x)
    handle.remove()
    assert seen == [(2, 10, 10, 4)]
    torch.testing.assert_close(with_hook, model(x))
    pad_outputs = []
    model.get_layer("pad").register_forward_hook(
        lambda module, args, output: pad_outputs.append(tuple(output.shape)))
    torch.testing.assert_close(model(x), with_hook)
    assert pad_outputs == [(2, 10, 10, 4)]


def test_subclass_with_its_own_call_is_not_fused():
    class Doubled(kestrel.layers.Conv2D):
        def call(self, inputs):
            return 2 * super().call(inputs)

    kestrel.utils.set_random_seed(0)
    model = _padded_model(Doubled(5, 3, strides=2, name="conv"))
    assert _fused_steps(model) == []
    x = torch.randn(2, 9, 9, 4)
    layer = model.get_layer("conv")
    expected = 2 * F.conv2d(F.pad(x, (0, 0, 0, 1, 0, 1)).permute(0, 3, 1, 2), layer.kernel,
                            layer.bias, 2).permute(0, 2, 3, 1)
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("strides,padding", list(itertools.product([1, 2], ["same", "valid"])))
def test_ops_conv_same_padding_matches_keras_windows(strides, padding):
    """Keras' "same" puts the odd zero at the end: the first window starts at row 0."""
    x = torch.arange(1 * 6 * 6 * 1, dtype=torch.float32).reshape(1, 6, 6, 1)
    kernel = torch.zeros(2, 2, 1, 1)
    kernel[0, 0] = 1  # picks each window's top-left element
    out = kestrel.ops.conv(x, kernel, strides=strides, padding=padding)
    expected = x[:, ::strides, ::strides] if padding == "same" else \
        x[:, :5:strides, :5:strides]
    torch.testing.assert_close(out, expected)


POOLS = {
    "max": lambda: kestrel.layers.MaxPooling2D(3, 2, name="conv"),
    "max_stride_1": lambda: kestrel.layers.MaxPooling2D(3, 1, name="conv"),
    "max_wide": lambda: kestrel.layers.MaxPooling2D((5, 3), (3, 2), name="conv"),
    "average": lambda: kestrel.layers.AveragePooling2D(3, 2, name="conv"),
}


@pytest.mark.parametrize("kind", sorted(POOLS))
def test_model_fuses_padding_into_pooling(kind):
    """ResNet's and DenseNet's `ZeroPadding2D(1)` before a "valid" pooling: pooled with
    torch's padding, windows reaching the zeros as Keras computes them (a max of negative
    inputs is 0 there), values and input gradients equal to the unfused graph."""
    pad = ((2, 2), (1, 1)) if kind == "max_wide" else ((1, 1), (1, 1))
    fused = _padded_model(POOLS[kind](), pad=pad)
    plain = _padded_model(POOLS[kind](), also_return_padded=True, pad=pad)
    assert _fused_steps(fused) == [("pad", functional._PAD), ("conv", functional._PADDED)]
    x = (torch.randn(3, 9, 9, 4) - 1.0).requires_grad_()
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x)[0])
    out, expected = fused(x), plain(x)[0]
    torch.testing.assert_close(out, expected)
    assert (out == 0).any() or kind == "average"  # some windows are decided by the padding
    grad, expected_grad = (torch.autograd.grad((o * torch.arange(o.numel()).view(o.shape))
                                               .sum(), x)[0] for o in (out, expected))
    torch.testing.assert_close(grad, expected_grad)


def test_pooling_takes_only_padding_torch_can_express():
    asymmetric = _padded_model(POOLS["max"]())  # ((0, 1), (0, 1))
    too_wide = _padded_model(kestrel.layers.MaxPooling2D(2, 2, name="conv"), pad=((2, 2), (2, 2)))
    same = _padded_model(kestrel.layers.MaxPooling2D(3, 2, padding="same", name="conv"),
                         pad=((1, 1), (1, 1)))
    for model in (asymmetric, too_wide, same):
        assert _fused_steps(model) == []
        x = torch.randn(2, 9, 9, 4)
        assert model(x).shape[1:] == tuple(model.outputs[0].shape[1:])


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_three_dimensional_max_pooling_takes_padding(data_format):
    shape = (5, 6, 7, 2) if data_format == "channels_last" else (2, 5, 6, 7)
    inputs = kestrel.Input(shape)
    padded = kestrel.layers.ZeroPadding3D(1, data_format=data_format, name="pad")(inputs)
    pool = kestrel.layers.MaxPooling3D(3, 2, data_format=data_format, name="conv")
    fused = kestrel.Model(inputs, pool(padded))
    plain = kestrel.Model(inputs, [pool(padded), padded])
    assert _fused_steps(fused) == [("pad", functional._PAD), ("conv", functional._PADDED)]
    x = (torch.randn(2, *shape) - 1.0).requires_grad_()
    out, expected = fused(x), plain(x)[0]
    torch.testing.assert_close(out, expected)
    weights = torch.rand(out.shape)
    torch.testing.assert_close(torch.autograd.grad((out * weights).sum(), x)[0],
                               torch.autograd.grad((expected * weights).sum(), x)[0])
