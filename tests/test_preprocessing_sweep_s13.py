"""Preprocessing sweep: output shapes, configs, `.keras` exchange and errors against Keras 3.

Discretization and CategoryEncoding run in Keras' torch backend and are compared directly.
StringLookup, IntegerLookup, TextVectorization and Hashing need TensorFlow in Keras, so their
expected shapes and messages follow Keras' source (`compute_output_shape`, `set_vocabulary`)."""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel.layers.preprocessing import (CategoryEncoding, Discretization,  # noqa: E402
                                          HashedCrossing, Hashing, IntegerLookup, StringLookup,
                                          TextVectorization)

DATA = np.random.RandomState(0).rand(50, 1).astype("float32")
VOCAB = ["a", "b", "c", "d"]
SHAPES = [(None, 3), (None, 1), (4,)]


def _keras_adapt(layer, data):
    """Keras' Discretization.adapt without its TensorFlow type check (the math is NumPy)."""
    layer.reset_state()
    layer.update_state(data)
    layer.finalize_state()


def _concrete(shape):
    return tuple(2 if d is None else d for d in shape)


# ---------------------------------------------------------------- shapes against real Keras
@pytest.mark.parametrize("mode", ["int", "one_hot", "multi_hot", "count"])
def test_discretization_output_shapes_match_keras(mode):
    ours = Discretization(bin_boundaries=[0.0, 1.0], output_mode=mode)
    ref = keras.layers.Discretization(bin_boundaries=[0.0, 1.0], output_mode=mode)
    for shape in SHAPES:
        assert tuple(ours.compute_output_shape(shape)) == tuple(ref.compute_output_shape(shape))
        x = np.zeros(_concrete(shape), "float32")
        assert tuple(ours(torch.from_numpy(x)).shape) == tuple(ref(x).shape)


@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
def test_category_encoding_shapes_and_config_match_keras(mode):
    ours = CategoryEncoding(5, output_mode=mode, name="enc")
    ref = keras.layers.CategoryEncoding(5, output_mode=mode, name="enc")
    for shape in SHAPES:
        assert tuple(ours.compute_output_shape(shape)) == tuple(ref.compute_output_shape(shape))
    assert ours.get_config() == ref.get_config()


# ---------------------------------------------------------------- Discretization .keras
def test_discretization_keras_files_both_directions(tmp_path):
    ref = keras.layers.Discretization(num_bins=4, output_mode="one_hot", epsilon=0.05,
                                      name="disc")
    _keras_adapt(ref, DATA)
    inputs = keras.Input((1,))
    keras_model = keras.Model(inputs, ref(inputs))
    keras_model.save(tmp_path / "keras.keras")
    loaded = kestrel.saving.load_model(tmp_path / "keras.keras")
    assert loaded.get_layer("disc").get_config() == ref.get_config()
    np.testing.assert_array_equal(loaded(torch.from_numpy(DATA[:5])).numpy(),
                                  keras.ops.convert_to_numpy(keras_model(DATA[:5])))

    ours = Discretization(num_bins=4, output_mode="count", epsilon=0.05, name="disc")
    ours.adapt(DATA)
    inputs = kestrel.Input((1,))
    model = kestrel.Model(inputs, ours(inputs))
    model.save(tmp_path / "ours.keras")
    back = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(back.get_layer("disc").bin_boundaries, ours.bin_boundaries)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(back(DATA[:5])),
                                  model(torch.from_numpy(DATA[:5])).numpy())


# ---------------------------------------------------------------- lookups (Keras' formulas)
@pytest.mark.parametrize("kwargs, shape, expected", [
    ({}, (None, 3), (None, 3)),
    ({"output_mode": "one_hot"}, (None, 3), (None, 3, 5)),
    ({"output_mode": "one_hot"}, (None, 1), (None, 5)),
    ({"output_mode": "one_hot"}, (4,), (4, 5)),
    ({"output_mode": "multi_hot"}, (None, 3), (None, 5)),
    ({"output_mode": "count", "max_tokens": 8, "pad_to_max_tokens": True}, (None, 3), (None, 8)),
    ({"output_mode": "tf_idf", "idf_weights": [0.1, 0.2, 0.3, 0.4]}, (None, 2), (None, 5)),
])
def test_string_lookup_output_shape(kwargs, shape, expected):
    layer = StringLookup(vocabulary=VOCAB, **kwargs)
    assert layer.compute_output_shape(shape) == expected
    eager = layer(np.full(_concrete(shape), "a"))
    assert tuple(eager.shape) == _concrete(expected)
    symbolic = layer(kestrel.Input(shape[1:], dtype="string")) if len(shape) > 1 else None
    assert symbolic is None or tuple(symbolic.shape) == expected


