"""Node call arguments in the functional graph, as Keras 3 records them: the `training` default
of the layer's `call` and the masks `__call__` fills in (None included), wherever Keras' node
keeps the dict its call fills; a model run passes on none of them. Each case is built with
Kestrel and with real Keras and compared."""
import inspect
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel.models import functional  # noqa: E402
from tests.keras_compare import copy_weights  # noqa: E402
from tests.test_symbolic_masks import TOKENS, build_both, check_same_graph  # noqa: E402

VALUES = np.array([[5, 6, 0, 0], [7, 8, 9, 0]], dtype="int32")


def regularized(lib):
    inputs = lib.Input((4,))
    x = lib.layers.Dense(3)(inputs)
    x = lib.layers.Dropout(0.5)(x)
    x = lib.layers.BatchNormalization()(x)
    return lib.Model(inputs, lib.layers.GaussianNoise(0.1)(x))


def user_calls(lib):
    """A user `call` taking `training=None, mask=None`, and one defaulting to `training=False`
    (recorded, as its signature's default)."""
    class Scale(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, x, training=None, mask=None):
            return x * 2

    class Noisy(lib.layers.Layer):
        def call(self, x, training=False):
            return x + 1 if training else x

    inputs = lib.Input((4,))
    return lib.Model(inputs, Noisy()(Scale()(inputs)))


def explicit_arguments(lib):
    """Given arguments stay; a call whose inputs Keras converts (kwargs given, another dtype)
    records nothing more; a functional model converts nothing, so its node also gets `mask`."""
    inputs, wide = lib.Input((4,)), lib.Input((4,), dtype="float64")
    inner_input = lib.Input((4,))
    inner = lib.Model(inner_input, lib.layers.Dense(2)(inner_input))
    dropped = lib.layers.Dropout(0.5)(inputs, training=True)
    x = lib.layers.BatchNormalization()(dropped, training=False)
    return lib.Model([inputs, wide], [dropped, inner(x, training=False),
                                      lib.layers.Dropout(0.5)(wide)])


def subclassed_models(lib):
    """Keras converts a subclassed model's inputs (a functional one's not): on integers its
    node records nothing more; on floats it records `training=False`, its `call`'s default."""
    class Encoder(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embedding = lib.layers.Embedding(10, 4)

        def call(self, x, training=False, mask=None):
            return self.embedding(x)

    class Head(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = lib.layers.Dense(2)

        def call(self, x, training=False):
            return self.dense(x)

    tokens, features = lib.Input((5,), dtype="int32"), lib.Input((3,))
    return lib.Model([tokens, features], [Encoder()(tokens), Head()(features)])


def nested_two_inputs(lib):
    """A model called on a list: Keras' `mask` is one None per input."""
    a, b = lib.Input((3,)), lib.Input((3,))
    inner = lib.Model([a, b], lib.layers.Add()([a, b]))
    x, y = lib.Input((3,)), lib.Input((3,))
    return lib.Model([x, y], inner([x, y]))


def images(lib):
    """Augmentation layers default to `training=True`; Keras converts no input of RandomFlip
    or Pipeline, whose `call` also takes `mask`."""
    pixels, frames = lib.Input((6, 6, 3), dtype="uint8"), lib.Input((6, 6, 3))
    pipeline = lib.layers.Pipeline([lib.layers.RandomFlip(), lib.layers.Rescaling(0.5)])
    return lib.Model([pixels, frames], [lib.layers.RandomFlip()(pixels),
                                        lib.layers.Resizing(4, 4)(frames), pipeline(pixels)])


def stacked_lstms(lib):
    inputs = lib.Input((5,), dtype="int32")
    x = lib.layers.Embedding(10, 4, mask_zero=True)(inputs)
    x = lib.layers.LSTM(3, return_sequences=True)(x)
    x = lib.layers.LSTM(3)(x)
    return lib.Model(inputs, lib.layers.Dense(2)(x))


def bidirectional_pooling(lib):
    inputs = lib.Input((5,), dtype="int32")
    x = lib.layers.Embedding(10, 4, mask_zero=True)(inputs)
    x = lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=True))(x)
    x = lib.layers.GlobalAveragePooling1D()(x)
    return lib.Model(inputs, lib.layers.Dense(2)(x))


