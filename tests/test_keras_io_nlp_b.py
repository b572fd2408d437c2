"""keras.io NLP examples, part b (transformer and switch-transformer classifiers, multi-label
classification, masked language modelling, text generation, IMDB LSTM, token classification):
the same code runs with Kestrel and with real Keras (torch backend) and agrees.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _router(k):
    """text_classification_with_switch_transformer: a Router adds a load-balancing loss."""
    class Router(k.layers.Layer):
        def __init__(self):
            super().__init__()
            self.route = k.layers.Dense(3)

        def call(self, inputs):
            probs = k.ops.softmax(self.route(inputs))
            self.add_loss(k.ops.mean(probs) * 9.0)
            return probs

    return Router


def test_symbolic_calls_leave_no_losses_as_keras():
    """Building a functional or subclassed model adds no `losses`; a real call adds them."""
    found = {}
    for k in (keras, kestrel):
        Router = _router(_fresh(k))
        inputs = k.Input((4,))
        model = k.Model(inputs, k.layers.Dense(2)(Router()(inputs)))
        after_build = len(model.losses)
        model(np.ones((2, 4), "float32"))
        after_call = [float(loss) for loss in model.losses]

        class Wrapper(k.Model):
            def __init__(self):
                super().__init__()
                self.router = Router()

            def call(self, x):
                return self.router(x)

        wrapper = Wrapper()
        wrapper.build((None, 4))
        found[k] = (after_build, after_call, len(wrapper.losses))
    assert found[kestrel] == found[keras]
    assert found[keras][:1] == (0,) and found[keras][1] == [3.0] and found[keras][2] == 0


# Keras' lookup layers need TensorFlow, which is not a test dependency: the expected values
# below were printed by Keras 3.15.1 (torch backend, TensorFlow 2 installed beside it).
_TEXTS = np.array(["The cat sat.", "the dog, the CAT!", "a bird", "cat cat dog"])


def test_adapted_lookups_keep_the_vocabulary_out_of_the_config_as_keras():
    """multi_label_classification: StringLookup(multi_hot) and TextVectorization(tf_idf)."""
    layers = kestrel.layers
    terms = np.array([["cs.LG", "cs.CV"], ["cs.CV", "stat.ML"], ["cs.CV", "cs.CV"]])
    lookup = layers.StringLookup(output_mode="multi_hot")
    lookup.adapt(terms)
    vocab = lookup.get_vocabulary()
    assert repr(vocab) == "['[UNK]', np.str_('cs.CV'), np.str_('stat.ML'), np.str_('cs.LG')]"
    assert lookup([terms[0]]).tolist() == [[0, 1, 0, 1]]
    config = lookup.get_config()
    assert (config["vocabulary"], config["idf_weights"], config["vocabulary_size"]) == \
        (None, None, 4)
    vectorizer = layers.TextVectorization(ngrams=2, output_mode="tf_idf")
    vectorizer.adapt(_TEXTS)
    config = vectorizer.get_config()
    assert (config["vocabulary"], config["idf_weights"], config["vocabulary_size"]) == \
        (None, None, 14)
    np.testing.assert_allclose(vectorizer(_TEXTS[2:]).numpy().round(5), [[
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.09861, 1.09861, 1.09861],
        [0, 1.38629, 0, 0, 0.8473, 0, 0, 0, 0, 1.09861, 1.09861, 0, 0, 0]], rtol=1e-4)
    integers = layers.IntegerLookup()
    integers.adapt(np.array([5, 7, 7, 9, 5, 5]))
    assert repr(integers.get_vocabulary()) == "[-1, np.int64(5), np.int64(7), np.int64(9)]"
    assert integers.get_config()["vocabulary"] is None
    given = layers.StringLookup(vocabulary=["a", "b"])
    assert given.get_config()["vocabulary"] == ["a", "b"]
    assert layers.StringLookup.from_config(given.get_config())(["b"]).tolist() == [2]


def test_ragged_lists_and_scalar_strings_as_keras():
    """Rows of different lengths raise Keras' ValueError (they were turned into one string
    each); one string gives one row without a batch axis."""
    layers = kestrel.layers
    for make in (lambda: layers.StringLookup().adapt([["a", "b"], ["c"]]),
                 lambda: layers.StringLookup(vocabulary=["a"])([["a", "b"], ["c"]]),
                 lambda: layers.TextVectorization(vocabulary=["a"])(["a b", ["c"]])):
        try:
            make()
        except ValueError as error:
            assert "non-rectangular Python sequence" in str(error)
        else:
            raise AssertionError("a ragged list was accepted")
    vectorizer = layers.TextVectorization(max_tokens=10)
    vectorizer.adapt(_TEXTS)
    assert vectorizer("cat dog").tolist() == [2, 4]
    assert vectorizer(["cat", "the dog sat down here"]).tolist() == \
        [[2, 0, 0, 0, 0], [3, 4, 5, 1, 1]]


def test_tf_idf_weights_are_saved_as_keras_variables(tmp_path):
    """Keras writes the idf weights as `idf_weights` under the vectorizer's and its inner
    lookup's `vars` (a Keras-written file failed to load: it counted one unexpected variable)."""
    import h5py
    import zipfile

    k = _fresh(kestrel)
    vectorizer = k.layers.TextVectorization(ngrams=2, output_mode="tf_idf")
    vectorizer.adapt(_TEXTS)
    model = k.Sequential([k.Input((), dtype="string"), vectorizer, k.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as f:
        for group in ("layers/text_vectorization/vars",
                      "layers/text_vectorization/_lookup_layer/vars"):
            np.testing.assert_allclose(f[group]["idf_weights"][()][:2], [1.0094268, 0.6931472])
    restored = k.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored.predict(_TEXTS, verbose=0),
                               model.predict(_TEXTS, verbose=0), rtol=1e-6)
    assert restored.layers[0].get_vocabulary() == vectorizer.get_vocabulary()


def test_functional_constructed_subclass_trains_its_dropout_as_keras():
    """masked_language_modeling: `MaskedLanguageModel(inputs, outputs)` (a Model subclass
    built by the functional constructor) ran its Dropout layers in inference during fit."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6)).astype("float32"), rng.normal(size=(16, 3))
    losses = {}
    for k in (keras, kestrel):
        k = _fresh(k)

        class MaskedLanguageModel(k.Model):
            pass

        inputs = k.Input((6,))
        hidden = k.layers.Dropout(0.5)(k.layers.Dense(8)(inputs))
        model = MaskedLanguageModel(inputs, k.layers.Dense(3)(hidden))
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        losses[k] = history.history["loss"]
    np.testing.assert_allclose(losses[kestrel], losses[keras], rtol=1e-5)


def test_sequential_led_by_text_vectorization_fits_on_strings():
    """multi_label_trainer_tfidf: `Sequential([text_vectorizer, Dense, ...])` without an Input
    fits on a `(batch, 1)` string array (building it failed: "Unknown dtype '<U..'"); its
    history equals real Keras' on the vectorized numbers with the same weights. (Keras' torch
    backend cannot take string arrays in fit; its TensorFlow backend can.)"""
    rng = np.random.default_rng(0)
    words = "deep learning model image graph network data the a of".split()
    texts = np.array([[" ".join(rng.choice(words, 6))] for _ in range(16)])
    y = (rng.random((16, 3)) > 0.5).astype("float32")
    k = _fresh(kestrel)
    vectorizer = k.layers.TextVectorization(max_tokens=12, ngrams=2, output_mode="tf_idf")
    vectorizer.adapt(texts)
    model = k.Sequential([vectorizer, k.layers.Dense(4, activation="relu"),
                          k.layers.Dense(3, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd")
    model(texts[:2])
    reference = keras.Sequential([keras.Input((12,)), keras.layers.Dense(4, activation="relu"),
                                  keras.layers.Dense(3, activation="sigmoid")])
    for mine, theirs in zip(model.layers[1:], reference.layers):
        theirs.set_weights(mine.get_weights())
    reference.compile(loss="binary_crossentropy", optimizer="sgd")
    history = model.fit(texts, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    expected = reference.fit(vectorizer(texts).numpy(), y, batch_size=8, epochs=2,
                             shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-5)
    assert model.predict(texts[:3], verbose=0).shape == (3, 3)


def test_recurrent_dropout_masks_are_drawn_in_inference_as_keras():
    """imdb_lstm_sentiment: Keras' RNN call draws a cell's dropout masks in inference too
    (unused), so the validation pass moves the random state and epoch 2 differed."""
    import hashlib

    import torch

    def rng_state():
        return hashlib.md5(torch.random.get_rng_state().numpy().tobytes()).hexdigest()

    tokens = np.random.default_rng(0).integers(1, 30, (4, 5))
    makers = (lambda k: k.layers.LSTM(3, dropout=0.2),
              lambda k: k.layers.Bidirectional(k.layers.LSTM(3, dropout=0.2)),
              lambda k: k.layers.GRU(3, dropout=0.2, recurrent_dropout=0.1))
    states = {}
    for k in (keras, kestrel):
        states[k] = []
        for make in makers:
            k = _fresh(k)
            model = k.Sequential([k.Input((5,)), k.layers.Embedding(30, 4), make(k)])
            model(tokens)
            states[k].append(rng_state())
    assert states[kestrel] == states[keras]
    k = _fresh(keras)
    k.Sequential([k.Input((5,)), k.layers.Embedding(30, 4), k.layers.LSTM(3)])(tokens)
    assert rng_state() != states[keras][0]  # the draws are what moved it


def test_input_shape_argument_warns_as_keras():
    """imdb_lstm_sentiment: `Embedding(..., input_shape=(200,))` warns to use an Input, from
    the line that calls the base constructor, as Keras."""
    import warnings

    found = {}
    for k in (keras, kestrel):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            k.layers.Embedding(input_dim=50, output_dim=8, input_shape=(12,))
            k.layers.Dense(3, input_dim=4)
            k.layers.Dense(3)
        found[k] = [(str(w.message), os.path.basename(w.filename)) for w in caught
                    if "input_shape" in str(w.message)]
    assert found[kestrel] == found[keras] and len(found[keras]) == 2
