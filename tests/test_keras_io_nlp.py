"""keras.io NLP examples (translation, NER, seq2seq, embeddings, text generation): the same code
runs with Kestrel and with real Keras (torch backend); layouts, values and training agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import copy_weights as _copy_weights, layout as _layout  # noqa: E402


def _numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _nmt_layers(k, always_mask):
    """neural_machine_translation_with_transformer: PositionalEmbedding, TransformerEncoder."""
    layers, ops = k.layers, k.ops

    class PositionalEmbedding(layers.Layer):
        def __init__(self, sequence_length, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.token_embeddings = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.position_embeddings = layers.Embedding(input_dim=sequence_length,
                                                        output_dim=embed_dim)

        def call(self, inputs):
            positions = ops.arange(0, ops.shape(inputs)[-1], 1)
            return self.token_embeddings(inputs) + self.position_embeddings(positions)

        def compute_mask(self, inputs, mask=None):
            if mask is None and not always_mask:
                return None
            return ops.not_equal(inputs, 0)

    class TransformerEncoder(layers.Layer):
        def __init__(self, embed_dim, dense_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.dense_proj = k.Sequential([layers.Dense(dense_dim, activation="relu"),
                                            layers.Dense(embed_dim)])
            self.layernorm_1 = layers.LayerNormalization()
            self.layernorm_2 = layers.LayerNormalization()
            self.supports_masking = True

        def call(self, inputs, mask=None):
            padding_mask = None if mask is None else ops.cast(mask[:, None, :], dtype="int32")
            attention_output = self.attention(query=inputs, value=inputs, key=inputs,
                                              attention_mask=padding_mask)
            proj_input = self.layernorm_1(inputs + attention_output)
            return self.layernorm_2(proj_input + self.dense_proj(proj_input))

    return PositionalEmbedding, TransformerEncoder


def test_position_embedding_shorter_than_the_shape_placeholders_builds():
    """arange(length) looked up in a 6-row position embedding on an unknown-length input."""
    for k in (keras, kestrel):
        PositionalEmbedding, _ = _nmt_layers(_fresh(k), always_mask=False)
        inputs = k.Input(shape=(None,), dtype="int64")
        outputs = PositionalEmbedding(6, 20, 4)(inputs)
        assert tuple(outputs.shape) == (None, None, 4)
        assert k.Model(inputs, outputs)(np.ones((2, 6), "int64")).shape == (2, 6, 4)


def test_masked_transformer_encoder_matches_keras_on_padded_queries():
    """A padded query sees no key: Keras' fused attention gives it the values' mean, not 0."""
    tokens = np.array([[7, 8, 9, 9, 4, 0], [4, 11, 0, 0, 0, 0], [7, 6, 8, 7, 3, 0]], "int64")
    outs, source = {}, None
    for k in (keras, kestrel):
        PositionalEmbedding, TransformerEncoder = _nmt_layers(_fresh(k), always_mask=True)
        inputs = k.Input(shape=(None,), dtype="int64", name="encoder_inputs")
        x = PositionalEmbedding(6, 20, 8)(inputs)
        model = k.Model(inputs, TransformerEncoder(8, 16, 2)(x))
        if source is None:
            source = model
        else:
            assert _layout(model) == _layout(source)
            _copy_weights(source, model)
        outs[k.__name__] = _numpy(model(tokens))
    np.testing.assert_allclose(outs["kestrel"], outs["keras"], atol=1e-5)


def test_attention_rows_that_see_no_key_match_keras_on_every_path():
    """Keras' dot_product_attention path (no dropout, no scores) averages the values; its
    explicit path (dropout, or scores returned) gives zeros."""
    rng = np.random.default_rng(0)
    q = torch.tensor(rng.normal(size=(2, 4, 6)).astype("float32"))
    seen = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    attention_mask = torch.tensor(seen[:, None, :] & seen[:, :, None])
    for cls, args in (("MultiHeadAttention", dict(num_heads=2, key_dim=3)),
                      ("GroupQueryAttention",
                       dict(head_dim=3, num_query_heads=2, num_key_value_heads=1))):
        for extra in ({}, {"dropout": 0.1}, {"flash_attention": False}):
            results, weights = [], None
            for k in (keras, kestrel):
                layer = getattr(k.layers, cls)(**args, **extra)
                layer(q, q)
                if weights is None:
                    weights = layer.get_weights()
                else:
                    layer.set_weights(weights)
                out = layer(q, q, attention_mask=attention_mask)
                _, scores = layer(q, q, attention_mask=attention_mask,
                                  return_attention_scores=True)
                results.append((_numpy(out), _numpy(scores)))
            for a, b in zip(*results):
                np.testing.assert_allclose(b, a, atol=1e-5, err_msg=f"{cls} {extra}")


def test_summary_narrows_to_the_terminal_as_keras(monkeypatch):
    """A two-input transformer's summary in an 80-column terminal (or a pipe): same table."""
    monkeypatch.setenv("COLUMNS", "80")
    texts = []
    for k in (keras, kestrel):
        PositionalEmbedding, TransformerEncoder = _nmt_layers(_fresh(k), always_mask=False)
        encoder_inputs = k.Input(shape=(None,), dtype="int64", name="encoder_inputs")
        decoder_inputs = k.Input(shape=(None,), dtype="int64", name="decoder_inputs")
        x = TransformerEncoder(8, 16, 2)(PositionalEmbedding(6, 20, 8)(encoder_inputs))
        y = PositionalEmbedding(6, 20, 8)(decoder_inputs)
        outputs = k.layers.Dense(20, activation="softmax")(k.layers.Concatenate()([x, y]))
        model = k.Model([encoder_inputs, decoder_inputs], outputs, name="transformer")
        lines = []
        model.summary(print_fn=lambda line, **_: lines.append(line))
        texts.append("\n".join(lines).splitlines())
    assert len(texts[1][1]) == 76
    assert texts[1] == texts[0]