def test_integer_lookup_mask_oov_and_keras_file(tmp_path):
    layer = IntegerLookup(mask_token=0, num_oov_indices=2)
    layer.adapt(np.array([[3, 3, 5, 0, 7]]))
    assert layer.get_vocabulary() == [0, -1, -1, 3, 7, 5]
    x = torch.tensor([[3, 0, 5, 9, 8]])  # OOV ints: 1 + value % 2, as Keras' floormod
    assert layer(x).tolist() == [[3, 0, 5, 2, 1]]
    inputs = kestrel.Input((None,), dtype="int64")
    model = kestrel.Model(inputs, layer(inputs))
    model.save(tmp_path / "lookup.keras")
    again = kestrel.saving.load_model(tmp_path / "lookup.keras")
    assert again(x).tolist() == [[3, 0, 5, 2, 1]]
    assert again.layers[1].get_vocabulary() == layer.get_vocabulary()
    assert layer.compute_output_shape((None, 5)) == (None, 5)


@pytest.mark.parametrize("kwargs, match", [  # Keras' IndexLookup messages
    ({"vocabulary": ["a", "a"]}, "at least one repeated term"),
    ({"vocabulary": []}, "empty vocabulary"),
    ({"vocabulary": ["a", ""], "mask_token": ""}, "reserved mask token at unexpected"),
    ({"vocabulary": ["a", "[UNK]"], "invert": True}, "reserved OOV token at unexpected"),
    ({"vocabulary": VOCAB, "max_tokens": 3}, "larger than the maximum vocab size"),
    ({"max_tokens": 1}, "must be greater than 1"),
    ({"pad_to_max_tokens": True}, "must set `max_tokens`"),
    ({"invert": True, "output_mode": "one_hot"}, "must be `'int'` when `invert`"),
    ({"vocabulary": VOCAB, "output_mode": "tf_idf"}, "`idf_weights` argument must also"),
    ({"vocabulary": VOCAB, "idf_weights": [1.0] * 4}, "only be set if `output_mode`"),
])
def test_string_lookup_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StringLookup(**kwargs)


def test_oov_token_inside_vocabulary_is_a_token_unless_inverting():
    # Keras only rejects a misplaced OOV token when `invert=True`
    layer = StringLookup(vocabulary=["a", "[UNK]"])
    assert layer(["[UNK]", "z"]).tolist() == [2, 0]
    assert StringLookup(vocabulary=["[UNK]", "a"]).get_vocabulary() == ["[UNK]", "a"]


# ---------------------------------------------------------------- Hashing
@pytest.mark.parametrize("mode, shape, expected", [  # Keras' Hashing.compute_output_shape
    ("int", (None, 3), (None, 3)), ("multi_hot", (None, 3), (None, 4)),
    ("count", (None, 1), (None, 4)), ("one_hot", (None, 1), (None, 4)), ("count", (), (4,)),
])
def test_hashing_output_shape(mode, shape, expected):
    layer = Hashing(4, output_mode=mode)
    assert layer.compute_output_shape(shape) == expected
    if shape:
        assert tuple(layer(np.full(_concrete(shape), "x")).shape) == _concrete(expected)


@pytest.mark.parametrize("mode, shape, expected", [  # Keras' HashedCrossing formula
    ("int", (None, 1), (None, 1)), ("int", (None,), (None,)),
    ("one_hot", (None, 1), (None, 4)), ("one_hot", (None,), (None, 4)), ("one_hot", (), (4,)),
])
def test_hashed_crossing_output_shape(mode, shape, expected):
    layer = HashedCrossing(4, output_mode=mode)
    assert layer.compute_output_shape([shape, shape]) == expected
    if shape:
        symbolic = layer([kestrel.Input(shape[1:], dtype="int64")] * 2)
        assert tuple(symbolic.shape) == expected
        assert symbolic.dtype == ("int64" if mode == "int" else "float32")
    with pytest.raises(ValueError, match="list/tuple of 2 tensors"):
        layer.compute_output_shape([shape])
    with pytest.raises(ValueError, match="identical shapes"):
        layer.compute_output_shape([(None, 1), (None, 2)])


# ---------------------------------------------------------------- TextVectorization
@pytest.mark.parametrize("kwargs, expected", [
    ({"output_sequence_length": 4}, (None, 4)),
    ({"output_mode": "multi_hot"}, (None, 3)),  # no mask index outside int mode
    ({"output_mode": "count", "max_tokens": 6, "pad_to_max_tokens": True}, (None, 6)),
])
def test_text_vectorization_output_shape_is_the_call_shape(kwargs, expected):
    layer = TextVectorization(vocabulary=["a", "b"], **kwargs)
    assert layer.compute_output_shape((None, 1)) == expected
    assert tuple(layer(kestrel.Input((1,), dtype="string")).shape) == expected
    assert layer([["a b c"], ["b"]]).shape[1:] == expected[1:]


def test_text_vectorization_adapt_on_batches_equals_whole():
    texts = ["x y", "y z", "y", "z w w"]
    whole, batched = TextVectorization(max_tokens=5), TextVectorization(max_tokens=5)
    whole.adapt(texts)
    batched.adapt(torch.utils.data.DataLoader(texts, batch_size=3))
    # z and w both twice: the larger token first, as Keras
    assert whole.get_vocabulary() == batched.get_vocabulary() == ["", "[UNK]", "y", "z", "w"]
    ngrams = TextVectorization(ngrams=(1, 3), standardize=None)
    ngrams.adapt(["a b c"])  # only 1- and 3-grams, ties by the larger token first
    assert ngrams.get_vocabulary() == ["", "[UNK]", "c", "b", "a b c", "a"]


