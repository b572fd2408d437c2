"""Masks in the symbolic graph, as Keras 3 records them: `compute_mask` runs on KerasTensors,
its ops become graph nodes (`not_equal`, `any`) and a consumer's node takes the mask as its
`mask` argument. Each case is built with Kestrel and with real Keras and compared."""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.keras_compare import copy_weights, layout, summary_text  # noqa: E402

TOKENS = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0]], dtype="int32")
FRAMES = (np.arange(30, dtype="float32").reshape(2, 5, 3) / 30
          * np.array([1, 1, 1, 0, 0], dtype="float32")[None, :, None])


def embedding_lstm(lib):
    inputs = lib.Input((5,), dtype="int32")
    x = lib.layers.Embedding(10, 4, mask_zero=True)(inputs)
    x = lib.layers.LSTM(3)(x)
    return lib.Model(inputs, lib.layers.Dense(2)(x))


def masking_lstm(lib):
    inputs = lib.Input((5, 3))
    x = lib.layers.Masking()(inputs)
    return lib.Model(inputs, lib.layers.LSTM(3)(x))


def embedding_dropout_pooling(lib):
    """A mask passed through (Dropout) reaches the pooling as the same recorded tensor."""
    inputs = lib.Input((5,), dtype="int32")
    x = lib.layers.Embedding(10, 4, mask_zero=True)(inputs)
    x = lib.layers.Dropout(0.5)(x)
    x = lib.layers.Dense(3)(x)
    return lib.Model(inputs, lib.layers.GlobalAveragePooling1D()(x))


def attention_residual(lib):
    """MultiHeadAttention's node takes no masks (Keras converts its two arguments first);
    Add's mask is the `logical_or` of its inputs' masks."""
    inputs = lib.Input((5,), dtype="int32")
    x = lib.layers.Embedding(10, 4, mask_zero=True)(inputs)
    attended = lib.layers.MultiHeadAttention(2, 2)(x, x)
    x = lib.layers.Add()([x, attended])
    return lib.Model(inputs, lib.layers.GlobalAveragePooling1D()(x))


def concatenations(lib):
    """Concatenate's mask ops: a short mask broadcast (`expand_dims`, `zeros_like`,
    `logical_or`), an unmasked input's `ones_like`, then `concatenate` and `any`."""
    tokens, other, frames = (lib.Input((5,), dtype="int32"), lib.Input((5,), dtype="int32"),
                             lib.Input((5, 2)))
    x = lib.layers.Embedding(10, 4, mask_zero=True)(tokens)
    y = lib.layers.Embedding(10, 3, mask_zero=True)(other)
    features = lib.layers.Concatenate()([x, y, frames])
    steps = lib.layers.Concatenate(axis=1)([x, lib.layers.Dense(4)(frames)])
    return lib.Model([tokens, other, frames],
                     [lib.layers.LSTM(2)(features), lib.layers.GRU(2)(steps)])


def positional_embedding_model(lib):
    """keras.io's English-to-Spanish `PositionalEmbedding`, whose mask is `ops.not_equal`."""
    layers, ops = lib.layers, lib.ops

    class PositionalEmbedding(layers.Layer):
        def __init__(self, sequence_length, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.token_embeddings = layers.Embedding(vocab_size, embed_dim)
            self.position_embeddings = layers.Embedding(sequence_length, embed_dim)

        def call(self, inputs):
            positions = ops.arange(0, ops.shape(inputs)[-1], 1)
            return self.token_embeddings(inputs) + self.position_embeddings(positions)

        def compute_mask(self, inputs, mask=None):
            return ops.not_equal(inputs, 0)

    inputs = lib.Input((5,), dtype="int32")
    x = PositionalEmbedding(5, 10, 4)(inputs)
    x = layers.GlobalAveragePooling1D()(x)
    return lib.Model(inputs, layers.Dense(2)(x))


def build_both(build):
    keras.backend.clear_session()
    kestrel.backend.clear_session()
    return build(keras), build(kestrel)


def graph_entries(model) -> list:
    """(class, name, inbound nodes, an op's config) per entry of the config's layer list, as
    JSON reads them."""
    entries = json.loads(json.dumps(model.get_config()["layers"]))
    return [(e["class_name"], e["name"], e["inbound_nodes"],
             e["config"] if e["module"].startswith("keras.src.ops") else None) for e in entries]


def check_same_graph(build, x):
    ours_keras, ours = build_both(build)
    assert summary_text(ours) == summary_text(ours_keras)
    assert layout(ours) == layout(ours_keras)
    assert [op.name for op in ours.operations] == [op.name for op in ours_keras.operations]
    assert graph_entries(ours) == graph_entries(ours_keras)
    copy_weights(ours_keras, ours)
    for mine, theirs in zip(kestrel.tree.flatten(ours.predict(x, verbose=0)),
                            keras.tree.flatten(ours_keras.predict(x, verbose=0))):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)
    return ours_keras, ours


def test_embedding_records_not_equal_and_lstm_takes_it_as_mask():
    _, ours = check_same_graph(embedding_lstm, TOKENS)
    assert "Connected to" in summary_text(ours)
    lstm = ours.get_layer("lstm")
    mask = lstm._inbound_nodes[0].call_kwargs["mask"]
    assert mask._keras_history[0].name == "not_equal"