def _ner_model(k):
    """ner_transformers: a subclassed model of Embedding, MultiHeadAttention, Dropout, Dense."""
    layers = k.layers

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, inputs):
            positions = k.ops.arange(start=0, stop=k.ops.shape(inputs)[-1], step=1)
            return self.token_emb(inputs) + self.pos_emb(positions)

    class NERModel(k.Model):
        def __init__(self, num_tags, vocab_size, maxlen=16, embed_dim=8):
            super().__init__()
            self.embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
            self.att = layers.MultiHeadAttention(num_heads=2, key_dim=embed_dim)
            self.dropout1 = layers.Dropout(0.1)
            self.ff = layers.Dense(16, activation="relu")
            self.ff_final = layers.Dense(num_tags, activation="softmax")

        def call(self, inputs, training=False):
            x = self.embedding_layer(inputs)
            x = self.dropout1(x + self.att(x, x), training=training)
            return self.ff_final(self.ff(x))

    return NERModel(10, 50)


def test_subclassed_model_summary_shows_built_shapes_as_keras(monkeypatch):
    """Layers outside any graph: Dense shows the shape its build received gives, Dropout and
    a custom layer without a build of its own show '?'."""
    monkeypatch.setenv("COLUMNS", "200")
    tokens = np.array([[3, 4, 5, 0], [6, 7, 0, 0]], "int64")
    texts, source = [], None
    for k in (keras, kestrel):
        model = _ner_model(_fresh(k))
        model(tokens)
        lines = []
        model.summary(print_fn=lambda line, **_: lines.append(line))
        texts.append("\n".join(lines).splitlines())
        if source is None:
            source = model
        else:
            model.set_weights(source.get_weights())
            np.testing.assert_allclose(_numpy(model.predict(tokens, verbose=0)),
                                       _numpy(source.predict(tokens, verbose=0)), atol=1e-6)
    assert any("(2, 4, 16)" in line for line in texts[1])
    assert texts[1] == texts[0]


def _frozen_embedding_model(k, matrix):
    """pretrained_word_embeddings: a frozen Embedding from a (float64) matrix, a 1D convnet."""
    inputs = k.Input(shape=(None,), dtype="int64")
    x = k.layers.Embedding(matrix.shape[0], matrix.shape[1], trainable=False,
                           embeddings_initializer=k.initializers.Constant(matrix))(inputs)
    x = k.layers.Conv1D(4, 3, activation="relu")(x)
    x = k.layers.GlobalMaxPooling1D()(x)
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(x))