def test_text_vectorization_standardize_callable_gets_the_numpy_batch():
    seen = []

    def shout(batch):  # Keras off TensorFlow: one NumPy str array per call
        seen.append((type(batch), batch.dtype.kind, batch.shape))
        return np.char.upper(batch)

    layer = TextVectorization(standardize=shout, vocabulary=["A", "B"])
    assert layer([["a b"], ["c"]]).tolist() == [[2, 3], [1, 0]]
    assert seen == [(np.ndarray, "U", (2, 1))]


def test_text_vectorization_splits_on_ascii_whitespace_only():
    # TensorFlow's `strings.split` keeps a no-break space inside the token
    layer = TextVectorization(vocabulary=["a", "b\u00a0c"])
    assert layer(["a  b\u00a0c\tb\n"]).tolist() == [[2, 3, 1]]


# ---------------------------------------------------------------- FeatureSpace, image layers
def _numeric_features(module):
    space = module.utils.FeatureSpace
    return {"a": space.float(name="a"), "b": space.float_rescaled(scale=2.0, offset=1.0, name="b"),
            "c": space.float_normalized(name="c"), "d": space.float_discretized(3, name="d"),
            "e": space.float_discretized(None, bin_boundaries=[0.0, 1.0], output_mode="int",
                                         name="e")}


@pytest.mark.parametrize("mode", ["concat", "dict"])
def test_feature_space_config_equals_keras(mode):
    ref = json.loads(json.dumps(
        keras.utils.FeatureSpace(_numeric_features(keras), output_mode=mode).get_config()))
    ours = json.loads(json.dumps(
        kestrel.utils.FeatureSpace(_numeric_features(kestrel), output_mode=mode).get_config()))
    assert ours.pop("name").startswith("feature_space")  # an extra key Keras accepts
    assert ours == ref
    back = keras.utils.FeatureSpace.from_config(ours).get_config()
    assert json.loads(json.dumps(back)) == ref


def _image_model(module, stats):
    layers = module.layers
    inputs = module.Input((10, 12, 3))
    x = layers.Rescaling(1 / 255.0, offset=-0.5, name="rescale")(inputs)
    x = layers.Resizing(8, 9, crop_to_aspect_ratio=True, name="resize")(x)
    x = layers.CenterCrop(6, 7, name="crop")(x)
    norm = layers.Normalization(name="norm")
    norm.adapt(stats)
    return module.Model(inputs, norm(x))


def test_image_preprocessing_model_keras_files_both_directions(tmp_path):
    rng = np.random.RandomState(1)
    images = (rng.rand(2, 10, 12, 3) * 255).astype("float32")
    stats = rng.rand(4, 6, 7, 3).astype("float32")
    ref, ours = _image_model(keras, stats), _image_model(kestrel, stats)
    ref.save(tmp_path / "keras.keras")
    ours.save(tmp_path / "ours.keras")
    from_keras = kestrel.saving.load_model(tmp_path / "keras.keras")
    to_keras = keras.saving.load_model(tmp_path / "ours.keras")
    expected = keras.ops.convert_to_numpy(ref(images))
    for name in ("rescale", "resize", "crop", "norm"):
        assert from_keras.get_layer(name).get_config() == ref.get_layer(name).get_config()
    np.testing.assert_allclose(from_keras(torch.from_numpy(images)).detach().numpy(), expected,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(to_keras(images)),
                               ours(torch.from_numpy(images)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(ours(torch.from_numpy(images)).detach().numpy(), expected,
                               rtol=1e-5, atol=1e-5)


def test_non_numeric_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="IntegerLookup: expected integer values"):
        IntegerLookup(vocabulary=[1, 2])(["a"])
    with pytest.raises(ValueError, match="IntegerLookup: expected integer values"):
        IntegerLookup().adapt(["a", "b"])
    with pytest.raises(ValueError, match="Discretization: expected numeric inputs"):
        Discretization(bin_boundaries=[0.0])(["a"])
    assert Discretization(bin_boundaries=[0.0])([[-1.0, 1.0]]).tolist() == [[0, 1]]


def test_text_vectorization_standardize_on_the_batch_or_on_each_string():
    texts = np.array(["Hello World", "WORLD"])
    seen = []

    def on_batch(batch):
        seen.append(type(batch))
        return np.char.lower(batch)

    by_batch = kestrel.layers.TextVectorization(standardize=on_batch,
                                                vocabulary=["hello", "world"])
    by_string = kestrel.layers.TextVectorization(standardize=lambda text: text.lower(),
                                                 vocabulary=["hello", "world"])
    np.testing.assert_array_equal(by_batch(texts).numpy(), [[2, 3], [3, 0]])
    np.testing.assert_array_equal(by_string(texts).numpy(), by_batch(texts).numpy())
    assert seen[0] is np.ndarray
