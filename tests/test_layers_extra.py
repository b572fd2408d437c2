"""EinsumDense, GroupedQueryAttention, RMSNormalization, SpectralNormalization, adaptive pooling,
ReversibleEmbedding and layers.serialize, against real Keras 3 (torch backend)."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import doctest  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel.layers.attention import grouped_query_attention  # noqa: E402
from kestrel.layers.attention.grouped_query_attention import GroupedQueryAttention  # noqa: E402
from kestrel.layers.core import einsum_dense, reversible_embedding  # noqa: E402
from kestrel.layers.core.einsum_dense import EinsumDense, analyze_equation  # noqa: E402
from kestrel.layers.core.reversible_embedding import ReversibleEmbedding  # noqa: E402
from kestrel.layers.normalization import rms_normalization  # noqa: E402
from kestrel.layers.normalization.rms_normalization import RMSNormalization  # noqa: E402
from kestrel.layers.normalization import spectral_normalization  # noqa: E402
from kestrel.layers.normalization.spectral_normalization import (  # noqa: E402
    SpectralNormalization)
from kestrel.layers.pooling import adaptive_pooling  # noqa: E402
from kestrel.layers import serialization  # noqa: E402
from kestrel.layers.serialization import deserialize, serialize  # noqa: E402
from tests.layer_harness import run_layer_test  # noqa: E402

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.normal(size=shape).astype("float32")


def to_np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(to_np(a), to_np(b), rtol=tol, atol=tol)


def copy_weights(keras_layer, layer):
    layer.set_weights(keras_layer.get_weights())


# ------------------------------------------------------------------ EinsumDense
EINSUM_CASES = [
    ("ab,bc->ac", 4, "c", (2, 3)),
    ("abc,cde->abde", (None, 2, 4), "de", (2, 5, 3)),
    ("...b,bc->...c", 4, "c", (2, 5, 3)),
    ("ab...,bc->ac...", 4, "c", (2, 3, 5)),
    ("abc,cd->abd", (5, 4), "bd", (2, 5, 3)),
    ("ab,bcd->acd", (4, 5), None, (2, 3)),
]


@pytest.mark.parametrize("equation,output_shape,bias_axes,shape", EINSUM_CASES)
def test_einsum_dense_matches_keras(equation, output_shape, bias_axes, shape):
    x = rand(*shape)
    ref = keras.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes,
                                   bias_initializer="random_normal", activation="relu")
    expected = ref(x)
    layer = EinsumDense(equation, output_shape, bias_axes=bias_axes, activation="relu")
    layer(torch.tensor(x))
    assert [w.shape for w in layer.get_weights()] == [w.shape for w in ref.get_weights()]
    copy_weights(ref, layer)
    close(layer(torch.tensor(x)), expected)
    assert tuple(layer(torch.tensor(x)).shape) == tuple(expected.shape)


def test_einsum_dense_harness_and_config():
    run_layer_test(EinsumDense, {"equation": "abc,cde->abde", "output_shape": (None, 2, 4),
                                 "bias_axes": "de"}, input_shape=(2, 5, 3),
                   expected_output_shape=(2, 5, 2, 4), expected_num_trainable_weights=2)
    ours = EinsumDense("ab,bc->ac", 4, bias_axes="c").get_config()
    theirs = keras.layers.EinsumDense("ab,bc->ac", 4, bias_axes="c").get_config()
    assert set(ours) == set(theirs)
    assert ours["output_shape"] == [4] and ours["equation"] == "ab,bc->ac"


def test_einsum_dense_initializer_fans_and_errors():
    layer = EinsumDense("abc,cde->abde", (None, 2, 4), kernel_initializer="he_normal")
    layer(torch.ones(1, 5, 3))
    assert layer.kernel.shape == (3, 2, 4)  # fan_in = 3: std of he_normal ~ sqrt(2/3)
    with pytest.raises(ValueError, match="equation"):
        analyze_equation("ab->b", None, (2, 3), (3,))
    with pytest.raises(ValueError, match="bias dimension"):
        analyze_equation("ab,bc->ac", "z", (2, 3), (4,))
    with pytest.raises(ValueError, match="output_shape"):
        analyze_equation("abc,cd->abd", None, (2, 5, 3), (4,))
    with pytest.raises(ValueError, match="weight dimension"):
        analyze_equation("ab,bz->ab", None, (2, 3), (3,))


# ------------------------------------------------------------------ GroupedQueryAttention
def _gqa_pair(**kwargs):
    q, v = rand(2, 5, 8), rand(2, 6, 8)
    ref = keras.layers.GroupQueryAttention(4, 4, 2, bias_initializer="random_normal", **kwargs)
    ref(q, v)
    layer = GroupedQueryAttention(4, 4, 2, **kwargs)
    layer(torch.tensor(q), torch.tensor(v))
    copy_weights(ref, layer)
    return ref, layer, q, v


def test_gqa_weights_are_keras_shaped():
    ref, layer, _, _ = _gqa_pair(use_gate=True)
    assert [w.shape for w in layer.get_weights()] == [w.shape for w in ref.get_weights()]
    assert layer._query_dense.kernel.shape == (8, 4, 4)
    assert layer._key_dense.kernel.shape == (8, 2, 4)
    assert layer._output_dense.kernel.shape == (4, 4, 8)


@pytest.mark.parametrize("call_kwargs", [
    {}, {"use_causal_mask": True}, {"return_attention_scores": True},
    {"attention_mask": np.tril(np.ones((5, 6), bool))[None].repeat(2, 0)},
])
def test_gqa_matches_keras(call_kwargs):
    ref, layer, q, v = _gqa_pair()
    expected = ref(q, v, **call_kwargs)
    torch_kwargs = {k: torch.tensor(a) if isinstance(a, np.ndarray) else a
                    for k, a in call_kwargs.items()}
    got = layer(torch.tensor(q), torch.tensor(v), **torch_kwargs)
    for a, b in zip(keras.tree.flatten(got), keras.tree.flatten(expected)):
        close(a, b)


def test_gqa_gate_window_and_key_match_keras():
    ref, layer, q, v = _gqa_pair(use_gate=True, sliding_window=2)
    k = rand(2, 6, 8)
    close(layer(torch.tensor(q), torch.tensor(v), torch.tensor(k)), ref(q, v, k))


def test_gqa_config_errors_and_dropout():
    ours = GroupedQueryAttention(4, 4, 2).get_config()
    assert set(ours) == set(keras.layers.GroupQueryAttention(4, 4, 2).get_config())
    with pytest.raises(ValueError, match="divisible"):
        GroupedQueryAttention(4, 3, 2)
    layer = GroupedQueryAttention(4, 4, 2, dropout=0.5, seed=1)
    x = torch.ones(2, 5, 8)
    assert torch.equal(layer(x, x), layer(x, x))
    out = layer(x, x, training=True)
    assert out.shape == (2, 5, 8)


def _gqa_models():
    ki, kv = keras.Input((5, 8)), keras.Input((6, 8))
    k_model = keras.Model([ki, kv], keras.layers.GroupQueryAttention(
        4, 4, 2, bias_initializer="random_normal")(ki, kv))
    mi, mv = kestrel.Input((5, 8)), kestrel.Input((6, 8))
    m_model = kestrel.Model([mi, mv], GroupedQueryAttention(4, 4, 2)(mi, mv))
    return k_model, m_model


def test_gqa_and_einsum_dense_load_keras_weight_files(tmp_path):
    k_model, m_model = _gqa_models()
    k_model.save_weights(tmp_path / "gqa.weights.h5")
    m_model.load_weights(tmp_path / "gqa.weights.h5")
    q, v = rand(2, 5, 8), rand(2, 6, 8)
    close(m_model.predict([q, v], verbose=0), k_model.predict([q, v], verbose=0))

    inp = keras.Input((5, 3))
    k_dense = keras.Model(inp, keras.layers.EinsumDense(
        "abc,cde->abde", (None, 2, 4), bias_axes="de", bias_initializer="ones")(inp))
    k_dense.save_weights(tmp_path / "ed.weights.h5")
    m_in = kestrel.Input((5, 3))
    m_dense = kestrel.Model(m_in, EinsumDense("abc,cde->abde", (None, 2, 4),
                                              bias_axes="de")(m_in))
    m_dense.load_weights(tmp_path / "ed.weights.h5")
    x = rand(2, 5, 3)
    close(m_dense.predict(x, verbose=0), k_dense.predict(x, verbose=0))


def test_gqa_keras_file_loads_in_kestrel(tmp_path):
    k_model, _ = _gqa_models()
    k_model.save(tmp_path / "gqa.keras")
    loaded = kestrel.saving.load_model(tmp_path / "gqa.keras")
    q, v = rand(2, 5, 8), rand(2, 6, 8)
    close(loaded.predict([q, v], verbose=0), k_model.predict([q, v], verbose=0))


# ------------------------------------------------------------------ RMSNormalization
@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_rms_normalization_matches_keras(axis):
    x = rand(2, 3, 4)
    ref = keras.layers.RMSNormalization(axis=axis, epsilon=1e-3)
    ref.build(x.shape)
    ref.set_weights([rand(*w.shape) for w in ref.get_weights()])
    layer = RMSNormalization(axis=axis, epsilon=1e-3)
    layer(torch.tensor(x))
    copy_weights(ref, layer)
    close(layer(torch.tensor(x)), ref(x))
    assert layer.get_config()["axis"] == ref.get_config()["axis"]


def test_rms_normalization_harness():
    run_layer_test(RMSNormalization, {}, input_shape=(2, 3, 4), expected_output_shape=(2, 3, 4),
                   expected_num_trainable_weights=1)
    with pytest.raises(ValueError, match="axis"):
        RMSNormalization(axis=3)(torch.ones(2, 3))


# ------------------------------------------------------------------ SpectralNormalization
def test_spectral_normalization_matches_keras():
    x = rand(4, 3)
    ref = keras.layers.SpectralNormalization(keras.layers.Dense(5), power_iterations=2)
    ref(x)
    layer = SpectralNormalization(kestrel.layers.Dense(5), power_iterations=2)
    layer(torch.tensor(x))
    by_name = {w.path.split("/")[-1]: w.numpy() for w in ref.weights}
    layer.layer.set_weights([by_name["kernel"], by_name["bias"]])
    layer.vector_u.copy_(torch.tensor(by_name["vector_u"]))
    close(layer(torch.tensor(x)), ref(x))  # inference: the kernel as it is
    close(layer(torch.tensor(x), training=True), ref(x, training=True))
    close(layer.vector_u, ref.vector_u.numpy())
    close(layer.layer.kernel, ref.layer.kernel.numpy())
    assert set(layer.get_config()) == set(ref.get_config())


def test_spectral_normalization_weights_file_and_errors(tmp_path):
    inp = keras.Input((3,))
    k_model = keras.Model(inp, keras.layers.SpectralNormalization(
        keras.layers.Dense(4, bias_initializer="ones"))(inp))
    k_model.save_weights(tmp_path / "sn.weights.h5")
    m_in = kestrel.Input((3,))
    m_model = kestrel.Model(m_in, SpectralNormalization(kestrel.layers.Dense(4))(m_in))
    m_model.load_weights(tmp_path / "sn.weights.h5")
    x = rand(2, 3)
    close(m_model.predict(x, verbose=0), k_model.predict(x, verbose=0))
    assert len(m_model.layers[1].weights) == 3  # kernel, bias and vector_u, the kernel once
    with pytest.raises(ValueError, match="power_iterations"):
        SpectralNormalization(kestrel.layers.Dense(2), power_iterations=0)
    with pytest.raises(ValueError, match="kernel"):
        SpectralNormalization(kestrel.layers.Flatten())(torch.ones(2, 3))


def test_spectral_normalization_round_trip():
    layer = SpectralNormalization(kestrel.layers.Dense(4))
    x = torch.tensor(rand(2, 3))
    layer(x)
    clone = deserialize(serialize(layer))
    clone(x)
    clone.set_weights(layer.get_weights())
    close(clone(x), layer(x))
    assert keras.layers.deserialize(serialize(layer)).layer.units == 4


# ------------------------------------------------------------------ adaptive pooling
@pytest.mark.parametrize("name,shape,size", [
    ("AdaptiveAveragePooling1D", (2, 10, 3), 4), ("AdaptiveMaxPooling1D", (2, 10, 3), 3),
    ("AdaptiveAveragePooling2D", (2, 7, 9, 3), (2, 4)), ("AdaptiveMaxPooling2D", (2, 7, 9, 3), 3),
    ("AdaptiveAveragePooling3D", (1, 5, 6, 7, 2), 2),
    ("AdaptiveMaxPooling3D", (1, 5, 6, 7, 2), (2, 3, 4)),
])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_adaptive_pooling_matches_keras(name, shape, size, data_format):
    x = rand(*shape)
    ref = getattr(keras.layers, name)(size, data_format=data_format)
    layer = getattr(adaptive_pooling, name)(size, data_format=data_format)
    close(layer(torch.tensor(x)), ref(x))
    assert layer.get_config()["output_size"] == ref.get_config()["output_size"]
    assert tuple(layer.compute_output_shape(shape)) == tuple(ref.compute_output_shape(shape))


def test_adaptive_pooling_harness_and_errors():
    run_layer_test(adaptive_pooling.AdaptiveAveragePooling2D, {"output_size": (2, 3)},
                   input_shape=(2, 7, 9, 3), expected_output_shape=(2, 2, 3, 3),
                   expected_num_trainable_weights=0)
    with pytest.raises(ValueError, match="output_size"):
        adaptive_pooling.AdaptiveMaxPooling2D((1, 2, 3))
    with pytest.raises(TypeError, match="output_size"):
        adaptive_pooling.AdaptiveMaxPooling1D("4")


# ------------------------------------------------------------------ ReversibleEmbedding
@pytest.mark.parametrize("kwargs", [
    {}, {"tie_weights": False}, {"logit_soft_cap": 2.0}, {"reverse_dtype": "float64"},
])
def test_reversible_embedding_matches_keras(kwargs):
    ids = np.array([[1, 2, 0], [3, 9, 4]])
    ref = keras.layers.ReversibleEmbedding(10, 4, mask_zero=True, **kwargs)
    hidden = ref(ids)
    layer = ReversibleEmbedding(10, 4, mask_zero=True, **kwargs)
    ours = layer(torch.tensor(ids))
    copy_weights(ref, layer)
    ours = layer(torch.tensor(ids))
    close(ours, hidden)
    logits = layer(ours, reverse=True)
    close(logits, ref(hidden, reverse=True))
    assert str(logits.dtype).endswith(kwargs.get("reverse_dtype", "float32"))
    assert set(layer.get_config()) == set(ref.get_config())


def test_reversible_embedding_harness_and_model(tmp_path):
    run_layer_test(ReversibleEmbedding, {"input_dim": 10, "output_dim": 4, "tie_weights": False},
                   input_shape=(2, 3), input_dtype="int64", expected_output_shape=(2, 3, 4),
                   expected_num_trainable_weights=2, run_training_check=False)
    embed = ReversibleEmbedding(10, 4)
    ids = kestrel.Input((3,), dtype="int32")
    logits = embed(RMSNormalization()(embed(ids)), reverse=True)
    model = kestrel.Model(ids, logits)
    assert model.output_shape == (None, 3, 10)
    path = tmp_path / "rev.keras"
    model.save(path)
    loaded = kestrel.saving.load_model(path)
    x = np.array([[1, 2, 3]])
    close(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    close(keras.saving.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))


# ------------------------------------------------------------------ models and serialize
def test_functional_model_of_new_layers_saves_and_trains(tmp_path):
    inp = kestrel.Input((6, 8))
    x = RMSNormalization()(inp)
    x = GroupedQueryAttention(4, 4, 2)(x, x)
    x = EinsumDense("...c,cd->...d", 5, bias_axes="d")(x)
    x = adaptive_pooling.AdaptiveAveragePooling1D(2)(x)
    model = kestrel.Model(inp, SpectralNormalization(kestrel.layers.Dense(3))(x))
    x_data, y_data = rand(8, 6, 8), rand(8, 2, 3)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x_data, y_data, epochs=1, batch_size=4, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = kestrel.saving.load_model(path)
    close(loaded.predict(x_data, verbose=0), model.predict(x_data, verbose=0))


def test_serialize_matches_keras_and_round_trips():
    ours = serialize(RMSNormalization(epsilon=1e-3, name="rms"))
    theirs = keras.layers.serialize(keras.layers.RMSNormalization(epsilon=1e-3, name="rms"))
    assert {k: ours[k] for k in ("module", "class_name")} == \
        {k: theirs[k] for k in ("module", "class_name")}
    assert deserialize(theirs).epsilon == 1e-3
    assert isinstance(deserialize(theirs), RMSNormalization)
    model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(2)])
    assert serialize(model)["module"] == "keras"
    assert isinstance(keras.layers.deserialize(serialize(model)), keras.Sequential)
    with pytest.raises(ValueError, match="Unknown layer"):
        deserialize({"class_name": "NoSuchLayer", "config": {}})
    with pytest.raises(ValueError, match="config"):
        deserialize("Dense")


@pytest.mark.parametrize("module", [einsum_dense, grouped_query_attention, rms_normalization,
                                    adaptive_pooling, reversible_embedding,
                                    spectral_normalization, serialization])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
