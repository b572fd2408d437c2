"""LoRA (`lora_rank`, `enable_lora`) on Dense, EinsumDense and Embedding, compared with real
Keras 3 (torch backend): outputs, weights, errors, configs, training and weight files."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402

import kestrel  # noqa: E402

RNG = np.random.default_rng(3)
X = RNG.normal(size=(4, 3, 5)).astype("float32")
IDS = RNG.integers(0, 10, size=(4, 3)).astype("int32")
LAYERS = {  # name: (constructor for both libraries, input)
    "dense": (lambda m, **kw: m.layers.Dense(6, activation="relu", **kw), X),
    "einsum_bias": (lambda m, **kw: m.layers.EinsumDense("abc,cde->abde", (3, 2, 4),
                                                         bias_axes="de", **kw), X),
    "einsum_reduced": (lambda m, **kw: m.layers.EinsumDense("abc,bcd->ad", 4, **kw), X),
    "embedding": (lambda m, **kw: m.layers.Embedding(10, 6, **kw), IDS),
}


def _by_name(layer) -> dict:
    return {w.path.split("/")[-1]: np.asarray(keras.ops.convert_to_numpy(w)) for w in
            layer.weights}


def _set_by_name(layer, values: dict) -> None:
    for w in layer.weights:
        w.assign(values[w.path.split("/")[-1]])


def _named_shapes(weights) -> list:
    """(weight name, shape) pairs; layer names differ with the order tests run in."""
    return [(w.path.split("/")[-1], tuple(w.shape)) for w in weights]


def _out(layer, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(layer(x))


def _lora_pair(key, rank=2, lora_alpha=None):
    """The same layer in both libraries with LoRA on, equal (and non-zero) weights."""
    make, x = LAYERS[key]
    theirs, ours = make(keras), make(kestrel)
    theirs(x)
    ours(torch.as_tensor(x))
    theirs.enable_lora(rank, lora_alpha=lora_alpha)
    ours.enable_lora(rank, lora_alpha=lora_alpha)
    values = {name: RNG.normal(size=v.shape).astype(v.dtype) * 0.3
              for name, v in _by_name(theirs).items()}
    _set_by_name(theirs, values)
    _set_by_name(ours, values)
    return theirs, ours, x


@pytest.mark.parametrize("key", sorted(LAYERS))
def test_lora_outputs_and_weights_match_keras(key):
    theirs, ours, x = _lora_pair(key, lora_alpha=6)
    np.testing.assert_allclose(_out(ours, torch.as_tensor(x)), _out(theirs, x), atol=1e-5)
    assert _named_shapes(ours.trainable_weights) == _named_shapes(theirs.trainable_weights)
    assert _named_shapes(ours.non_trainable_weights) == \
        _named_shapes(theirs.non_trainable_weights)
    assert _named_shapes(ours.weights) == _named_shapes(theirs.weights)  # base weight first
    for got, expected in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(got, expected)
    assert [str(w.dtype) for w in ours.trainable_weights] == \
        [str(w.dtype).replace("float32", "torch.float32") for w in theirs.trainable_weights]
    assert (ours.lora_enabled, ours.lora_rank, ours.lora_alpha) == \
        (theirs.lora_enabled, theirs.lora_rank, theirs.lora_alpha) == (True, 2, 6)
    assert ours.count_params() == theirs.count_params()


@pytest.mark.parametrize("key", sorted(LAYERS))
def test_config_with_and_without_lora_matches_keras(key):
    make, x = LAYERS[key]
    assert make(kestrel).get_config().keys() == make(keras).get_config().keys()
    theirs, ours, _ = _lora_pair(key, rank=3, lora_alpha=5)
    config, keras_config = ours.get_config(), theirs.get_config()
    assert list(config) == list(keras_config)
    assert (config["lora_rank"], config["lora_alpha"]) == (3, 5)
    clone = type(ours).from_config(config)
    clone(torch.as_tensor(x))
    assert _named_shapes(clone.trainable_weights) == _named_shapes(ours.trainable_weights)


@pytest.mark.parametrize("key", sorted(LAYERS))
def test_lora_rank_argument_builds_adapters_as_keras(key):
    """Keras' Dense and Embedding build `lora_rank` layers with `enable_lora(lora_rank)`
    (lora_alpha becomes the rank), EinsumDense keeps lora_alpha; Kestrel matches both."""
    make, x = LAYERS[key]
    theirs, ours = make(keras, lora_rank=2, lora_alpha=8), make(kestrel, lora_rank=2,
                                                               lora_alpha=8)
    assert ours.lora_alpha == theirs.lora_alpha == 8 and not ours.lora_enabled
    theirs(x)
    ours(torch.as_tensor(x))
    assert ours.lora_alpha == theirs.lora_alpha == (8 if "einsum" in key else 2)
    assert ours.lora_enabled
    assert _named_shapes(ours.trainable_weights) == _named_shapes(theirs.trainable_weights)


@pytest.mark.parametrize("key", ["dense", "embedding"])
def test_regularizer_losses_match_keras(key):
    """The base weight's regularizer moves to the adapters (Keras regularizes trainable
    weights only)."""
    make, x = LAYERS[key]
    argument = "embeddings_regularizer" if key == "embedding" else "kernel_regularizer"
    losses = []
    for lib, inputs in ((keras, x), (kestrel, torch.as_tensor(x))):
        layer = make(lib, **{argument: lib.regularizers.L2(0.1)})
        layer(inputs)
        layer.enable_lora(2)
        for w in layer.weights:
            w.assign(np.full(w.shape, 0.5, "float32"))
        layer(inputs)
        losses.append([float(keras.ops.convert_to_numpy(v)) for v in layer.losses])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)


def test_errors_match_keras():
    for lib in (keras, kestrel):
        unbuilt = lib.layers.Dense(2)
        with pytest.raises(ValueError, match="Cannot enable lora on a layer that isn't yet "
                                             "built."):
            unbuilt.enable_lora(2)
        layer = lib.layers.Dense(2)
        layer.build((None, 3))
        layer.enable_lora(2)
        with pytest.raises(ValueError, match="lora is already enabled. This can only be done "
                                             "once per layer."):
            layer.enable_lora(2)
        constrained = lib.layers.Dense(2, kernel_constraint="non_neg")
        constrained.build((None, 3))
        with pytest.raises(ValueError, match="remove the `kernel_constraint` argument"):
            constrained.enable_lora(2)
        table = lib.layers.Embedding(4, 2, embeddings_constraint="non_neg")
        table.build()
        with pytest.raises(ValueError, match="remove the `embeddings_constraint` argument"):
            table.enable_lora(2)


def test_lora_and_quantization_refuse_each_other_with_clear_errors():
    quantized = kestrel.layers.Dense(2)
    quantized.build((None, 4))
    quantized.quantize("int8")
    with pytest.raises(NotImplementedError, match="quantized with mode 'int8'"):
        quantized.enable_lora(2)
    adapted = kestrel.layers.Dense(2)
    adapted.build((None, 4))
    adapted.enable_lora(2)
    with pytest.raises(NotImplementedError, match="LoRA enabled"):
        adapted.quantize("int8")
    table = kestrel.layers.Embedding(4, 2)
    table.build()
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        table.enable_lora(0)


def _model(lib, lora: bool):
    """keras.io's LoRA usage: a small model, `model.layers[i].enable_lora(rank)`."""
    model = lib.Sequential([lib.Input((3,), dtype="int32"), lib.layers.Embedding(10, 4),
                            lib.layers.EinsumDense("abc,cd->abd", (3, 5), bias_axes="d"),
                            lib.layers.Dense(2)])
    if lora:
        for layer in model.layers:
            layer.enable_lora(2)
    return model