def test_masking_records_not_equal_then_any():
    check_same_graph(masking_lstm, FRAMES)


def test_passed_through_mask_is_the_recorded_tensor():
    _, ours = check_same_graph(embedding_dropout_pooling, TOKENS)
    embedded = ours.get_layer("embedding").output
    pooling_node = ours.get_layer("global_average_pooling1d")._inbound_nodes[0]
    assert pooling_node.call_kwargs["mask"] is embedded._keras_mask


def test_attention_and_add_masks_as_keras():
    check_same_graph(attention_residual, TOKENS)


def test_concatenate_masks_as_keras():
    check_same_graph(concatenations, [TOKENS, TOKENS[::-1].copy(), FRAMES[..., :2]])


def test_user_compute_mask_with_ops_is_recorded():
    check_same_graph(positional_embedding_model, TOKENS)


def test_lambda_mask_function_with_ops_is_recorded():
    def lambda_mask(lib):
        inputs = lib.Input((5, 3))
        first_feature_set = lambda t, m: lib.ops.not_equal(t[..., 0], 0)  # noqa: E731
        x = lib.layers.Lambda(lambda t: t * 2, mask=first_feature_set)(inputs)
        return lib.Model(inputs, lib.layers.LSTM(2)(x))

    theirs, ours = build_both(lambda_mask)
    assert summary_text(ours) == summary_text(theirs)
    assert [op.name for op in ours.operations] == [op.name for op in theirs.operations]
    copy_weights(theirs, ours)
    np.testing.assert_allclose(ours.predict(FRAMES, verbose=0),
                               theirs.predict(FRAMES, verbose=0), atol=1e-6)


def test_raw_torch_compute_mask_keeps_the_unrecorded_mask():
    class TorchMask(kestrel.layers.Layer):
        def call(self, inputs):
            return inputs

        def compute_mask(self, inputs, mask=None):
            return torch.ne(inputs, 0).any(dim=-1)

    kestrel.backend.clear_session()
    inputs = kestrel.Input((5, 3))
    x = TorchMask()(inputs)
    assert x._keras_mask.shape == (None, 5) and x._keras_mask._keras_history is None
    lstm = kestrel.layers.LSTM(3)
    model = kestrel.Model(inputs, lstm(x))
    assert [op.name for op in model.operations] == ["input_layer", "torch_mask", "lstm"]
    assert "mask" not in lstm._inbound_nodes[0].call_kwargs
    masked = kestrel.Sequential([kestrel.layers.Masking(), lstm])
    np.testing.assert_allclose(model.predict(FRAMES, verbose=0),
                               masked.predict(FRAMES, verbose=0), atol=1e-6)


def test_sequential_shows_layers_only():
    def sequential(lib):
        return lib.Sequential([lib.Input((5,), dtype="int32"),
                               lib.layers.Embedding(10, 4, mask_zero=True),
                               lib.layers.LSTM(3)])

    theirs, ours = build_both(sequential)
    assert summary_text(ours) == summary_text(theirs)
    assert layout(ours) == layout(theirs)
    assert [e["class_name"] for e in ours.get_config()["layers"]] == \
        [e["class_name"] for e in theirs.get_config()["layers"]]
    copy_weights(theirs, ours)
    np.testing.assert_allclose(ours.predict(TOKENS, verbose=0),
                               theirs.predict(TOKENS, verbose=0), atol=1e-6)


def test_training_step_matches_keras():
    theirs, ours = build_both(embedding_lstm)
    copy_weights(theirs, ours)
    targets = np.array([[0.5, -1.0], [1.0, 0.25]], dtype="float32")
    for model, lib in ((theirs, keras), (ours, kestrel)):
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
    losses = [float(m.train_on_batch(TOKENS, targets)) for m in (theirs, ours)]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
    np.testing.assert_allclose(ours.predict(TOKENS, verbose=0),
                               theirs.predict(TOKENS, verbose=0), atol=1e-6)


@pytest.mark.parametrize("build, x", [
    (embedding_lstm, TOKENS), (masking_lstm, FRAMES),
    (concatenations, [TOKENS, TOKENS[::-1].copy(), FRAMES[..., :2]])])
def test_kestrel_file_loads_in_keras_and_keras_file_in_kestrel(tmp_path, build, x):
    theirs, ours = build_both(build)
    copy_weights(theirs, ours)
    ours.save(tmp_path / "kestrel.keras")
    theirs.save(tmp_path / "keras.keras")
    in_keras = keras.saving.load_model(tmp_path / "kestrel.keras")
    in_kestrel = kestrel.saving.load_model(tmp_path / "keras.keras")
    expected = keras.tree.flatten(theirs.predict(x, verbose=0))
    for loaded, original in ((in_keras, theirs), (in_kestrel, ours)):
        assert summary_text(loaded) == summary_text(original)
        for got, want in zip(keras.tree.flatten(loaded.predict(x, verbose=0)), expected):
            np.testing.assert_allclose(got, want, atol=1e-6)