def test_constant_initializer_of_an_array_saves_and_loads_as_keras(tmp_path):
    """Keras writes the matrix as `__numpy__`; each library loads the other's .keras file."""
    matrix = np.random.default_rng(0).normal(size=(12, 5))  # float64, as GloVe rows
    tokens = np.array([[1, 2, 3, 4, 0], [5, 6, 7, 0, 0]], "int64")
    configs, models = {}, {}
    for k in (keras, kestrel):
        model = _frozen_embedding_model(_fresh(k), matrix)
        embedding = model.layers[1]
        configs[k.__name__] = embedding.get_config()["embeddings_initializer"]
        assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 1
        np.testing.assert_allclose(_numpy(embedding.get_weights()[0]), matrix, rtol=1e-6)
        model.save(tmp_path / f"{k.__name__}.keras")
        models[k.__name__] = model
    assert configs["kestrel"] == configs["keras"]
    assert configs["kestrel"]["config"]["value"]["class_name"] == "__numpy__"
    assert kestrel.initializers.Constant(np.float32(2.0)).get_config() == {"value": 2.0}
    for src, dst in (("keras", kestrel), ("kestrel", keras)):
        loaded = dst.models.load_model(tmp_path / f"{src}.keras")
        np.testing.assert_allclose(_numpy(loaded.predict(tokens, verbose=0)),
                                   _numpy(models[src].predict(tokens, verbose=0)), atol=1e-6)
        value = loaded.layers[1].embeddings_initializer.value
        assert isinstance(value, np.ndarray) and value.dtype == np.float64


def _json(value):
    import json

    return json.loads(json.dumps(value))


def test_bidirectional_lstm_config_carries_the_inner_layers_build_as_keras():
    """bidirectional_lstm_imdb: a built layer serialized inside another (Bidirectional's
    forward and backward LSTMs, TimeDistributed's Dense) carries its build_config."""
    tokens = np.random.default_rng(0).integers(1, 50, (4, 7)).astype("int32")
    configs, outputs, source = {}, {}, None
    for k in (keras, kestrel):
        _fresh(k)
        inputs = k.Input(shape=(None,), dtype="int32")
        x = k.layers.Embedding(50, 8)(inputs)
        x = k.layers.Bidirectional(k.layers.LSTM(6, return_sequences=True))(x)
        x = k.layers.TimeDistributed(k.layers.Dense(3))(x)
        x = k.layers.Bidirectional(k.layers.LSTM(6))(x)
        model = k.Model(inputs, k.layers.Dense(1, activation="sigmoid")(x))
        if source is None:
            source = model
        else:
            assert _layout(model) == _layout(source)
            _copy_weights(source, model)
        configs[k.__name__] = _json([l.get_config() for l in model.layers[2:5]])
        outputs[k.__name__] = _numpy(model.predict(tokens, verbose=0))
        dense = k.saving.serialize_keras_object(model.layers[-1])
        assert dense["build_config"] == {"input_shape": [None, 12]} or \
            _json(dense["build_config"]) == {"input_shape": [None, 12]}
        rebuilt = k.saving.deserialize_keras_object(_json(dense))
        assert rebuilt.built and len(rebuilt.weights) == 2
    assert configs["kestrel"] == configs["keras"]
    assert configs["kestrel"][0]["layer"]["build_config"] == {"input_shape": [None, None, 8]}
    np.testing.assert_allclose(outputs["kestrel"], outputs["keras"], atol=1e-5)


def _mini_gpt(k, maxlen=6, vocab_size=20, embed_dim=8):
    """text_generation_with_miniature_gpt: a causal transformer with two outputs."""
    layers, ops = k.layers, k.ops

    class TransformerBlock(layers.Layer):
        def __init__(self):
            super().__init__()
            self.att = layers.MultiHeadAttention(2, embed_dim)
            self.layernorm = layers.LayerNormalization(epsilon=1e-6)
            self.dropout = layers.Dropout(0.1)

        def call(self, inputs):
            n = ops.shape(inputs)[1]
            mask = ops.cast(ops.arange(n)[:, None] >= ops.arange(n), "bool")
            mask = ops.tile(ops.reshape(mask, [1, n, n]),
                            ops.concatenate([ops.expand_dims(ops.shape(inputs)[0], -1),
                                             ops.convert_to_tensor([1, 1])], 0))
            attention = self.dropout(self.att(inputs, inputs, attention_mask=mask))
            return self.layernorm(inputs + attention)

    inputs = layers.Input(shape=(maxlen,), dtype="int32")
    x = layers.Embedding(vocab_size, embed_dim)(inputs)
    x = TransformerBlock()(x)
    model = k.Model(inputs=inputs, outputs=[layers.Dense(vocab_size)(x), x])
    model.compile("adam", loss=[k.losses.SparseCategoricalCrossentropy(from_logits=True), None])
    return model


