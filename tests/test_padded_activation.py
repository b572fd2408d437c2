"""An activation that writes into the ZeroPadding after it (functional models): the same
values and gradients as the layers run one by one."""
import pytest
import torch

import kestrel
from kestrel import layers
from kestrel.models import functional

ACTIVATIONS = {"relu6": lambda: layers.ReLU(6.0), "relu": layers.ReLU,
               "swish": lambda: layers.Activation("swish"),
               "relu_activation": lambda: layers.Activation("relu")}
PADS = [((0, 1), (0, 1)), ((1, 2), (2, 0))]


def _model(activation, padding, data_format="channels_last"):
    shape = (9, 10, 4) if data_format == "channels_last" else (4, 9, 10)
    inputs = kestrel.Input(shape)
    x = layers.Conv2D(6, 1, data_format=data_format)(inputs)
    x = activation(x)
    x = layers.ZeroPadding2D(padding, data_format=data_format)(x)
    x = layers.DepthwiseConv2D(3, strides=2, data_format=data_format)(x)
    return kestrel.Model(inputs, x)


def _layer_by_layer(model, x):
    for layer in model.layers[1:]:
        x = layer(x)
    return x


def _run(fn, model, x):
    """Output and gradients (input, then weights) of `fn(x).square().sum()`."""
    model.zero_grad()
    x = x.clone().requires_grad_()
    y = fn(x)
    y.square().sum().backward()
    return [y, x.grad] + [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("padding", PADS)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_fused_padding_equals_layer_by_layer(name, padding, data_format):
    torch.manual_seed(0)
    model = _model(ACTIVATIONS[name](), padding, data_format)
    assert functional._PADDING_OUTPUT in [entry[1] for entry in model._plan]
    x = torch.randn(2, *model.inputs[0].shape[1:]) * 8  # values past ReLU6's cap too
    fused = _run(lambda t: model(t, training=True), model, x)
    plain = _run(lambda t: _layer_by_layer(model, t), model, x)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), plain[0].detach(), rtol=1e-5, atol=1e-5)


def test_symmetric_padding_stays_with_the_convolution():
    model = _model(layers.ReLU(), 1)
    kinds = [entry[1] for entry in model._plan]
    assert functional._PADDING_OUTPUT not in kinds and functional._PADDED in kinds


def test_activation_read_elsewhere_is_not_fused():
    inputs = kestrel.Input((8, 8, 3))
    x = layers.ReLU()(inputs)
    padded = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    model = kestrel.Model(inputs, [padded, x])
    assert functional._PADDING_OUTPUT not in [entry[1] for entry in model._plan]
    out = model(torch.randn(1, 8, 8, 3))
    torch.testing.assert_close(out[0][:, :8, :8], out[1])


def test_hooked_activation_runs_unfused():
    model = _model(layers.ReLU(6.0), ((0, 1), (0, 1)))
    seen = []
    model.layers[2].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    x = torch.randn(2, 9, 10, 4)
    torch.testing.assert_close(model(x), _layer_by_layer(model, x))
    assert seen[0] == (2, 9, 10, 6)
