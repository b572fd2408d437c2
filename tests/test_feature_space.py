"""FeatureSpace: Keras' FeatureSpace adapts and encodes through tf.data (TensorFlow), so the
encodings are checked against hand-computed values and against the real Keras layers it is
built from where those run without TensorFlow (Normalization, Discretization); configs are
exchanged with real Keras' FeatureSpace."""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel.layers.preprocessing import HashedCrossing, Hashing  # noqa: E402
from kestrel.layers.preprocessing.feature_space import FeatureSpace  # noqa: E402

RNG = np.random.RandomState(0)
DATA = {
    "age": RNG.uniform(18, 80, 40).astype("float32"),
    "income": RNG.lognormal(3, 1, 40).astype("float32"),
    "color": np.array(["red"] * 20 + ["blue"] * 12 + ["green"] * 8),
    "rooms": np.array([1] * 5 + [2] * 25 + [3] * 10),
    "city": np.array([f"city{i % 7}" for i in range(40)]),
    "zip": np.arange(40) * 13,
    "score": RNG.uniform(0, 10, 40).astype("float32"),
    "raw": RNG.randn(40).astype("float32"),
}
KINDS = {"age": "float_normalized", "income": "float_discretized", "color": "string_categorical",
         "rooms": "integer_categorical", "city": "string_hashed", "zip": "integer_hashed",
         "score": "float_rescaled", "raw": "float"}


def _space(**kwargs):
    fs = FeatureSpace(KINDS, crosses=[("color", "rooms")], crossing_dim=8, hashing_dim=5,
                      num_discretization_bins=4, **kwargs)
    fs.adapt(DATA)
    return fs


def _one_hot(indices, depth):
    return np.eye(depth, dtype="float32")[np.asarray(indices).reshape(-1)]


def test_concat_encoding_matches_hand_computed_and_keras_layers():
    fs = _space()
    out = fs(DATA).numpy()
    norm = keras.layers.Normalization(axis=-1)
    norm.adapt(DATA["age"][:, None])
    boundaries = fs.preprocessors["income"].bin_boundaries  # Keras adapts it only via TF
    np.testing.assert_allclose(boundaries, np.quantile(DATA["income"], [0.25, 0.5, 0.75]),
                               rtol=0.25)
    disc = keras.layers.Discretization(bin_boundaries=boundaries)
    color = {"red": 1, "blue": 2, "green": 3}  # OOV first, then by frequency
    rooms = {2: 1, 3: 2, 1: 3}
    color_idx = [color[c] for c in DATA["color"]]
    rooms_idx = [rooms[r] for r in DATA["rooms"]]
    cross = HashedCrossing(8)((np.array(color_idx), np.array(rooms_idx))).numpy()
    expected = np.concatenate([  # sorted feature names, then the cross
        np.asarray(norm(DATA["age"][:, None])),
        _one_hot(Hashing(5)(DATA["city"]).numpy(), 5),
        _one_hot(color_idx, 4),
        _one_hot(np.asarray(disc(DATA["income"][:, None])), 4),
        DATA["raw"][:, None],
        _one_hot(rooms_idx, 4),
        DATA["score"][:, None],  # float_rescaled defaults: scale 1, offset 0
        _one_hot(Hashing(5)(DATA["zip"]).numpy(), 5),
        _one_hot(cross, 8)], axis=1)
    assert out.shape == expected.shape == (40, 1 + 5 + 4 + 4 + 1 + 4 + 1 + 5 + 8)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert fs.get_encoded_features().shape == (None, out.shape[1])


def test_dict_mode_int_outputs_and_scalars():
    fs = FeatureSpace({"color": FeatureSpace.string_categorical(output_mode="int"),
                       "rooms": "integer_categorical", "age": "float"},
                      output_mode="dict", crosses=[FeatureSpace.cross(("color", "rooms"), 4,
                                                                      output_mode="int")])
    fs.adapt({k: DATA[k] for k in ("color", "rooms", "age")})
    out = fs({k: DATA[k][:3] for k in ("color", "rooms", "age")})
    assert list(out) == ["age", "color", "rooms", "color_X_rooms"]
    assert out["color"].tolist() == [[1], [1], [1]] and out["color"].dtype == torch.int64
    assert out["rooms"].shape == (3, 4) and out["age"].shape == (3, 1)
    assert out["color_X_rooms"].shape == (3, 1)
    single = fs({"color": "blue", "rooms": 3, "age": 1.5})
    assert single["color"].tolist() == [2] and single["rooms"].tolist() == [0, 0, 1, 0]
    encoded = fs.get_encoded_features()
    assert encoded["rooms"].shape == (None, 4) and encoded["color"].dtype == "int64"
    concat = FeatureSpace({"color": FeatureSpace.string_categorical(output_mode="int")})
    concat.adapt({"color": DATA["color"]})
    with pytest.raises(ValueError, match="has not been encoded"):
        concat({"color": DATA["color"]})