def embedded_pair(lib):
    query, value = lib.Input((5,), dtype="int32"), lib.Input((4,), dtype="int32")
    return (query, value, lib.layers.Embedding(10, 4, mask_zero=True)(query),
            lib.layers.Embedding(10, 4, mask_zero=True)(value))


def dot_attention(lib):
    """Attention's output mask is the query's through `convert_to_tensor`, an op node."""
    query, value, q, v = embedded_pair(lib)
    attended = lib.layers.Attention()([q, v])
    return lib.Model([query, value], [lib.layers.GlobalAveragePooling1D()(attended),
                                      lib.layers.GRU(2)(attended)])


def multi_head_attention(lib):
    query, value, q, v = embedded_pair(lib)
    attended = lib.layers.MultiHeadAttention(2, 2)(q, v)
    x = lib.layers.LayerNormalization()(lib.layers.Add()([q, attended]))
    return lib.Model([query, value], lib.layers.GlobalAveragePooling1D()(x))


def node_kwargs(model) -> dict:
    """Layer name -> the kwargs of each of its nodes, as JSON reads them."""
    return {entry["name"]: [node["kwargs"] for node in entry["inbound_nodes"]]
            for entry in json.loads(json.dumps(model.get_config()["layers"]))}


def without_filled_arguments(config: dict) -> dict:
    """A functional config as Kestrel wrote it before it recorded Keras' filled arguments:
    no `training`, no `mask: None`."""
    config = json.loads(json.dumps(config))
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            node["kwargs"].pop("training", None)
            if node["kwargs"].get("mask", False) is None:
                del node["kwargs"]["mask"]
    return config


def test_training_defaults_are_keras_call_defaults():
    """Every layer class of both: the `training` its node records is Keras' `call` default."""
    differing = []
    for name in dir(keras.layers):
        theirs, ours = getattr(keras.layers, name), getattr(kestrel.layers, name, None)
        if not (inspect.isclass(theirs) and "call" in dir(theirs) and inspect.isclass(ours)
                and issubclass(ours, kestrel.layers.Layer)):
            continue
        parameter = inspect.signature(theirs.call).parameters.get("training")
        expected = None if parameter is None else parameter.default
        recorded = ours._keras_training_default if ours._call_accepts_training else None
        if recorded is not expected:
            differing.append((name, expected, recorded))
    assert differing == []


@pytest.mark.parametrize("build", [regularized, user_calls, explicit_arguments,
                                   subclassed_models, nested_two_inputs, images])
def test_node_kwargs_as_keras(build):
    theirs, ours = build_both(build)
    assert node_kwargs(ours) == node_kwargs(theirs)


def test_recorded_kwargs_examples():
    """What Keras' node holds, spelled out for the plain cases."""
    kwargs = node_kwargs(build_both(regularized)[1])
    assert kwargs["dense"] == [{}] and kwargs["dropout"] == [{"training": False}]
    assert kwargs["batch_normalization"] == [{"mask": None}]
    kwargs = node_kwargs(build_both(user_calls)[1])
    assert kwargs["scale"] == [{"mask": None}] and kwargs["noisy"] == [{"training": False}]


@pytest.mark.parametrize("build, x", [
    (stacked_lstms, TOKENS), (bidirectional_pooling, TOKENS),
    (dot_attention, [TOKENS, VALUES]), (multi_head_attention, [TOKENS, VALUES])])
def test_masked_models_as_keras(build, x):
    """Summary, layers, operations, graph, whole config and predictions as Keras'."""
    theirs, ours = check_same_graph(build, x)
    assert json.loads(json.dumps(ours.get_config())) == \
        json.loads(json.dumps(theirs.get_config()))


def test_attention_mask_goes_through_convert_to_tensor():
    _, ours = build_both(dot_attention)
    gru_mask = ours.get_layer("gru")._inbound_nodes[0].call_kwargs["mask"]
    op = gru_mask._keras_history[0]
    assert op.name == "convert_to_tensor"
    assert op.get_config() == {"name": "convert_to_tensor", "dtype": None, "sparse": None,
                               "ragged": None}


