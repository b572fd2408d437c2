"""`Input(dtype="string")`: string data flows as NumPy arrays into the layers that read strings,
through functional graphs, fit (shuffled and split), predict and `.keras` files."""
import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel import layers

TEXTS = np.array(["good movie", "bad film", "great great movie", "awful bad",
                  "fine film indeed", "terrible"] * 8)
LABELS = np.array([1, 0, 1, 0, 1, 0] * 8)


def _text_model():
    vectorize = layers.TextVectorization(max_tokens=50, output_sequence_length=6)
    vectorize.adapt(TEXTS)
    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    x = layers.Embedding(50, 8)(vectorize(inputs))
    outputs = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs), vectorize


def test_string_input_is_a_string_keras_tensor():
    inputs = keras.Input(shape=(1,), dtype="string")
    assert inputs.dtype == "string" and inputs.shape == (None, 1)
    lookup = layers.StringLookup(vocabulary=["a", "b"])
    out = lookup(inputs)
    assert out.shape == (None, 1) and out.dtype == "int64"
    config = keras.Model(inputs, out).get_config()
    assert config["layers"][0]["config"]["dtype"] == "string"


def test_text_model_fits_predicts_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    model, _ = _text_model()
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(TEXTS, LABELS, epochs=3, batch_size=8, shuffle=True,
                        validation_split=0.25, verbose=0)
    assert len(history.history["val_loss"]) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]
    queries = ["good movie", "awful"]  # a Python list of str works as in Keras
    predictions = model.predict(queries, verbose=0)
    assert predictions.shape == (2, 1)
    model.save(tmp_path / "text.keras")
    restored = keras.models.load_model(tmp_path / "text.keras")
    np.testing.assert_allclose(restored.predict(np.array(queries), verbose=0), predictions,
                               rtol=1e-6)
    assert restored.inputs[0].dtype == "string"


def test_eager_call_on_strings_keeps_them_numpy_until_the_string_layer():
    model, vectorize = _text_model()
    out = model(np.array([["good movie"], ["bad"]]))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1)
    tokens = vectorize(np.array(["good movie"]))
    assert tokens.dtype == torch.int64 and tokens.shape == (1, 6)


def test_numeric_layer_on_strings_is_a_clear_error():
    inputs = keras.Input(shape=(2,), dtype="string")
    with pytest.raises((ValueError, TypeError)):
        layers.Dense(3)(inputs)