def test_adapt_on_batches_equals_adapt_on_arrays():
    whole = _space()
    streamed = FeatureSpace(KINDS, crosses=[("color", "rooms")], crossing_dim=8,
                            hashing_dim=5, num_discretization_bins=4)
    streamed.adapt([{k: v[i:i + 16] for k, v in DATA.items()} for i in range(0, 40, 16)])
    np.testing.assert_allclose(streamed(DATA).numpy(), whole(DATA).numpy(), atol=1e-4)
    scalar = whole({k: v[0] for k, v in DATA.items()})
    np.testing.assert_allclose(scalar.numpy(), whole(DATA)[0].numpy(), atol=1e-6)


def test_config_round_trip_and_exchange_with_keras():
    fs = _space()
    config = json.loads(json.dumps(fs.get_config()))
    clone = FeatureSpace.from_config(config)
    assert list(clone.features) == list(fs.features)
    assert clone.crosses[0].name == "color_X_rooms" and clone.crosses[0].crossing_dim == 8
    clone.adapt(DATA)
    np.testing.assert_allclose(clone(DATA).numpy(), fs(DATA).numpy(), atol=1e-5)
    numeric = {"a": "float_normalized", "b": "float_discretized", "c": "float",
               "d": "float_rescaled"}
    ref = keras.utils.FeatureSpace(numeric, num_discretization_bins=3).get_config()
    ours = FeatureSpace(numeric, num_discretization_bins=3).get_config()
    assert set(ref) <= set(ours)
    for name in numeric:
        assert ours["features"][name]["class_name"] == ref["features"][name]["class_name"]
        assert ours["features"][name]["config"]["preprocessor"]["class_name"] == \
            ref["features"][name]["config"]["preprocessor"]["class_name"]
    from_keras = FeatureSpace.from_config(json.loads(json.dumps(ref)))
    from_keras.adapt({k: DATA["age"] for k in numeric})
    assert from_keras({k: DATA["age"] for k in numeric}).shape == (40, 1 + 3 + 1 + 1)


def test_saved_with_a_model(tmp_path):
    fs = _space()
    encoded = fs.get_encoded_features()
    outputs = kestrel.layers.Dense(1, activation="sigmoid")(
        kestrel.layers.Dense(8, activation="relu")(encoded))
    model = kestrel.Model(encoded, outputs)
    model.compile("adam", "binary_crossentropy")
    labels = (DATA["age"] > 50).astype("float32")
    model.fit(fs(DATA), labels, epochs=2, batch_size=8, verbose=0)
    fs.save(str(tmp_path / "fs.keras"))
    model.save(str(tmp_path / "model.keras"))
    fs2 = kestrel.saving.load_model(str(tmp_path / "fs.keras"))
    model2 = kestrel.saving.load_model(str(tmp_path / "model.keras"))
    assert isinstance(fs2, FeatureSpace)
    torch.testing.assert_close(fs2(DATA), fs(DATA))
    torch.testing.assert_close(model2(fs2(DATA)), model(fs(DATA)))


def test_inputs_and_errors():
    fs = FeatureSpace({"age": "float", "color": "string_categorical"})
    inputs = fs.get_inputs()
    assert inputs["age"].shape == (None, 1) and inputs["color"].dtype == "string"
    with pytest.raises(ValueError, match="adapt"):
        fs({"age": [1.0], "color": ["a"]})
    fs.adapt({"age": [1.0], "color": ["a"]})
    with pytest.raises(ValueError, match="dict"):
        fs([1.0, 2.0])
    with pytest.raises(ValueError, match="missing"):
        fs({"age": [1.0]})
    with pytest.raises(ValueError, match="invalid feature type"):
        FeatureSpace({"x": "float_magic"})
    with pytest.raises(ValueError, match="unknown"):
        FeatureSpace({"x": "float"}, crosses=[("x", "y")])
    with pytest.raises(ValueError, match="output_mode"):
        FeatureSpace({"x": "float"}, output_mode="list")
    with pytest.raises(ValueError, match="empty"):
        FeatureSpace({})
    with pytest.raises(ValueError, match="adapt"):
        fs.adapt([1, 2, 3])