def _paired_models(lora: bool):
    theirs, ours = _model(keras, lora), _model(kestrel, lora)
    for a, b in zip(theirs.layers, ours.layers):
        values = {name: RNG.normal(size=v.shape).astype(v.dtype) * 0.3
                  for name, v in _by_name(a).items()}
        _set_by_name(a, values)
        _set_by_name(b, values)
    return theirs, ours


def test_fit_step_leaves_base_weights_and_matches_keras():
    theirs, ours = _paired_models(lora=True)
    y = RNG.normal(size=(4, 3, 2)).astype("float32")
    before = [_by_name(layer) for layer in ours.layers]
    for lib, model in ((keras, theirs), (kestrel, ours)):
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
        model.fit(IDS, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    for layer_before, a, b in zip(before, theirs.layers, ours.layers):
        after = _by_name(b)
        for name, value in after.items():
            frozen = name in ("kernel", "embeddings")  # biases train on, as in Keras
            assert np.array_equal(value, layer_before[name]) == frozen, name
            np.testing.assert_allclose(value, _by_name(a)[name], atol=1e-5, err_msg=name)
    assert _named_shapes(ours.trainable_weights) == _named_shapes(theirs.trainable_weights)


def test_summary_param_counts_match_keras():
    theirs, ours = _paired_models(lora=True)
    for attr in ("trainable_weights", "non_trainable_weights"):
        assert sum(int(np.prod(w.shape)) for w in getattr(ours, attr)) == \
            sum(int(np.prod(w.shape)) for w in getattr(theirs, attr))
    lines = []
    ours.summary(print_fn=lambda line, **kw: lines.append(line))
    keras_lines = []
    theirs.summary(print_fn=lambda line, **kw: keras_lines.append(line))
    counts = [line for line in "\n".join(lines).splitlines() if "params" in line.lower()]
    keras_counts = [line for line in "\n".join(keras_lines).splitlines()
                    if "params" in line.lower()]
    assert counts == keras_counts


def test_lora_weights_file_loads_into_keras_model_without_lora(tmp_path):
    theirs_lora, ours_lora = _paired_models(lora=True)
    path = str(tmp_path / "lora.weights.h5")
    ours_lora.save_weights(path)
    plain = _model(keras, lora=False)
    plain.load_weights(path)
    np.testing.assert_allclose(_out(plain, IDS), _out(ours_lora, torch.as_tensor(IDS)),
                               atol=1e-5)
    np.testing.assert_allclose(_out(plain, IDS), _out(theirs_lora, IDS), atol=1e-5)


def test_keras_lora_weights_file_loads_into_kestrel_models(tmp_path):
    theirs_lora, _ = _paired_models(lora=True)
    path = str(tmp_path / "keras_lora.weights.h5")
    theirs_lora.save_weights(path)
    expected = _out(theirs_lora, IDS)
    plain = _model(kestrel, lora=False)
    plain.load_weights(path)
    np.testing.assert_allclose(_out(plain, torch.as_tensor(IDS)), expected, atol=1e-5)
    adapted, keras_adapted = _model(kestrel, lora=True), _model(keras, lora=True)
    adapted.load_weights(path)
    keras_adapted.load_weights(path)  # Keras: base weights from the file, adapters zeroed
    np.testing.assert_allclose(_out(adapted, torch.as_tensor(IDS)), expected, atol=1e-5)
    for a, b in zip(keras_adapted.layers, adapted.layers):
        for name, value in _by_name(a).items():
            np.testing.assert_allclose(_by_name(b)[name], value, atol=1e-6, err_msg=name)


def test_keras_file_round_trip_between_libraries(tmp_path):
    theirs_lora, ours_lora = _paired_models(lora=True)
    expected = _out(ours_lora, torch.as_tensor(IDS))
    path = str(tmp_path / "ours.keras")
    ours_lora.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.lora_enabled for layer in loaded.layers] == [True] * 3
    np.testing.assert_allclose(_out(loaded, IDS), expected, atol=1e-5)
    keras_path = str(tmp_path / "theirs.keras")
    theirs_lora.save(keras_path)
    reloaded = kestrel.saving.load_model(keras_path)
    assert [layer.lora_enabled for layer in reloaded.layers] == [True] * 3
    np.testing.assert_allclose(_out(reloaded, torch.as_tensor(IDS)), _out(theirs_lora, IDS),
                               atol=1e-5)


def test_no_lora_layer_keeps_its_class_call():
    layer = kestrel.layers.Dense(2)
    layer.build((None, 3))
    assert "call" not in vars(layer)
    layer.enable_lora(1)
    assert vars(layer)["call"] == layer._lora_call
