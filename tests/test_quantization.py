"""Quantized dtype policies, DTypePolicyMap, kestrel.quantizers and `quantize("int8")`,
compared with real Keras 3 (torch backend) on the same weights and inputs."""
import os
import re
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402

import kestrel  # noqa: E402
from kestrel import dtype_policies  # noqa: E402

RNG = np.random.default_rng(7)
X3 = RNG.normal(size=(4, 3, 5)).astype("float32")
IDS = RNG.integers(0, 10, size=(4, 3)).astype("int32")
LAYERS = {  # name: (constructor args for both libraries, input)
    "dense": (lambda m: m.layers.Dense(6, activation="relu"), X3),
    "einsum_bias": (lambda m: m.layers.EinsumDense("abc,cde->abde", (3, 2, 4),
                                                   bias_axes="de"), X3),
    "einsum_two_reduced": (lambda m: m.layers.EinsumDense("abc,bcd->ad", 4), X3),
    "einsum_kernel_last": (lambda m: m.layers.EinsumDense("abc,cdb->adb", (2, 3)), X3),
    "embedding": (lambda m: m.layers.Embedding(10, 6), IDS),
}


def _quantized_pair(key):
    make, x = LAYERS[key]
    theirs, ours = make(keras), make(kestrel)
    theirs(x)
    ours(torch.as_tensor(x))
    ours.set_weights(theirs.get_weights())
    theirs.quantize("int8")
    ours.quantize("int8")
    return theirs, ours, x


def _keras_out(model, x):
    return keras.ops.convert_to_numpy(model(x))


@pytest.mark.parametrize("key", sorted(LAYERS))
def test_quantize_int8_matches_keras_weights_and_outputs(key):
    theirs, ours, x = _quantized_pair(key)
    assert ours.dtype_policy == theirs.dtype_policy.name == "int8_from_float32"
    assert ours.quantization_mode == "int8"
    expected = [w.numpy() for w in theirs.weights]
    got = ours.get_weights()
    assert [(w.shape, w.dtype) for w in got] == [(w.shape, w.dtype) for w in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours(torch.as_tensor(x)).detach().numpy(), _keras_out(theirs, x),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("key", ["dense", "einsum_bias"])
def test_int8_input_gradient_uses_the_dequantized_kernel_as_keras(key):
    theirs, ours, x = _quantized_pair(key)
    grads = []
    for layer in (theirs, ours):
        inputs = torch.tensor(x, requires_grad=True)
        (layer(inputs) ** 2).sum().backward()
        grads.append(inputs.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-5)


def test_trainable_state_after_quantize_matches_keras():
    theirs, ours, _ = _quantized_pair("dense")
    names = lambda ws: [w.path.split("/")[-1] for w in ws]  # noqa: E731
    assert names(ours.trainable_weights) == names(theirs.trainable_weights) == ["bias"]
    assert names(ours.non_trainable_weights) == names(theirs.non_trainable_weights) \
        == ["kernel", "kernel_scale"]
    assert ours.kernel.dtype == torch.int8 and not ours.kernel.requires_grad


def test_fit_after_quantize_updates_the_bias_only():
    model = kestrel.Sequential([kestrel.Input((5,)), kestrel.layers.Dense(3)])
    model.quantize("int8")
    kernel, bias = model.layers[0].get_weights()[1].copy(), model.layers[0].bias.numpy().copy()
    model.compile("sgd", "mse")
    model.fit(RNG.normal(size=(16, 5)).astype("float32"), np.ones((16, 3), "float32"),
              epochs=2, verbose=0)
    layer = model.layers[0]
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)
    assert not np.allclose(layer.bias.numpy(), bias)


