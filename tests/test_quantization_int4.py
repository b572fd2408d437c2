"""int4 quantization, the int4 helpers of kestrel.quantizers, QuantizationConfig and the
GPTQ / AWQ config and policy classes, compared with real Keras 3 (torch backend)."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402

import kestrel  # noqa: E402
from kestrel import dtype_policies, quantizers  # noqa: E402

RNG = np.random.default_rng(11)


def _np(x):
    return keras.ops.convert_to_numpy(x) if not isinstance(x, torch.Tensor) \
        else x.detach().numpy()


@pytest.mark.parametrize("shape,axis", [((5, 4), 0), ((4, 5), 1), ((3, 5, 2), 1),
                                        ((3, 4, 7), -1)])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_pack_and_unpack_int4_match_keras(shape, axis, dtype):
    values = RNG.integers(-8, 8, size=shape).astype("int8")
    values = values if dtype == "int8" else (values.astype("uint8") & 15)
    theirs = keras.quantizers.pack_int4(values, axis=axis, dtype=dtype)
    ours = quantizers.pack_int4(torch.as_tensor(values), axis=axis, dtype=dtype)
    np.testing.assert_array_equal(ours[0].numpy(), _np(theirs[0]))
    assert ours[0].numpy().dtype == _np(theirs[0]).dtype and ours[1:] == tuple(theirs[1:])
    unpacked = quantizers.unpack_int4(ours[0], ours[2], axis=axis, dtype=dtype)
    np.testing.assert_array_equal(unpacked.numpy(), values)
    np.testing.assert_array_equal(
        unpacked.numpy(), _np(keras.quantizers.unpack_int4(theirs[0], theirs[2], axis, dtype)))


def test_pack_int4_errors_name_the_dtype():
    with pytest.raises(ValueError, match="'int8' or 'uint8'"):
        quantizers.pack_int4(torch.zeros(2, dtype=torch.int8), dtype="int4")
    with pytest.raises(TypeError, match="Expected int8 tensor for packing, got int32"):
        quantizers.pack_int4(torch.zeros(2, dtype=torch.int32))
    with pytest.raises(TypeError, match="Expected int8 or uint8 tensor for unpacking"):
        quantizers.unpack_int4(torch.zeros(2), 4)


@pytest.mark.parametrize("shape,block_size", [((10, 3), 4), ((8, 5), 8), ((3, 4), 8),
                                              ((300, 6), 128)])
@pytest.mark.parametrize("to_numpy", [False, True])
def test_grouped_zero_point_quantize_matches_keras(shape, block_size, to_numpy):
    x = RNG.normal(size=shape).astype("float32")
    x[:, 0] = 0.3  # a constant column: Keras' two paths treat its empty range differently
    theirs = keras.quantizers.abs_max_quantize_grouped_with_zero_point(
        x, block_size, to_numpy=to_numpy)
    ours = quantizers.abs_max_quantize_grouped_with_zero_point(
        torch.as_tensor(x), block_size, to_numpy=to_numpy)
    for got, expected in zip(ours, theirs):
        assert got.numpy().dtype == _np(expected).dtype
        np.testing.assert_allclose(got.numpy(), _np(expected), rtol=1e-6)


@pytest.mark.parametrize("case", ["tensor", "channels_narrow"])
def test_fake_quant_values_and_gradients_match_keras(case):
    shape, axis, bits, narrow = ((4, 6), None, 8, False) if case == "tensor" \
        else ((3, 4, 6), -1, 4, True)
    x = (RNG.normal(size=shape) * 1.5).astype("float32")
    low = np.float32(-1.0) if axis is None else (RNG.normal(size=6) - 1).astype("float32")
    high = np.float32(1.5) if axis is None else (RNG.normal(size=6) + 1).astype("float32")
    upstream = torch.as_tensor(RNG.normal(size=shape).astype("float32"))
    results = []
    for fn in (keras.quantizers.fake_quant_with_min_max_vars,
               quantizers.fake_quant_with_min_max_vars):
        args = [torch.tensor(v, requires_grad=True) for v in (x, low, high)]
        y = fn(*args, num_bits=bits, narrow_range=narrow, axis=axis)
        (y * upstream).sum().backward()
        results.append([_np(y)] + [a.grad.numpy() for a in args])
    for got, expected in zip(results[1], results[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert results[1][2].any() and results[1][3].any()  # values were clipped on both sides


def test_fake_quant_on_a_middle_axis_quantizes_each_channel():
    x = torch.tensor([[[0.2, 3.0]], [[0.2, 3.0]]])  # (2, 1, 2); channels on axis 0
    y = quantizers.fake_quant_with_min_max_vars(x, torch.tensor([0.0, 0.0]),
                                                torch.tensor([1.0, 0.1]), axis=0)
    np.testing.assert_allclose(y[:, 0, 1].numpy(), [1.0, 0.1], rtol=1e-6)


X = RNG.normal(size=(4, 3, 20)).astype("float32")
IDS = RNG.integers(0, 10, size=(4, 3)).astype("int32")
INT4_LAYERS = {"dense": (lambda m: m.layers.Dense(7, activation="relu"), X),
               "embedding": (lambda m: m.layers.Embedding(10, 21), IDS)}


@pytest.mark.parametrize("key", sorted(INT4_LAYERS))
@pytest.mark.parametrize("block_size", ["default", 8, None])
def test_quantize_int4_matches_keras_variables_and_outputs(key, block_size):
    make, x = INT4_LAYERS[key]
    theirs, ours = make(keras), make(kestrel)
    theirs(x)
    ours(torch.as_tensor(x))
    ours.set_weights(theirs.get_weights())
    if block_size == "default":
        theirs.quantize("int4")
        ours.quantize("int4")
    else:
        theirs.quantize("int4", config=keras.quantizers.Int4QuantizationConfig(
            block_size=block_size))
        ours.quantize("int4", config=quantizers.Int4QuantizationConfig(block_size=block_size))
    assert ours.dtype_policy == theirs.dtype_policy.name
    expected, got = [w.numpy() for w in theirs.weights], ours.get_weights()
    assert [(w.shape, w.dtype) for w in got] == [(w.shape, w.dtype) for w in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(_np(ours(torch.as_tensor(x))), _np(theirs(x)), rtol=1e-6,
                               atol=1e-6)


def _model(lib):
    inputs = lib.Input((3,), dtype="int32")
    x = lib.layers.Embedding(10, 20)(inputs)
    x = lib.layers.Dense(5, activation="tanh")(x)
    return lib.Model(inputs, lib.layers.Dense(3)(x))


def test_keras_int4_files_load_in_kestrel_and_back(tmp_path):
    theirs = _model(keras)
    theirs.quantize("int4", config=keras.quantizers.Int4QuantizationConfig(block_size=8))
    expected = _np(theirs(IDS))
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    loaded = kestrel.saving.load_model(tmp_path / "k.keras")
    assert [layer.dtype_policy for layer in loaded.layers][1:] == ["int4/8_from_float32"] * 3
    np.testing.assert_allclose(_np(loaded(torch.as_tensor(IDS))), expected, rtol=1e-5,
                               atol=1e-6)
    ours = _model(kestrel)
    ours.quantize("int4", config=quantizers.Int4QuantizationConfig(block_size=8))
    ours.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(_np(ours(torch.as_tensor(IDS))), expected, rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "o.keras")
    ours.save_weights(tmp_path / "o.weights.h5")
    np.testing.assert_allclose(_np(keras.saving.load_model(tmp_path / "o.keras")(IDS)),
                               expected, rtol=1e-5, atol=1e-6)
    fresh = _model(keras)
    fresh.quantize("int4", config=keras.quantizers.Int4QuantizationConfig(block_size=8))
    fresh.load_weights(tmp_path / "o.weights.h5")
    np.testing.assert_allclose(_np(fresh(IDS)), expected, rtol=1e-5, atol=1e-6)


CONFIGS = [lambda q: q.Int8QuantizationConfig(), lambda q: q.Int4QuantizationConfig(),
           lambda q: q.Int4QuantizationConfig(
               weight_quantizer=q.AbsMaxQuantizer(axis=0, value_range=(-8, 7)), block_size=None),
           lambda q: q.Float8QuantizationConfig(),
           lambda q: q.GPTQConfig(None, None, weight_bits=3, group_size=64),
           lambda q: q.AWQConfig(None, None, num_grid_points=5)]


@pytest.mark.parametrize("make", CONFIGS)
def test_quantization_configs_serialize_as_keras(make):
    import json

    from keras.src.saving import serialization_lib

    theirs = json.loads(json.dumps(serialization_lib.serialize_keras_object(make(
        keras.quantizers))))
    ours = json.loads(json.dumps(quantizers.serialize(make(quantizers))))
    assert ours == theirs
    rebuilt = quantizers.deserialize(theirs)
    assert rebuilt.mode == make(keras.quantizers).mode
    assert json.loads(json.dumps(quantizers.serialize(rebuilt))) == theirs


@pytest.mark.parametrize("name", ["int4/128_from_float32", "int4/-1_from_mixed_bfloat16",
                                  "int4_from_float32", "gptq/4/128_from_float32",
                                  "awq/4/-1_from_bfloat16"])
def test_new_quantized_policies_match_keras(name):
    theirs, ours = keras.dtype_policies.get(name), dtype_policies.get(name)
    assert (type(ours).__name__, ours.name, ours.quantization_mode, ours.compute_dtype) == (
        type(theirs).__name__, theirs.name, theirs.quantization_mode, theirs.compute_dtype)
    assert dtype_policies.serialize(ours) == keras.dtype_policies.serialize(theirs)
    assert dtype_policies.deserialize(dtype_policies.serialize(ours)) == ours


@pytest.mark.parametrize("name, text", [
    ("int4/0_from_float32", "Invalid block_size in mode"),
    ("gptq/5/1_from_float32", "Invalid weight_bits in mode"),
    ("awq/3/8_from_float32", "but got 3 from 'awq/3/8'"),
    ("int4/x_from_float32", "Invalid mode for Int4DTypePolicy")])
def test_bad_parameterized_policies_are_refused(name, text):
    with pytest.raises(ValueError, match=text):
        dtype_policies.get(name)


def test_config_errors_as_keras():
    with pytest.raises(ValueError, match="does not support custom quantizers"):
        quantizers.Int4QuantizationConfig(weight_quantizer=quantizers.AbsMaxQuantizer(
            value_range=(-8, 7)))
    with pytest.raises(ValueError, match=r"value_range=\(-8, 7\)"):
        quantizers.Int4QuantizationConfig(weight_quantizer=quantizers.AbsMaxQuantizer(),
                                          block_size=None)
    with pytest.raises(ValueError, match="Supported values are 2, 3, 4, and 8"):
        quantizers.GPTQConfig(None, None, weight_bits=5)
    layer = kestrel.layers.Dense(2)
    layer(torch.ones(1, 3))
    with pytest.raises(ValueError, match="Contradictory arguments: mode='int8'"):
        layer.quantize("int8", config=quantizers.Int4QuantizationConfig())
    with pytest.raises(ValueError, match="you must pass a `GPTQConfig`"):
        layer.quantize("gptq")


def test_gptq_and_awq_raise_not_implemented_naming_calibration():
    model = _model(kestrel)
    for config in (quantizers.GPTQConfig(None, None), quantizers.AWQConfig(None, None)):
        with pytest.raises(NotImplementedError, match=f"'{config.mode}' needs .*calibration"):
            model.quantize(config=config)
    assert model.layers[1].quantization_mode is None


def test_int8_config_with_default_quantizers_quantizes():
    layer = kestrel.layers.Dense(2)
    layer(torch.ones(1, 3))
    layer.quantize(config=quantizers.Int8QuantizationConfig())
    assert isinstance(layer.inputs_quantizer, quantizers.AbsMaxQuantizer)
    assert layer.dtype_policy == "int8_from_float32"
    assert layer.get_config()["quantization_config"]["class_name"] == "Int8QuantizationConfig"
