"""EinsumDense quantized to int4 (per channel and in blocks), compared with real Keras 3
(torch backend): variables, outputs, input gradients, configs and files both ways."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402

import kestrel  # noqa: E402
from kestrel import quantizers  # noqa: E402

RNG = np.random.default_rng(13)
X2 = RNG.normal(size=(4, 20)).astype("float32")
X3 = RNG.normal(size=(4, 3, 20)).astype("float32")
X3T = X3.transpose(0, 2, 1).copy()
CASES = {  # name: (equation, output_shape, bias_axes, inputs)
    "matmul_odd_columns": ("ab,bc->ac", 5, "c", X2),
    "two_out_axes_bias": ("abc,cde->abde", (3, 2, 5), "de", X3),
    "two_reduced": ("abc,bcd->ad", 5, None, X3),
    "kernel_last_axis_kept": ("abc,cdb->adb", (5, 3), "b", X3),
    "reduced_axis_last": ("ab,cb->ac", 5, None, X2),
    "left_ellipsis": ("...b,bc->...c", 7, "c", X3),
    "right_ellipsis": ("ab...,bc->ac...", 6, "c", X3T),
}
# Keras 3.15 cannot quantize equations with "..." (it reads the input rank as a shape):
# Kestrel's layer is compared with Keras' layer for the same equation spelled out.
KERAS_TWINS = {"left_ellipsis": ("abd,dc->abc", (3, 7)),
               "right_ellipsis": ("abd,bc->acd", (6, 3))}
BLOCKS = {"default": None, "blocks_of_8": 8, "per_channel": -1}


def _np(x):
    return x.detach().float().numpy() if isinstance(x, torch.Tensor) \
        else keras.ops.convert_to_numpy(x)


def _config(lib, block):
    if BLOCKS[block] is None:
        return None
    return lib.quantizers.Int4QuantizationConfig(
        block_size=None if BLOCKS[block] == -1 else BLOCKS[block])


def _pair(case, block, dtype=None):
    equation, output_shape, bias_axes, x = CASES[case]
    twin = KERAS_TWINS.get(case, (equation, output_shape))
    theirs, ours = (lib.layers.EinsumDense(*spec, bias_axes=bias_axes,
                                           bias_initializer="random_normal", dtype=dtype)
                    for lib, spec in ((keras, twin), (kestrel, (equation, output_shape))))
    theirs(x)
    ours(torch.as_tensor(x))
    ours.set_weights(theirs.get_weights())
    theirs.quantize("int4", config=_config(keras, block))
    ours.quantize("int4", config=_config(kestrel, block))
    return theirs, ours, x


@pytest.mark.parametrize("block", sorted(BLOCKS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_int4_variables_outputs_and_gradients_match_keras(case, block):
    theirs, ours, x = _pair(case, block)
    assert ours.dtype_policy == theirs.dtype_policy.name
    expected = [(w.name, w.numpy()) for w in theirs.weights]
    got = ours.get_weights()
    assert [w.name for w in ours.weights] == [name for name, _ in expected]
    assert [(w.shape, w.dtype) for w in got] == [(w.shape, w.dtype) for _, w in expected]
    for a, (_, b) in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    grads = []
    for layer in (theirs, ours):
        inputs = torch.tensor(x, requires_grad=True)
        y = layer(inputs)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        grads.append((_np(y), inputs.grad.numpy()))
    for a, b in zip(grads[1], grads[0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert [w.trainable for w in ours.weights] == [w.trainable for w in theirs.weights]


def test_int4_with_a_mixed_policy_computes_in_bfloat16_as_keras():
    theirs, ours, x = _pair("two_out_axes_bias", "per_channel", dtype="mixed_bfloat16")
    assert ours.dtype_policy == theirs.dtype_policy.name == "int4/-1_from_mixed_bfloat16"
    y_theirs, y_ours = theirs(x), ours(torch.as_tensor(x))
    assert y_ours.dtype == y_theirs.dtype == torch.bfloat16
    np.testing.assert_allclose(_np(y_ours), _np(y_theirs), rtol=2e-2, atol=2e-2)


def _model(lib):
    inputs = lib.Input((3, 20))
    x = lib.layers.EinsumDense("abc,cde->abde", (3, 2, 5), bias_axes="de",
                               activation="tanh")(inputs)
    x = lib.layers.Reshape((3, 10))(x)
    x = lib.layers.EinsumDense("abc,bcd->ad", 7)(x)
    return lib.Model(inputs, lib.layers.EinsumDense("ab,bc->ac", 3, bias_axes="c")(x))


@pytest.mark.parametrize("block", ["blocks_of_8", "per_channel"])
def test_keras_int4_files_load_in_kestrel_and_back(tmp_path, block):
    theirs = _model(keras)
    theirs.quantize("int4", config=_config(keras, block))
    expected = _np(theirs(X3))
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    loaded = kestrel.saving.load_model(tmp_path / "k.keras")
    policies = [layer.dtype_policy for layer in loaded.layers if "einsum" in layer.name]
    assert policies == [theirs.layers[1].dtype_policy.name] * 3
    np.testing.assert_allclose(_np(loaded(torch.as_tensor(X3))), expected, rtol=1e-5,
                               atol=1e-6)
    ours = _model(kestrel)
    ours.quantize("int4", config=_config(kestrel, block))
    ours.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(_np(ours(torch.as_tensor(X3))), expected, rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "o.keras")
    ours.save_weights(tmp_path / "o.weights.h5")
    np.testing.assert_allclose(_np(keras.saving.load_model(tmp_path / "o.keras")(X3)),
                               expected, rtol=1e-5, atol=1e-6)
    fresh = _model(keras)
    fresh.quantize("int4", config=_config(keras, block))
    fresh.load_weights(tmp_path / "o.weights.h5")
    np.testing.assert_allclose(_np(fresh(X3)), expected, rtol=1e-5, atol=1e-6)


def test_int4_config_round_trips_through_keras_layer_configs():
    theirs, ours, x = _pair("two_out_axes_bias", "blocks_of_8")
    rebuilt = kestrel.layers.EinsumDense.from_config(theirs.get_config())
    rebuilt(torch.as_tensor(x))
    assert rebuilt.dtype_policy == "int4/8_from_float32"
    rebuilt.set_weights(theirs.get_weights())
    np.testing.assert_allclose(_np(rebuilt(torch.as_tensor(x))), _np(theirs(x)), rtol=1e-6,
                               atol=1e-6)
    again = keras.layers.EinsumDense.from_config(ours.get_config())
    again(x)
    assert again.dtype_policy.name == "int4/8_from_float32"
    assert [tuple(w.shape) for w in again.weights] == [tuple(w.shape) for w in ours.weights]