def test_pipeline_passes_a_given_mask_on_as_keras():
    frames = np.random.default_rng(0).random((2, 5, 3), dtype="float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
    outputs = []
    for lib, to_tensor in ((keras, np.asarray), (kestrel, torch.tensor)):
        pipeline = lib.layers.Pipeline([lib.layers.LSTM(2, return_sequences=True),
                                        lib.layers.LSTM(2)])
        pipeline(frames)
        if outputs:
            for ours, theirs in zip(pipeline.layers, outputs[0][0].layers):
                ours.set_weights(theirs.get_weights())
        result = pipeline(to_tensor(frames), mask=to_tensor(mask))
        outputs.append((pipeline, result.detach().numpy()))
    np.testing.assert_allclose(outputs[1][1], outputs[0][1], atol=1e-6)


def test_filled_arguments_keep_the_plain_path():
    """The recorded defaults are not passed on when the model runs: such nodes take the
    one-tensor path, with no work per call."""
    models = [build_both(regularized)[1], build_both(user_calls)[1]]
    kinds = {layer.name: simple for model in models for layer, simple, *_ in model._plan}
    assert all(kinds[name] is functional._ONE
               for name in ("dropout", "batch_normalization", "scale", "noisy"))


def test_keras_file_with_training_false_still_trains(tmp_path):
    """Keras writes `training: False` for every Dropout node; its outer `training` overrides
    it, so the loaded model drops units in training and not in inference."""
    inputs = keras.Input((200,))
    keras.Model(inputs, keras.layers.Dropout(0.5)(inputs)).save(tmp_path / "dropout.keras")
    model = kestrel.saving.load_model(tmp_path / "dropout.keras")
    ones = torch.ones(2, 200)
    assert (model(ones, training=True) == 0).any()
    assert not (model(ones) == 0).any()


def test_explicit_training_stays_in_force():
    """`Dropout(...)(x, training=True)` drops units in a plain call of the model, in both."""
    theirs, ours = build_both(explicit_arguments)
    x = [np.ones((2, 4), "float32"), np.ones((2, 4), "float64")]
    for model in (theirs, ours):
        dropped = model(x)[0]
        assert (np.asarray(dropped.detach()) == 0).any()


@pytest.mark.parametrize("build, x", [
    (regularized, np.ones((2, 4), "float32")), (stacked_lstms, TOKENS),
    (dot_attention, [TOKENS, VALUES])])
def test_files_load_with_the_arguments(tmp_path, build, x):
    """A Kestrel file in Keras, a Keras file in Kestrel: the same graph and predictions."""
    theirs, ours = build_both(build)
    copy_weights(theirs, ours)
    ours.save(tmp_path / "kestrel.keras")
    theirs.save(tmp_path / "keras.keras")
    expected = keras.tree.flatten(theirs.predict(x, verbose=0))
    for loaded in (keras.saving.load_model(tmp_path / "kestrel.keras"),
                   kestrel.saving.load_model(tmp_path / "keras.keras")):
        assert node_kwargs(loaded) == node_kwargs(theirs)
        for got, want in zip(keras.tree.flatten(loaded.predict(x, verbose=0)), expected):
            np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("build, x", [(stacked_lstms, TOKENS), (dot_attention, [TOKENS, VALUES])])
def test_configs_without_the_arguments_load_as_in_keras(build, x):
    """An older Kestrel config (no `training`, no `mask: None`): the model Keras rebuilds
    from it, node arguments and predictions alike."""
    theirs, _ = build_both(build)
    in_keras, in_kestrel = (lib.Model.from_config(without_filled_arguments(theirs.get_config()))
                            for lib in (keras, kestrel))  # Keras' from_config empties its dict
    copy_weights(theirs, in_keras)
    copy_weights(theirs, in_kestrel)
    assert node_kwargs(in_kestrel) == node_kwargs(in_keras)
    for got, want in zip(kestrel.tree.flatten(in_kestrel.predict(x, verbose=0)),
                         keras.tree.flatten(theirs.predict(x, verbose=0))):
        np.testing.assert_allclose(got, want, atol=1e-6)
