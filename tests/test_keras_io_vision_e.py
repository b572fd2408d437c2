"""keras.io vision examples (part e: supervised contrastive learning, ViT on small datasets,
ViViT, ...): the same code runs with Kestrel and with real Keras (torch backend); graphs, values
and training behaviour agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def test_symbolic_call_of_augmentation_model_leaves_seed_state():
    """supervised-contrastive-learning: wrapping an augmentation Sequential in functional models
    (a symbolic call) draws nothing, as Keras, so later training draws Keras' transforms."""
    x = np.random.default_rng(0).uniform(0, 255, (2, 6, 6, 3)).astype("float32")
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        aug = k.Sequential([k.layers.RandomFlip("horizontal"), k.layers.RandomRotation(0.2)])
        first = k.ops.convert_to_numpy(aug(x, training=True))
        inputs = k.Input((6, 6, 3))
        k.Model(inputs, k.layers.GlobalAveragePooling2D()(aug(inputs)))
        got[lib] = first, k.ops.convert_to_numpy(aug(x, training=True))
    for a, b in zip(got[kestrel], got[keras]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def _lsa_attention(lib):
    """vit_small_ds' MultiHeadAttentionLSA: a trainable temperature in Keras'
    `_compute_attention` hook, built from the layer's private equations and softmax."""
    ops = lib.ops

    class MultiHeadAttentionLSA(lib.layers.MultiHeadAttention):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.tau = lib.Variable(float(self._key_dim) ** 0.5, trainable=True)

        def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                               return_attention_scores=False):
            query = ops.multiply(query, 1.0 / self.tau)
            scores = ops.einsum(self._dot_product_equation, key, query)
            scores = self._masked_softmax(scores, attention_mask)
            dropped = self._dropout_layer(scores, training=training)
            return ops.einsum(self._combine_equation, dropped, value), scores

    return MultiHeadAttentionLSA


def test_multi_head_attention_subclass_overriding_compute_attention():
    """vit_small_ds: a subclass's `_compute_attention` runs on Keras' projected heads with a
    diagonal int8 mask; outputs, scores, weights and one training step agree with Keras."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 6)).astype("float32")
    y = rng.normal(size=(2, 4, 6)).astype("float32")
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        mask = k.ops.cast([1 - k.ops.eye(4)], dtype="int8")
        inputs = k.Input((4, 6))
        attention = _lsa_attention(k)(num_heads=2, key_dim=3, dropout=0.1)
        model = k.Model(inputs, attention(inputs, inputs, attention_mask=mask))
        _, scores = attention(x, x, attention_mask=mask, return_attention_scores=True)
        model.compile(optimizer="adam", loss="mse")
        before = model.predict(x, verbose=0)
        loss = model.train_on_batch(x, y)
        got[lib] = (before, k.ops.convert_to_numpy(scores), [w.shape for w in model.weights],
                    loss, model.predict(x, verbose=0), attention._dot_product_equation)
    assert got[kestrel][2] == got[keras][2]
    assert got[kestrel][5] == got[keras][5] == "aecd,abcd->acbe"
    assert np.all(got[kestrel][1][..., np.arange(4), np.arange(4)] == 0)
    for index in (0, 1, 3):
        np.testing.assert_allclose(got[kestrel][index], got[keras][index], rtol=1e-5, atol=1e-6)


def test_attention_equations_match_keras():
    """The einsum equations of `_compute_attention` for several ranks and attention axes."""
    from keras.src.layers.attention.multi_head_attention import _build_attention_equation

    from kestrel.layers.attention.keras_internals import attention_equations

    for rank, axes in [(4, (1,)), (5, (1, 2)), (5, (2,)), (6, (1, 3))]:
        assert attention_equations(rank, axes) == _build_attention_equation(rank, axes)


def test_unused_sublayer_makes_every_fit_read_a_build_batch():
    """vit_small_ds (vanilla): a custom layer's sublayer that `call` never uses stays unbuilt,
    so Keras reads a build batch at every fit/evaluate; the shuffled order of the next epoch
    (drawn from the global RNG) agrees with Keras'."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)).astype("float32")
    y = rng.normal(size=(12, 2)).astype("float32")
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)

        class Head(k.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.used, self.unused = k.layers.Dense(2), k.layers.LayerNormalization()

            def call(self, inputs):
                return self.used(inputs)

        inputs = k.Input((3,))
        model = k.Model(inputs, Head()(inputs))
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(x, y, batch_size=4, epochs=3, validation_split=0.25, verbose=0)
        got[lib] = history.history["loss"]
    np.testing.assert_allclose(got[kestrel], got[keras], rtol=1e-5)