def test_quantized_config_round_trip_builds_int8_weights():
    _, ours, x = _quantized_pair("einsum_bias")
    config = ours.get_config()
    assert config["dtype"] == {"module": "keras.dtype_policies",
                               "class_name": "QuantizedDTypePolicy",
                               "config": {"mode": "int8", "source_name": "float32"},
                               "registered_name": None}
    clone = kestrel.layers.EinsumDense.from_config(config)
    clone(torch.as_tensor(x))
    assert clone.dtype_policy == "int8_from_float32" and clone.kernel.dtype == torch.int8
    clone.set_weights(ours.get_weights())
    torch.testing.assert_close(clone(torch.as_tensor(x)), ours(torch.as_tensor(x)))
    theirs = keras.layers.EinsumDense.from_config(config)
    theirs(x)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(_keras_out(theirs, x), ours(torch.as_tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_float_forward_is_untouched_until_quantize():
    layer = kestrel.layers.Dense(2)
    assert "call" not in vars(layer)
    layer(torch.ones(1, 3))
    layer.quantize("int8")
    assert "call" in vars(layer)


def _models(lib):
    inputs = lib.Input((3,), dtype="int32")
    h = lib.layers.Embedding(10, 6)(inputs)
    h = lib.layers.EinsumDense("abc,cd->abd", (3, 5), bias_axes="d")(h)
    h = lib.layers.Flatten()(h)
    return lib.Model(inputs, lib.layers.Dense(4, activation="relu")(h))


def test_keras_quantized_files_load_in_kestrel_and_back(tmp_path):
    theirs = _models(keras)
    theirs.quantize("int8")
    expected = _keras_out(theirs, IDS)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")

    loaded = kestrel.saving.load_model(tmp_path / "k.keras")
    assert [l.dtype_policy for l in loaded.layers][1:3] == ["int8_from_float32"] * 2
    np.testing.assert_allclose(loaded(torch.as_tensor(IDS)).detach().numpy(), expected,
                               rtol=1e-5, atol=1e-6)
    ours = _models(kestrel)
    ours.quantize("int8")
    ours.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(ours(torch.as_tensor(IDS)).detach().numpy(), expected,
                               rtol=1e-5, atol=1e-6)

    ours.save(tmp_path / "o.keras")
    ours.save_weights(tmp_path / "o.weights.h5")
    back = keras.saving.load_model(tmp_path / "o.keras")
    np.testing.assert_allclose(_keras_out(back, IDS), expected, rtol=1e-5, atol=1e-6)
    fresh = _models(keras)
    fresh.quantize("int8")
    fresh.load_weights(tmp_path / "o.weights.h5")
    np.testing.assert_allclose(_keras_out(fresh, IDS), expected, rtol=1e-5, atol=1e-6)


def test_model_quantize_skips_layers_without_quantization_with_a_warning():
    model = kestrel.Sequential([kestrel.Input((4, 4, 2)), kestrel.layers.Conv2D(2, 3),
                                kestrel.layers.Flatten(), kestrel.layers.Dense(3)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.quantize("int8", filters=["conv", "dense"])
    assert any("Conv2D does not have a `quantize` method" in str(w.message) for w in caught)
    assert [l.dtype_policy for l in model.layers] == ["float32", "float32", "int8_from_float32"]


def test_model_quantize_filters_pick_layers_by_name():
    model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(3, name="keep"),
                                kestrel.layers.Dense(2, name="q")])
    model.quantize("int8", filters="^q$")
    assert [l.dtype_policy for l in model.layers] == ["float32", "int8_from_float32"]


@pytest.mark.parametrize("case", ["unbuilt", "mode", "twice", "other_layer", "float16",
                                  "subclass"])
def test_quantize_errors_as_keras(case):
    class MyDense(kestrel.layers.Dense):
        pass

    layer = {"other_layer": kestrel.layers.Conv1D(2, 1), "subclass": MyDense(2),
             "float16": kestrel.layers.Dense(2, dtype="mixed_float16")}.get(
        case, kestrel.layers.Dense(2))
    if case != "unbuilt":
        layer(torch.ones(1, 3, 3))
    if case == "twice":
        layer.quantize("int8")
    error, text = {
        "unbuilt": (ValueError, "Cannot quantize a layer that isn't yet built. Layer 'dense"),
        "mode": (ValueError, "Invalid quantization mode. Expected one of ('int8', 'float8', "
                             "'int4', 'gptq', 'awq'). Received: mode=int7"),
        "twice": (ValueError, "is already quantized with dtype_policy='int8_from_float32'"),
        "other_layer": (NotImplementedError, "Layer Conv1D does not have a `quantize` method"),
        "float16": (ValueError, "doesn't work well with compute_dtype='float16'"),
        "subclass": (NotImplementedError, "Layer MyDense does not have a `quantize` method"),
    }[case]
    with pytest.raises(error, match=None) as raised:
        layer.quantize("int7" if case == "mode" else "int8")
    assert text in str(raised.value)


@pytest.mark.parametrize("layer, mode, modes", [
    (kestrel.layers.Embedding(4, 2), "float8", "('int8', 'int4')")])
def test_modes_kestrel_does_not_run_are_named(layer, mode, modes):
    layer(torch.ones(1, 3, dtype=torch.int64 if "Embedding" in repr(layer) else torch.float32))
    with pytest.raises(NotImplementedError, match=rf"modes {re.escape(modes)} for this layer. "
                                                  rf"Received: mode={mode}"):
        layer.quantize(mode)


def _float8_models(lib):
    return [lib.Sequential([lib.Input((5,)), lib.layers.Dense(3, activation="tanh")]),
            lib.Sequential([lib.Input((5,)),
                            lib.layers.EinsumDense("ab,bc->ac", 3, bias_axes="c")])]


def test_float8_forward_and_delayed_scaling_training_match_keras(tmp_path):
    x, y = RNG.normal(size=(8, 5)).astype("float32"), RNG.normal(size=(8, 3)).astype("float32")
    for theirs, ours in zip(_float8_models(keras), _float8_models(kestrel)):
        ours.set_weights(theirs.get_weights())
        theirs.quantize("float8")
        ours.quantize("float8")
        layer = ours.layers[0]
        assert layer.dtype_policy == "float8_from_float32"
        assert [w.path.split("/")[-1] for w in layer.weights] == [
            w.path.split("/")[-1] for w in theirs.layers[0].weights]
        np.testing.assert_array_equal(ours(torch.as_tensor(x)).detach().numpy(),
                                      _keras_out(theirs, x))
        theirs.compile(keras.optimizers.SGD(0.1), "mse")
        ours.compile(kestrel.optimizers.SGD(0.1), "mse")
        for _ in range(2):  # the second step uses the scales the first one recorded
            for model in (theirs, ours):
                model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        for a, b in zip(layer.get_weights(), theirs.layers[0].weights):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-6, atol=1e-9)
        assert float(layer.inputs_scale) != 1.0
        ours.save(tmp_path / "f8.keras")
        back = keras.saving.load_model(tmp_path / "f8.keras")
        assert back.layers[0].dtype_policy.amax_history_length == 1024
        np.testing.assert_allclose(_keras_out(back, x), _keras_out(theirs, x), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("name", ["int8_from_float32", "int8_from_mixed_bfloat16",
                                  "float8_from_float32", "int4_from_bfloat16"])
def test_quantized_policies_match_keras(name):
    ours, theirs = dtype_policies.get(name), keras.dtype_policies.get(name)
    assert type(ours).__name__ == type(theirs).__name__
    assert (ours.name, ours.compute_dtype, ours.variable_dtype, ours.quantization_mode) == (
        theirs.name, theirs.compute_dtype, theirs.variable_dtype, theirs.quantization_mode)
    assert dtype_policies.serialize(ours) == keras.dtype_policies.serialize(theirs)
    assert dtype_policies.deserialize(dtype_policies.serialize(ours)) == ours


@pytest.mark.parametrize("bad", ["int8_float32", "int8_from_float16", "int8_from_bogus"])
def test_bad_quantized_policy_names_fail_as_keras(bad):
    with pytest.raises(ValueError) as ours:
        dtype_policies.get(bad)
    with pytest.raises(ValueError) as theirs:
        keras.dtype_policies.get(bad)
    assert str(ours.value) == str(theirs.value)


def _policy_map(lib):
    policies = lib.dtype_policies.DTypePolicyMap(default_policy="bfloat16")
    policies["dense"] = "int8_from_float32"
    policies["encoder/.*"] = lib.dtype_policies.DTypePolicy("float16")
    return policies


def test_dtype_policy_map_lookup_and_config_match_keras():
    ours, theirs = _policy_map(kestrel), _policy_map(keras)
    for path in ("dense", "encoder/query", "decoder"):
        assert ours[path].name == theirs[path].name
    assert (ours.name, ours.compute_dtype, len(ours)) == (theirs.name, theirs.compute_dtype, 2)
    assert dtype_policies.serialize(ours) == keras.dtype_policies.serialize(theirs)
    rebuilt = dtype_policies.deserialize(keras.dtype_policies.serialize(theirs))
    assert rebuilt == ours and rebuilt["encoder/key"].name == "float16"
    ours["enc.*"] = "float32"
    with pytest.raises(ValueError, match="matches multiple dtype policy"):
        ours["encoder/key"]
    with pytest.raises(ValueError, match="already exist"):
        ours["dense"] = "float32"


def test_dtype_policy_map_as_layer_dtype():
    policies = _policy_map(kestrel)
    quantized = kestrel.layers.Dense(2, dtype=policies, name="dense")
    plain = kestrel.layers.Dense(2, dtype=policies, name="other")
    for layer in (quantized, plain):
        layer(torch.ones(1, 3, dtype=layer._variable_dtype))
    assert quantized.dtype_policy == "int8_from_float32" and quantized.kernel.dtype == torch.int8
    assert plain.compute_dtype == "bfloat16" and plain.kernel.dtype == torch.bfloat16
    assert plain.dtype_policy is policies  # the map itself, as Keras


def test_quantizers_functions_match_keras():
    x = RNG.normal(size=(3, 4)).astype("float32")
    for axis in (0, -1, (0, 1)):
        ours = kestrel.quantizers.abs_max_quantize(torch.as_tensor(x), axis)
        theirs = keras.quantizers.abs_max_quantize(x, axis)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.numpy(), keras.ops.convert_to_numpy(b))
    q, s = kestrel.quantizers.AbsMaxQuantizer(axis=0, value_range=(-8, 7))(torch.as_tensor(x))
    kq, ks = keras.quantizers.AbsMaxQuantizer(axis=0, value_range=(-8, 7))(x)
    np.testing.assert_array_equal(q.numpy(), keras.ops.convert_to_numpy(kq))
    scale = np.float32(0.05)
    np.testing.assert_array_equal(
        kestrel.quantizers.quantize_and_dequantize(torch.as_tensor(x), scale, "float8_e4m3fn",
                                                   "float32").numpy(),
        keras.ops.convert_to_numpy(keras.quantizers.quantize_and_dequantize(
            x, scale, "float8_e4m3fn", "float32")))
    amax = np.array([0.0, 2.0, np.inf], "float32")
    np.testing.assert_allclose(
        kestrel.quantizers.compute_float8_scale(torch.as_tensor(amax), torch.tensor(0.5),
                                                448.0, margin=1).numpy(),
        keras.ops.convert_to_numpy(keras.quantizers.compute_float8_scale(amax, 0.5, 448.0, 1)))
    history = np.arange(4, dtype="float32")
    np.testing.assert_array_equal(
        kestrel.quantizers.compute_float8_amax_history(torch.as_tensor(x),
                                                       torch.as_tensor(history)).numpy(),
        keras.ops.convert_to_numpy(keras.quantizers.compute_float8_amax_history(x, history)))


def test_quantizer_serialization_matches_keras():
    ours = kestrel.quantizers.AbsMaxQuantizer(axis=-1)
    theirs = keras.quantizers.AbsMaxQuantizer(axis=-1)
    assert kestrel.quantizers.serialize(ours) == keras.quantizers.serialize(theirs)
    again = kestrel.quantizers.deserialize(keras.quantizers.serialize(theirs))
    assert isinstance(again, kestrel.quantizers.AbsMaxQuantizer) and again.axis == (-1,)
    assert isinstance(kestrel.quantizers.get("abs_max_quantizer"),
                      kestrel.quantizers.AbsMaxQuantizer)
    with pytest.raises(ValueError, match="value_range"):
        kestrel.quantizers.AbsMaxQuantizer(value_range=(-200, 127))


@pytest.mark.parametrize("make", [lambda m: m.layers.Dense(3, dtype="mixed_bfloat16"),
                                  lambda m: m.layers.Embedding(10, 3, dtype="mixed_bfloat16")])
def test_quantized_mixed_bfloat16_outputs_in_the_compute_dtype_as_keras(make):
    x = IDS if "Embedding" in repr(make(kestrel)) else X3
    theirs, ours = make(keras), make(kestrel)
    theirs(x)
    ours(torch.as_tensor(x))
    theirs.quantize("int8")
    ours.quantize("int8")
    assert ours.dtype_policy == theirs.dtype_policy.name == "int8_from_mixed_bfloat16"
    assert ours(torch.as_tensor(x)).dtype == theirs(x).dtype == torch.bfloat16


def test_quantized_first_layer_of_a_sequential_from_its_dtype():
    model = kestrel.Sequential([kestrel.layers.Dense(3, input_shape=(4,),
                                                     dtype="int8_from_float32")])
    assert model.layers[0].kernel.dtype == torch.int8
    assert model(torch.ones(2, 4)).shape == (2, 3)


def test_any_layer_takes_a_policy_map_default():
    from kestrel.dtype_policies import DTypePolicyMap, serialize

    policies = DTypePolicyMap(default_policy="float64")
    conv = kestrel.layers.Conv1D(2, 3, dtype=policies)
    assert conv(torch.ones(1, 5, 2, dtype=torch.float64)).dtype == torch.float64
    assert kestrel.layers.Conv1D(2, 3, dtype=serialize(policies)).compute_dtype == "float64"
