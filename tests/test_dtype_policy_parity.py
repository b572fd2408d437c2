"""`layer.dtype_policy`, `keras.DTypePolicy`, `keras.mixed_precision` and the Variable API
users touch, built the same way in real Keras 3 (torch backend) and in Kestrel."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402

import kestrel  # noqa: E402

LIBS = pytest.mark.parametrize("lib", [keras, kestrel], ids=["keras", "kestrel"])


def _policy_facts(policy):
    return (repr(policy), policy.name, policy.compute_dtype, policy.variable_dtype,
            policy.quantization_mode)


def _both(build):
    """`build(lib)` with Keras and with Kestrel."""
    return build(keras), build(kestrel)


@pytest.mark.parametrize("dtype", [None, "mixed_float16", "bfloat16", "int32",
                                   {"class_name": "DTypePolicy", "config": {"name": "float64"}}])
def test_layer_dtype_policy_is_a_policy_object(dtype):
    theirs, ours = _both(lambda lib: lib.layers.Dense(3, dtype=dtype))
    assert type(ours.dtype_policy).__name__ == type(theirs.dtype_policy).__name__
    assert _policy_facts(ours.dtype_policy) == _policy_facts(theirs.dtype_policy)
    assert (ours.compute_dtype, ours.variable_dtype, ours.dtype) == \
        (theirs.compute_dtype, theirs.variable_dtype, theirs.dtype)
    assert ours.get_config()["dtype"] == theirs.get_config()["dtype"]


def test_policy_object_argument_and_string_comparison():
    ours = kestrel.layers.Dense(2, dtype=kestrel.DTypePolicy("mixed_bfloat16"))
    theirs = keras.layers.Dense(2, dtype=keras.DTypePolicy("mixed_bfloat16"))
    assert repr(ours.dtype_policy) == repr(theirs.dtype_policy) == '<DTypePolicy "mixed_bfloat16">'
    # Kestrel extension (Keras says False): a policy equals its name, so code comparing
    # `layer.dtype_policy == "mixed_float16"` keeps working
    assert ours.dtype_policy == "mixed_bfloat16" and ours.dtype_policy != "float32"
    assert (kestrel.FloatDTypePolicy("float32") == kestrel.DTypePolicy("float32")) == \
        (keras.FloatDTypePolicy("float32") == keras.DTypePolicy("float32")) is True


@LIBS
def test_dtype_policy_setter_before_build(lib):
    layer = lib.layers.Dense(3)
    layer.dtype_policy = "mixed_float16"
    y = layer(np.ones((1, 2), "float32"))
    assert repr(layer.dtype_policy) == '<DTypePolicy "mixed_float16">'
    assert (layer.compute_dtype, layer.variable_dtype) == ("float16", "float32")
    assert layer.kernel.dtype in ("float32", torch.float32)
    assert str(y.dtype) == "torch.float16"
    assert layer.get_config()["dtype"]["config"] == {"name": "mixed_float16"}


def test_quantized_policy_setter_and_quantize_give_quantized_policies():
    def build(lib):
        set_layer, quantized = lib.layers.Dense(3), lib.layers.Dense(3)
        for layer in (set_layer, quantized):
            layer.build((None, 2))
        set_layer.dtype_policy = "int8_from_float32"
        quantized.quantize("int8")
        return [(_policy_facts(l.dtype_policy), l.quantization_mode,
                 l.get_config()["dtype"]) for l in (set_layer, quantized)]

    theirs, ours = _both(build)
    assert ours == theirs
    with pytest.raises(NotImplementedError, match="Received: dtype_policy='int8_from_float32'"):
        kestrel.layers.Flatten().dtype_policy = "int8_from_float32"


def test_model_and_sequential_dtype_policy():
    def build(lib):
        x = lib.Input((2,))
        model = lib.Model(x, lib.layers.Dense(3)(x))
        stack = lib.Sequential([lib.Input((2,)), lib.layers.Dense(2)])
        return (_policy_facts(model.dtype_policy), _policy_facts(stack.dtype_policy),
                stack.get_config()["dtype"])

    theirs, ours = _both(build)
    assert ours == theirs


def test_policy_map_on_a_layer_resolves_by_path_at_build():
    def build(lib):
        policies = lib.dtype_policies.DTypePolicyMap(default_policy="float32")
        policies["norm"] = "bfloat16"
        layer = lib.layers.LayerNormalization(dtype=policies, name="norm")
        before = (type(layer.dtype_policy).__name__, layer.compute_dtype)
        y = layer(np.ones((1, 4), "float32"))
        config = layer.get_config()["dtype"]
        return before, (layer.compute_dtype, layer.variable_dtype, str(y.dtype),
                        config["class_name"], config["config"]["default_policy"])

    theirs, ours = _both(build)
    assert ours == theirs


def test_policy_constructor_errors_and_round_trips():
    for lib in (keras, kestrel):
        with pytest.raises(ValueError, match="Cannot convert 'foo' to a mixed precision"):
            lib.DTypePolicy("foo")
        with pytest.raises(TypeError, match="'name' must be a string"):
            lib.DTypePolicy(3)
        with pytest.raises(ValueError, match="Cannot interpret `dtype` argument"):
            lib.dtype_policies.get(3.5)
    policy = kestrel.DTypePolicy.from_config({"name": "float16"})
    assert _policy_facts(policy) == _policy_facts(keras.DTypePolicy.from_config({"name": "float16"}))
    assert _policy_facts(kestrel.DTypePolicy("int32")) == _policy_facts(keras.DTypePolicy("int32"))
    config = keras.dtype_policies.serialize(keras.DTypePolicy("mixed_float16"))
    assert kestrel.dtype_policies.serialize(kestrel.dtype_policies.deserialize(config)) == config


def test_global_policy_is_a_policy_object():
    def build(lib):
        mp = lib.mixed_precision
        mp.set_global_policy(lib.DTypePolicy("mixed_bfloat16"))
        try:
            facts = (_policy_facts(mp.global_policy()), _policy_facts(lib.config.dtype_policy()),
                     _policy_facts(lib.layers.Dense(2).dtype_policy))
            lib.config.set_dtype_policy("int8_from_float32")
            facts += (_policy_facts(mp.global_policy()),)
        finally:
            mp.set_global_policy("float32")
        return facts + (_policy_facts(mp.global_policy()),)

    theirs, ours = _both(build)
    assert ours == theirs
    with pytest.raises(ValueError, match="Invalid `policy` argument"):
        kestrel.mixed_precision.set_global_policy(3)


@LIBS
def test_variable_api(lib):
    v = lib.Variable(np.ones((2, 3), "float32"), name="v")
    assert (v.name, v.path, tuple(v.shape), v.trainable) == ("v", "v", (2, 3), True)
    assert lib.backend.standardize_dtype(v.dtype) == "float32"
    v.assign(np.zeros((2, 3)))
    v.assign_add(np.full((2, 3), 3.0))
    v.assign_sub(np.ones((2, 3)))
    np.testing.assert_array_equal(v.numpy(), np.full((2, 3), 2.0, "float32"))
    np.testing.assert_array_equal(np.array(v), lib.ops.convert_to_numpy(v))
    np.testing.assert_array_equal(lib.ops.convert_to_numpy(v * 2 + 1), np.full((2, 3), 5.0))
    left = np.ones((2, 3), "float32")
    assert type(left + v) is type(left * v) is np.ndarray  # NumPy on the left computes there
    np.testing.assert_array_equal(left - v, np.full((2, 3), -1.0))
    assert repr(v).startswith("<Variable path=v, shape=(2, 3), dtype=float32, value=")
    with pytest.raises(ValueError, match="must match"):
        v.assign(np.zeros((3, 3)))


@LIBS
def test_variable_construction_arguments(lib):
    from_function = lib.Variable(lambda shape, dtype: np.ones(shape), shape=(2,), dtype="float16")
    assert lib.backend.standardize_dtype(from_function.dtype) == "float16"
    np.testing.assert_array_equal(from_function.numpy(), np.ones(2, "float16"))
    frozen = lib.Variable("zeros", shape=(2,), trainable=False, aggregation="sum",
                          synchronization="on_read")
    assert (frozen.trainable, frozen.aggregation, frozen.synchronization) == \
        (False, "sum", "on_read")
    with pytest.raises(ValueError, match="Invalid value for argument `aggregation`"):
        lib.Variable(1.0, aggregation="foo")
    with pytest.raises(ValueError, match="Invalid dtype: mixed_float16"):
        lib.Variable(1.0, dtype="mixed_float16")
    with pytest.raises(ValueError, match="the `shape` argument should be specified"):
        lib.Variable(lib.initializers.Ones())


def test_loss_scale_optimizer_matches_keras():
    def build(lib):
        opt = lib.mixed_precision.LossScaleOptimizer(lib.optimizers.Adam(1e-3),
                                                     initial_scale=128.0)
        scaled = opt.scale_loss(lib.ops.convert_to_tensor(2.0))
        return (type(opt.inner_optimizer).__name__, float(lib.ops.convert_to_numpy(scaled)),
                opt.initial_scale, opt.dynamic_growth_steps)

    theirs, ours = _both(build)
    assert ours == theirs


def test_input_layer_keeps_the_global_policy_and_its_own_dtype():
    def build(lib):
        layer = lib.Input((2,), dtype="int32")._keras_history[0]
        return _policy_facts(layer.dtype_policy), layer.dtype, layer.get_config()["dtype"]

    theirs, ours = _both(build)
    assert ours == theirs


def test_float32_output_layer_of_a_mixed_model_casts_its_input():
    def build(lib):
        lib.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            x = lib.Input((4,))
            hidden = lib.layers.Activation("relu")(lib.layers.Dense(3)(x))
            out = lib.layers.Activation("softmax", dtype="float32")(hidden)
        finally:
            lib.mixed_precision.set_global_policy("float32")
        model = lib.Model(x, out)
        eager = model(np.ones((2, 4), "float32"))
        return (hidden.dtype, out.dtype, str(eager.dtype),
                model.predict(np.ones((2, 4), "float32"), verbose=0).dtype)

    theirs, ours = _both(build)
    assert ours == theirs == ("bfloat16", "float32", "torch.float32", np.float32)


@pytest.mark.parametrize("policy,given,expected", [("float32", "bfloat16", "float32"),
                                                   ("bfloat16", "float32", "bfloat16"),
                                                   ("float32", "int32", "int32")])
def test_layer_without_weights_casts_floating_inputs_to_its_compute_dtype(policy, given,
                                                                          expected):
    for lib in (keras, kestrel):
        layer = lib.layers.Activation("relu", dtype=policy)
        assert str(layer(lib.ops.ones((2,), dtype=given)).dtype) == f"torch.{expected}"


def test_symbolic_ops_keep_their_input_dtype():
    def build(lib):
        x = lib.Input((3,), dtype="float16")
        return (lib.ops.stop_gradient(x).dtype, (x * 2).dtype, x[:, 0].dtype,
                lib.layers.Activation("relu")(x).dtype)

    theirs, ours = _both(build)
    assert ours == theirs == ("float16", "float16", "float16", "float32")


def test_merging_layer_casts_each_floating_input():
    def build(lib):
        halves = [lib.ops.ones((2,), dtype="bfloat16"), lib.ops.ones((2,), dtype="bfloat16")]
        return (str(lib.layers.Add(dtype="float32")(halves).dtype),
                str(lib.layers.Concatenate(dtype="bfloat16")(
                    [lib.ops.ones((1, 2)), lib.ops.ones((1, 2))]).dtype))

    theirs, ours = _both(build)
    assert ours == theirs == ("torch.float32", "torch.bfloat16")
