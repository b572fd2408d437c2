"""keras.io example patterns that once differed from Keras 3: each model is built with Kestrel and
with real Keras (torch backend) from the same code; names, shapes and parameter counts must agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _layout(model):
    """(class, name, params, output shape) per layer, and the total."""
    rows = [(type(l).__name__, l.name, l.count_params(), tuple(l.output.shape))
            for l in model.layers]
    return rows, model.count_params()


def _same_in_both(build):
    """Build with Kestrel and Keras; assert the layouts agree and return both models."""
    ours = build(_fresh(kestrel))
    theirs = build(_fresh(keras))
    assert _layout(ours) == _layout(theirs)
    return ours, theirs


def test_attention_reserves_keras_sublayer_names():
    """CCT / ViT blocks: names of Dropout/Softmax after a MultiHeadAttention follow Keras."""
    def build(k):
        inputs = k.Input((16, 32))
        x = k.layers.MultiHeadAttention(num_heads=2, key_dim=8, dropout=0.1)(inputs, inputs)
        x = k.layers.Dropout(0.1)(x)
        x = k.layers.GroupQueryAttention(head_dim=8, num_query_heads=2,
                                         num_key_value_heads=1)(x, x)
        x = k.layers.Softmax()(k.layers.Dropout(0.1)(x))
        return k.Model(inputs, x)

    ours, _ = _same_in_both(build)
    names = [l.name for l in ours.layers]
    assert names[2:] == ["dropout_1", "grouped_query_attention", "dropout_3", "softmax_2"]


@pytest.mark.parametrize("value", [
    [np.zeros((4, 4, 3), np.uint8)],  # ViT: ops.convert_to_tensor([image]) before resizing
    [np.zeros(2), np.ones(2)],
    [np.zeros(2, np.int64), [1, 2]],
    [np.float32(1.5), 2],
])
def test_convert_to_tensor_of_a_list_of_arrays(value):
    ours, theirs = kestrel.ops.convert_to_tensor(value), keras.ops.convert_to_tensor(value)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def _standardized_conv(k):
    """keras_recipes/subclassing_conv_layers: weight standardization by overriding the op."""
    class StandardizedConv2D(k.layers.Conv2D):
        def convolution_op(self, inputs, kernel):
            mean, var = k.ops.moments(kernel, axes=[0, 1, 2], keepdims=True)
            return k.ops.conv(inputs, (kernel - mean) / k.ops.sqrt(var + 1e-10),
                              padding="valid", strides=list(self.strides))
    return StandardizedConv2D


@pytest.mark.parametrize("use_bias", [True, False])
def test_conv_convolution_op_override_matches_keras(use_bias):
    def build(k):
        return k.Sequential([k.Input((9, 9, 2)),
                             _standardized_conv(k)(4, 3, strides=2, activation="relu",
                                                   use_bias=use_bias, bias_initializer="ones"),
                             k.layers.Flatten(), k.layers.Dense(3)])

    ours, theirs = _same_in_both(build)
    ours.set_weights(theirs.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 2)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)
    ours.compile("sgd", "mse")
    assert np.isfinite(ours.fit(x, np.zeros((2, 3)), verbose=0).history["loss"][0])
    grads_reach_kernel = ours.layers[0].kernel.value.grad
    assert grads_reach_kernel is not None and float(grads_reach_kernel.abs().sum()) > 0


def test_conv_convolution_op_default_is_the_plain_convolution():
    layer = kestrel.layers.Conv2D(3, 3, padding="same")
    x = np.random.default_rng(1).normal(size=(1, 5, 5, 2)).astype("float32")
    full = layer(x)
    kernel = kestrel.ops.convert_to_tensor(layer.get_weights()[0])
    bare = layer.convolution_op(kestrel.ops.convert_to_tensor(x), kernel)
    np.testing.assert_allclose(bare.detach().numpy() + layer.get_weights()[1],
                               full.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_models_after_sequential_builds_are_named_as_in_keras():
    """NMT transformer: a Sequential feed-forward inside custom layers shifts later model names."""
    def build(k):
        seq = k.Sequential([k.Input((4,)), k.layers.Dense(4)])
        grown = k.Sequential([k.Input((4,))])
        grown.add(k.layers.Dense(2))
        grown.add(k.layers.Dense(3))
        inputs = k.Input((4,))
        inner = k.Model(inputs, seq(inputs))
        outer_in = k.Input((4,))
        return k.Model(outer_in, grown(inner(outer_in)))

    ours, _ = _same_in_both(build)
    assert ours.layers[1].name == "functional_3" and ours.name == "functional_4"