def test_mini_gpt_with_a_lossless_output_logs_and_summarizes_as_keras(monkeypatch):
    """loss=[fn, None]: only `loss` is logged; outputs taken along one chain keep the
    sequential-style summary; the sampling callback's top_k/softmax/categorical agree."""
    monkeypatch.setenv("COLUMNS", "200")
    data = np.random.default_rng(0).integers(1, 20, (8, 7)).astype("int32")
    results, weights = {}, None
    for k in (keras, kestrel):
        model = _mini_gpt(_fresh(k))
        if weights is None:  # taken before Keras' model trains
            weights = [layer.get_weights() for layer in model.layers]
        else:
            for layer, values in zip(model.layers, weights):
                layer.set_weights(values)
        lines = []
        model.summary(print_fn=lambda line, **_: lines.append(line))
        logits, _ = model.predict(data[:1, :-1], verbose=0)
        values, indices = k.ops.top_k(logits[0][2], k=4, sorted=True)
        preds = _numpy(k.activations.softmax(k.ops.expand_dims(values, 0))[0])
        sample = k.random.categorical(k.ops.expand_dims(k.ops.log(preds), 0), 3, seed=1)
        history = model.fit(data[:, :-1], data[:, 1:], batch_size=8, epochs=1, verbose=0)
        results[k.__name__] = ("\n".join(lines).splitlines(), _numpy(indices).tolist(), preds,
                               (tuple(sample.shape), str(sample.dtype).split(".")[-1]),
                               sorted(history.history))
    keras_result, kestrel_result = results["keras"], results["kestrel"]
    assert "Connected to" not in "\n".join(kestrel_result[0])
    assert kestrel_result[0] == keras_result[0]
    assert kestrel_result[1] == keras_result[1]
    np.testing.assert_allclose(kestrel_result[2], keras_result[2], atol=1e-5)
    assert kestrel_result[3] == keras_result[3] == ((1, 3), "int32")
    assert kestrel_result[4] == keras_result[4] == ["loss"]


def _bert_embeddings(k, max_len=6, vocab=20, dim=4):
    """end_to_end_mlm_with_bert: fixed sinusoidal position embeddings computed once (a
    constant tensor) and added to the word embeddings inside the graph."""
    inputs = k.layers.Input((max_len,), dtype="int64")
    words = k.layers.Embedding(vocab, dim, name="word_embedding")(inputs)
    table = np.random.default_rng(0).normal(size=(max_len, dim))
    with torch.no_grad():  # computed once, as the example's eager call on `range`
        positions = k.layers.Embedding(max_len, dim, name="position_embedding",
                                       embeddings_initializer=k.initializers.Constant(table))(
            k.ops.arange(start=0, stop=max_len, step=1))
    outputs = k.layers.Dense(vocab, name="mlm_cls", activation="softmax")(words + positions)
    return k.Model(inputs, outputs, name="masked_bert_model")


def test_constant_tensor_argument_in_a_graph_saves_and_loads_as_keras(tmp_path):
    """The Add node's constant argument is written as Keras' `__tensor__`; each library
    loads the other's file with the same predictions."""
    tokens = np.random.default_rng(1).integers(1, 20, (3, 6)).astype("int64")
    weights, models = None, {}
    for k in (keras, kestrel):
        model = _bert_embeddings(_fresh(k))
        if weights is None:
            weights = [layer.get_weights() for layer in model.layers]
        else:
            for layer, values in zip(model.layers, weights):
                layer.set_weights(values)
        model.save(tmp_path / f"{k.__name__}.keras")
        add = [l for l in model.get_config()["layers"] if l["class_name"] == "Add"][0]
        constant = add["inbound_nodes"][0]["args"][1]
        assert constant["class_name"] == "__tensor__" and constant["config"]["dtype"] == "float32"
        models[k.__name__] = model
    expected = _numpy(models["keras"].predict(tokens, verbose=0))
    np.testing.assert_allclose(_numpy(models["kestrel"].predict(tokens, verbose=0)), expected,
                               atol=1e-6)
    for src, dst in (("keras", kestrel), ("kestrel", keras)):
        loaded = dst.models.load_model(tmp_path / f"{src}.keras")
        np.testing.assert_allclose(_numpy(loaded.predict(tokens, verbose=0)), expected,
                                   atol=1e-6)


def test_numpy_arrays_in_any_argument_are_converted_as_keras():
    """`mha(q, v, attention_mask=m)` with NumPy arrays everywhere builds and computes."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 3, 4)).astype("float32")
    mask = np.tril(np.ones((3, 3), "int32"))[None].repeat(2, axis=0)
    outs, weights = [], None
    for k in (keras, kestrel):
        layer = k.layers.MultiHeadAttention(num_heads=2, key_dim=2)
        out = layer(q, q, attention_mask=mask)
        if weights is None:
            weights = layer.get_weights()
        else:
            layer.set_weights(weights)
            out = layer(q, q, attention_mask=mask)
        assert isinstance(out, torch.Tensor)
        outs.append(_numpy(out))
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)
