"""Models whose inputs are intermediate tensors, and keras.io's FeatureSpace pattern end to end:
a training model on `get_encoded_features()` and an inference model on `get_inputs()` (raw
strings included). Real Keras 3 is the reference where it runs without TensorFlow (its lookups
and hashing need TF): cut graphs, numeric FeatureSpaces, their configs and `.keras` files."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel.layers.preprocessing.feature_space import FeatureSpace  # noqa: E402

RNG = np.random.default_rng(0)
N = 48
TABLE = {
    "age": RNG.uniform(20, 70, N).astype("float32"),
    "chol": RNG.uniform(100, 300, N).astype("float32"),
    "sex": RNG.integers(0, 2, N).astype("int32"),
    "cp": RNG.integers(0, 4, N).astype("int32"),
    "thal": RNG.choice(["fixed", "normal", "reversible"], N),
    "slope": RNG.choice(["up", "flat", "down"], N),
}
LABELS = RNG.integers(0, 2, N).astype("float32")


def _chain(lib):
    x = lib.Input((4,), name="x")
    h = lib.layers.Dense(3, name="d1")(x)
    return x, h, lib.layers.Dense(2, name="d2")(h)


def test_intermediate_inputs_cut_the_graph_as_keras(tmp_path):
    x, h, y = _chain(kestrel)
    cut = kestrel.Model(h, y)
    full = kestrel.Model(x, y)  # the original graph is left intact
    k_x, k_h, k_y = _chain(keras)
    k_cut = keras.Model(k_h, k_y)
    assert [type(layer).__name__ for layer in cut.layers] == \
        [type(layer).__name__ for layer in k_cut.layers] == ["InputLayer", "Dense"]
    # the clone input is named after the cut tensor, `keras_tensor_<n>CLONE`, as in Keras
    assert cut.layers[0].name == f"{h.name}CLONE" and h.name.startswith("keras_tensor")
    assert k_cut.layers[0].name == f"{k_h.name}CLONE"
    assert cut.count_params() == k_cut.count_params() == 8
    assert full.count_params() == 23
    data = RNG.normal(size=(5, 3)).astype("float32")
    expected = full.get_layer("d2")(torch.from_numpy(data)).detach().numpy()
    np.testing.assert_allclose(cut.predict(data, verbose=0), expected, rtol=1e-6)
    config = cut.get_config()
    assert [entry["class_name"] for entry in config["layers"]] == ["InputLayer", "Dense"]
    assert config["layers"][1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == \
        [f"{h.name}CLONE", 0, 0]
    cut.compile("adam", "mse")
    cut.fit(data, np.zeros((5, 2)), epochs=1, verbose=0)
    cut.save(tmp_path / "cut.keras")
    again = kestrel.saving.load_model(tmp_path / "cut.keras")
    np.testing.assert_allclose(again.predict(data, verbose=0), cut.predict(data, verbose=0))
    # a cut model saved by real Keras (input named `keras_tensor...CLONE`) loads in Kestrel
    k_cut.save(tmp_path / "keras_cut.keras")
    loaded = kestrel.saving.load_model(tmp_path / "keras_cut.keras")
    assert loaded.layers[0].name.endswith("CLONE")
    np.testing.assert_allclose(loaded.predict(data, verbose=0),
                               np.asarray(k_cut.predict(data, verbose=0)), rtol=1e-5, atol=1e-6)


def test_cut_with_an_input_and_an_intermediate_in_a_dict():
    a = kestrel.Input((2,), name="a")
    b = kestrel.Input((2,), name="b")
    ha = kestrel.layers.Dense(2, name="ha")(a)
    out = kestrel.layers.Add(name="add")([ha, b])
    model = kestrel.Model({"ha": ha, "b": b}, out)
    assert [layer.name for layer in model.layers if type(layer).__name__ == "InputLayer"] \
        in ([f"{ha.name}CLONE", "b"], ["b", f"{ha.name}CLONE"])
    ones = np.ones((3, 2), "float32")
    np.testing.assert_allclose(model.predict({"ha": ones, "b": 2 * ones}, verbose=0), 3 * ones)
    with pytest.raises(ValueError, match="disconnected"):
        kestrel.Model(ha, out)  # `b` feeds `add` but is not among the inputs


def _space(**kwargs):
    fs = FeatureSpace(
        {"age": "float_discretized", "chol": "float_normalized", "sex": "integer_categorical",
         "cp": "integer_categorical", "thal": "string_categorical", "slope": "string_hashed"},
        crosses=[FeatureSpace.cross(("sex", "age"), crossing_dim=8),
                 FeatureSpace.cross(("thal", "cp"), crossing_dim=16)],
        hashing_dim=4, num_discretization_bins=3, **kwargs)
    fs.adapt(TABLE)
    return fs


def _head(encoded):
    x = kestrel.layers.Dense(8, activation="relu")(encoded)
    x = kestrel.layers.Dropout(0.5)(x)
    return kestrel.layers.Dense(1, activation="sigmoid")(x)


def test_keras_io_feature_space_flow(tmp_path):
    fs = _space()
    dict_inputs = fs.get_inputs()
    assert dict_inputs["thal"].dtype == "string" and dict_inputs["thal"].shape == (None, 1)
    assert dict_inputs["sex"].dtype == "int32" and dict_inputs["age"].dtype == "float32"
    encoded = fs.get_encoded_features()
    assert fs.get_encoded_features() is encoded and encoded.shape == (None, 3 + 1 + 5 + 3 + 4
                                                                      + 4 + 8 + 16)
    predictions = _head(encoded)
    training = kestrel.Model(inputs=encoded, outputs=predictions)
    training.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    training.fit(fs(TABLE), LABELS, epochs=2, batch_size=16, verbose=0)
    inference = kestrel.Model(inputs=dict_inputs, outputs=predictions)
    # the inference model holds the FeatureSpace's layers, so it sees the trained weights
    np.testing.assert_allclose(inference.predict(TABLE, verbose=0),
                               training.predict(fs(TABLE), verbose=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        inference.predict(TABLE, verbose=0),
        training(fs(TABLE)).detach().numpy(), rtol=1e-6, atol=1e-7)
    norm_weights = 3  # Normalization's mean, variance and count, counted as in Keras
    assert inference.count_params() == training.count_params() + norm_weights
    sample = {"age": 60.0, "sex": 1, "cp": 1, "chol": 233.0, "thal": "fixed", "slope": "up"}
    one = inference.predict({k: np.array([v]) for k, v in sample.items()}, verbose=0)
    np.testing.assert_allclose(one, training.predict(fs(sample)[None], verbose=0), rtol=1e-6)
    inference.save(tmp_path / "inference.keras")
    training.save(tmp_path / "training.keras")
    inference2 = kestrel.saving.load_model(tmp_path / "inference.keras")
    training2 = kestrel.saving.load_model(tmp_path / "training.keras")
    np.testing.assert_allclose(inference2.predict(TABLE, verbose=0),
                               inference.predict(TABLE, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(training2.predict(fs(TABLE), verbose=0),
                               training.predict(fs(TABLE), verbose=0), rtol=1e-6)


def test_dict_mode_models():
    fs = _space(output_mode="dict")
    encoded = fs.get_encoded_features()
    assert list(encoded) == ["age", "chol", "cp", "sex", "slope", "thal", "sex_X_age",
                             "thal_X_cp"]
    merged = kestrel.layers.Concatenate()(list(encoded.values()))
    predictions = _head(merged)
    training = kestrel.Model(encoded, predictions)
    inference = kestrel.Model(fs.get_inputs(), predictions)
    np.testing.assert_allclose(inference.predict(TABLE, verbose=0),
                               training.predict(fs(TABLE), verbose=0), rtol=1e-6, atol=1e-7)


def _numeric_space(lib, space_cls):
    norm = lib.layers.Normalization(mean=200.0, variance=900.0, name="chol_preprocessor")
    return space_cls({"chol": space_cls.feature("float32", norm, "float"), "raw": "float",
                      "age": space_cls.float_rescaled(scale=0.5, offset=1.0, name="age")})


def test_numeric_feature_space_models_match_keras(tmp_path):
    data = {"age": TABLE["age"], "chol": TABLE["chol"], "raw": RNG.normal(size=N).astype("f4")}
    fs = _numeric_space(kestrel, FeatureSpace)
    k_fs = _numeric_space(keras, keras.utils.FeatureSpace)
    encodings = kestrel.Model(fs.get_inputs(), fs.get_encoded_features()).predict(
        data, verbose=0)
    k_encodings = keras.Model(k_fs.get_inputs(), k_fs.get_encoded_features()).predict(
        data, verbose=0)
    np.testing.assert_allclose(encodings, np.asarray(k_encodings), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fs(data).numpy(), encodings, rtol=1e-6)

    def models(lib, space):
        encoded = space.get_encoded_features()
        out = lib.layers.Dense(1)(lib.layers.Dense(4, activation="relu")(encoded))
        return lib.Model(encoded, out), lib.Model(space.get_inputs(), out)
    training, inference = models(kestrel, fs)
    k_training, k_inference = models(keras, k_fs)
    assert training.count_params() == k_training.count_params()
    assert inference.count_params() == k_inference.count_params()
    inference.set_weights([np.asarray(w) for w in k_inference.get_weights()])
    np.testing.assert_allclose(inference.predict(data, verbose=0),
                               np.asarray(k_inference.predict(data, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    # Kestrel's file of the inference model loads in Keras, and Keras' files of both load here
    inference.save(tmp_path / "inference.keras")
    in_keras = keras.saving.load_model(tmp_path / "inference.keras")
    assert [type(layer).__name__ for layer in in_keras.layers] == \
        [type(layer).__name__ for layer in k_inference.layers]
    np.testing.assert_allclose(np.asarray(in_keras.predict(data, verbose=0)),
                               inference.predict(data, verbose=0), rtol=1e-5, atol=1e-6)
    # Keras' own files of both models (TFDIdentity, TFDConcat, a `...CLONE` input) load here
    k_inference.save(tmp_path / "k_inference.keras")
    k_training.save(tmp_path / "k_training.keras")
    loaded = kestrel.saving.load_model(tmp_path / "k_inference.keras")
    np.testing.assert_allclose(loaded.predict(data, verbose=0),
                               np.asarray(k_inference.predict(data, verbose=0)),
                               rtol=1e-5, atol=1e-6)
    loaded_training = kestrel.saving.load_model(tmp_path / "k_training.keras")
    np.testing.assert_allclose(loaded_training.predict(encodings, verbose=0),
                               np.asarray(k_training.predict(encodings, verbose=0)),
                               rtol=1e-5, atol=1e-6)
