"""Preprocessing layers against real Keras 3 (torch backend) where Keras runs without
TensorFlow (Normalization, Discretization, CategoryEncoding), and against the outputs Keras'
own tests and docs state for the TensorFlow-only ones (Hashing, lookups, TextVectorization)."""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel.layers.preprocessing import (CategoryEncoding, Discretization, Hashing,  # noqa: E402
                                          IntegerLookup, Normalization, StringLookup,
                                          TextVectorization)
from kestrel.layers.preprocessing.string_hash import fingerprint64, siphash24  # noqa: E402
from tests.layer_harness import run_layer_test  # noqa: E402

RNG = np.random.RandomState(0)
DATA = (RNG.randn(64, 3) * [1.0, 5.0, 0.1] + [0.0, 2.0, -1.0]).astype("float32")


def _clone(layer_cls, layer):
    return layer_cls.from_config(json.loads(json.dumps(layer.get_config())))


# ---------------------------------------------------------------------- Normalization
@pytest.mark.parametrize("make", [lambda: DATA, lambda: torch.from_numpy(DATA),
                                  lambda: [DATA[:20], DATA[20:50], DATA[50:]],
                                  lambda: torch.utils.data.DataLoader(
                                      torch.from_numpy(DATA), batch_size=10),
                                  lambda: ((DATA[i:i + 16], None) for i in range(0, 64, 16))])
def test_normalization_adapt_matches_keras(make):
    ours, ref = Normalization(), keras.layers.Normalization()
    ours.adapt(make())
    ref.adapt(DATA)  # Keras needs TensorFlow for iterables; streaming must agree
    np.testing.assert_allclose(ours.adapt_mean.numpy(), ref.adapt_mean.numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(ours.adapt_variance.numpy(), ref.adapt_variance.numpy(),
                               rtol=1e-5, atol=1e-6)
    x = DATA[:5]
    np.testing.assert_allclose(ours(torch.from_numpy(x)).numpy(),
                               keras.ops.convert_to_numpy(ref(x)), rtol=1e-4, atol=1e-5)


def test_normalization_axes_fixed_stats_and_invert():
    x = RNG.rand(4, 2, 3).astype("float32")
    for kw in [{"axis": None}, {"axis": (1, 2)}, {"axis": 1},
               {"mean": [1.0, 2.0, 3.0], "variance": [1.0, 4.0, 9.0]},
               {"mean": 2.0, "variance": 4.0, "invert": True}]:
        ours, ref = Normalization(**kw), keras.layers.Normalization(**kw)
        if "mean" not in kw:
            ours.adapt(x)
            ref.adapt(x)
        np.testing.assert_allclose(ours(torch.from_numpy(x)).numpy(),
                                   keras.ops.convert_to_numpy(ref(x)), rtol=1e-5, atol=1e-6)
        assert json.loads(json.dumps(ours.get_config())) == \
            json.loads(json.dumps(ref.get_config())) | {"name": ours.name}
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        Normalization(mean=1.0)


def test_normalization_weights_and_keras_file(tmp_path):
    ref = keras.layers.Normalization()
    ref.adapt(DATA)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(ref(inputs)))
    path = str(tmp_path / "norm.keras")
    model.save(path)
    loaded = kestrel.saving.load_model(path)
    layer = loaded.layers[1]
    assert isinstance(layer, Normalization)
    assert [w.dtype for w in layer.weights] == [torch.float32, torch.float32, torch.int32]
    np.testing.assert_allclose(layer.get_weights()[0], ref.adapt_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(loaded(torch.from_numpy(DATA[:4])).detach().numpy(),
                               keras.ops.convert_to_numpy(model(DATA[:4])), rtol=1e-4,
                               atol=1e-5)
    ours = Normalization()
    ours.adapt(DATA)
    run_layer_test(Normalization, {}, input_shape=(2, 3), expected_output_shape=(2, 3),
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=3)


def test_normalization_in_functional_model_roundtrip(tmp_path):
    norm = Normalization()
    norm.adapt(DATA)
    inputs = kestrel.Input((3,))
    model = kestrel.Model(inputs, kestrel.layers.Dense(1)(norm(inputs)))
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = kestrel.saving.load_model(path)
    x = torch.from_numpy(DATA[:4])
    np.testing.assert_allclose(again(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-6)


# ---------------------------------------------------------------------- Discretization
def _keras_adapt(layer, batches):
    """Keras' Discretization.adapt without its TensorFlow type check (the math is NumPy)."""
    layer.reset_state()
    for batch in batches:
        layer.update_state(batch)
    layer.finalize_state()


@pytest.mark.parametrize("mode", ["int", "one_hot", "multi_hot", "count"])
def test_discretization_matches_keras(mode):
    data = RNG.rand(200, 1).astype("float32")
    ours = Discretization(num_bins=5, output_mode=mode)
    ref = keras.layers.Discretization(num_bins=5, output_mode=mode)
    ours.adapt(data)
    _keras_adapt(ref, [data])
    np.testing.assert_allclose(ours.bin_boundaries, ref.bin_boundaries, rtol=1e-6)
    x = np.array([[0.05], [0.5], [0.95]], dtype="float32")
    out, expected = ours(torch.from_numpy(x)), keras.ops.convert_to_numpy(ref(x))
    np.testing.assert_array_equal(out.numpy(), expected)
    assert str(out.dtype).split(".")[-1] == str(expected.dtype)
    clone = _clone(Discretization, ours)
    assert clone.bin_boundaries == ours.bin_boundaries and clone.num_bins == 5


def test_discretization_batches_match_keras():
    batches = [RNG.rand(50).astype("float32") for _ in range(4)]
    ours, ref = Discretization(num_bins=4), keras.layers.Discretization(num_bins=4)
    ours.adapt(batches)
    _keras_adapt(ref, batches)
    np.testing.assert_allclose(ours.bin_boundaries, ref.bin_boundaries, rtol=1e-6)


# ---------------------------------------------------------------------- CategoryEncoding
@pytest.mark.parametrize("mode, x", [("one_hot", [3, 2, 0, 1]), ("one_hot", [[3], [0]]),
                                     ("multi_hot", [[0, 1], [0, 0], [1, 2], [3, 1]]),
                                     ("count", [[0, 1], [0, 0], [1, 2], [3, 1]])])
def test_category_encoding_matches_keras(mode, x):
    x = np.array(x)
    out = CategoryEncoding(4, output_mode=mode)(torch.from_numpy(x))
    expected = keras.ops.convert_to_numpy(keras.layers.CategoryEncoding(4, output_mode=mode)(x))
    np.testing.assert_array_equal(out.numpy(), expected)


def test_category_encoding_count_weights_and_symbolic():
    x = torch.tensor([[0, 1], [0, 0]])
    w = torch.tensor([[0.5, 2.0], [1.0, 1.0]])
    out = CategoryEncoding(3, output_mode="count")(x, count_weights=w)
    assert out.tolist() == [[0.5, 2.0, 0.0], [2.0, 0.0, 0.0]]
    inputs = kestrel.Input((2,), dtype="int32")
    model = kestrel.Model(inputs, CategoryEncoding(3)(inputs))
    assert model(x).tolist() == [[1, 1, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="num_tokens"):
        CategoryEncoding(3)(torch.tensor([[5]]))


# ---------------------------------------------------------------------- Hashing
def test_hash_functions_known_vectors():
    assert fingerprint64(b"") == 0x9AE16A3B2F90404F
    key = (int.from_bytes(bytes(range(8)), "little"), int.from_bytes(bytes(range(8, 16)), "little"))
    assert siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5  # SipHash paper vector


WORDS = np.asarray([["omar"], ["stringer"], ["marlo"], ["wire"], ["skywalker"]])


@pytest.mark.parametrize("kwargs, inputs, expected", [  # from Keras' hashing tests and docs
    ({"num_bins": 3}, [["A"], ["B"], ["C"], ["D"], ["E"]], [[1], [0], [1], [1], [2]]),
    ({"num_bins": 3, "mask_value": ""}, [["A"], ["B"], [""], ["C"], ["D"]],
     [[1], [1], [0], [2], [2]]),
    ({"num_bins": 3, "salt": [133, 137]}, [["A"], ["B"], ["C"], ["D"], ["E"]],
     [[1], [2], [1], [0], [2]]),
    ({"num_bins": 3, "salt": 133}, [["A"], ["B"], ["C"], ["D"], ["E"]],
     [[0], [0], [2], [1], [0]]),
    ({"num_bins": 2}, WORDS, [[0], [0], [1], [0], [0]]),
    ({"num_bins": 3, "mask_value": "omar"}, WORDS, [[0], [1], [2], [1], [1]]),
    ({"num_bins": 2, "salt": [133, 137]}, WORDS, [[0], [1], [0], [1], [0]]),
    ({"num_bins": 3}, torch.tensor([[0], [1], [2], [3], [4]]), [[1], [0], [1], [0], [2]]),
    ({"num_bins": 3, "output_mode": "count"}, np.array([[0, 1, 2, 3, 4]]), [[2.0, 2.0, 1.0]]),
])
def test_hashing_matches_keras_outputs(kwargs, inputs, expected):
    layer = Hashing(**kwargs)
    assert layer(inputs).tolist() == expected
    assert _clone(Hashing, layer)(inputs).tolist() == expected


# ---------------------------------------------------------------------- lookups
def test_string_lookup_docs_examples(tmp_path):
    vocab = ["a", "b", "c", "d"]
    data = [["a", "c", "d"], ["d", "z", "b"]]
    assert StringLookup(vocabulary=vocab)(data).tolist() == [[1, 3, 4], [4, 0, 2]]
    assert StringLookup(vocabulary=vocab, num_oov_indices=2)(
        [["a", "c", "d"], ["m", "z", "b"]]).tolist() == [[2, 4, 5], [0, 1, 3]]
    assert StringLookup(vocabulary=vocab, output_mode="multi_hot")(data).tolist() == \
        [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]]
    assert StringLookup(vocabulary=vocab, output_mode="count")(
        [["a", "c", "d", "d"], ["d", "z", "b", "z"]]).tolist() == \
        [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]]
    tfidf = StringLookup(output_mode="tf_idf", vocabulary=vocab, idf_weights=[0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(tfidf([["a", "c", "d", "d"], ["d", "z", "b", "z"]]).numpy(),
                               [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]], rtol=1e-6)
    inverse = StringLookup(vocabulary=vocab, invert=True)(torch.tensor([[1, 3, 4], [4, 0, 2]]))
    assert inverse.tolist() == [["a", "c", "d"], ["d", "[UNK]", "b"]]
    adapted = StringLookup()
    adapted.adapt(np.array(data))
    assert adapted.get_vocabulary() == ["[UNK]", "d", "z", "c", "b", "a"]
    masked = StringLookup(vocabulary=vocab, mask_token="")
    assert masked([["a", "", "b"]]).tolist() == [[2, 0, 3]]
    assert masked.get_vocabulary()[:2] == ["", "[UNK]"] and masked.vocabulary_size() == 6
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab))
    assert StringLookup(vocabulary=str(path))(data).tolist() == [[1, 3, 4], [4, 0, 2]]
    clone = _clone(StringLookup, adapted)  # as Keras: a learned vocabulary is an asset only
    assert clone.get_vocabulary() == ["[UNK]"] and adapted.get_config()["vocabulary"] is None


def test_string_lookup_tf_idf_adapt_and_max_tokens():
    layer = StringLookup(output_mode="tf_idf", max_tokens=4)
    layer.adapt(np.array([["a", "a", "b"], ["a", "c", "c"], ["c", "d", "d"]]))
    assert layer.get_vocabulary() == ["[UNK]", "c", "a", "d"]
    idf = np.log(1 + 3 / (1 + np.array([2.0, 2.0, 1.0])))
    np.testing.assert_allclose(layer.idf_weights.numpy(), [idf.mean(), *idf], rtol=1e-6)
    assert layer.get_config()["idf_weights"] is None  # as Keras: saved as a variable


def test_integer_lookup_docs_examples():
    vocab = [12, 36, 1138, 42]
    data = torch.tensor([[12, 1138, 42], [42, 1000, 36]])
    assert IntegerLookup(vocabulary=vocab)(data).tolist() == [[1, 3, 4], [4, 0, 2]]
    assert IntegerLookup(vocabulary=vocab, num_oov_indices=2)(
        torch.tensor([[12, 1138, 42], [37, 1000, 36]])).tolist() == [[2, 4, 5], [1, 0, 3]]
    assert IntegerLookup(vocabulary=vocab, invert=True)(
        torch.tensor([[1, 3, 4], [4, 0, 2]])).tolist() == [[12, 1138, 42], [42, -1, 36]]
    adapted = IntegerLookup()
    adapted.adapt(np.array([[12, 1138, 42], [42, 1000, 36]]))
    assert adapted.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    config = adapted.get_config()
    assert config["vocabulary"] is None and config["oov_token"] == -1
    inputs = kestrel.Input((3,), dtype="int64")
    model = kestrel.Model(inputs, IntegerLookup(vocabulary=vocab)(inputs))
    assert model(data).tolist() == [[1, 3, 4], [4, 0, 2]]


# ---------------------------------------------------------------------- TextVectorization
def test_text_vectorization_docs_example_and_config():
    layer = TextVectorization(max_tokens=5000, output_sequence_length=4)
    layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    assert layer([["foo qux bar"], ["qux baz"]]).tolist() == [[4, 1, 3, 0], [1, 2, 0, 0]]
    fixed = TextVectorization(vocabulary=["earth", "wind", "and", "fire"],
                              output_sequence_length=4)
    assert fixed([["earth wind and fire"], ["fire and earth michigan"]]).tolist() == \
        [[2, 3, 4, 5], [5, 4, 2, 1]]
    clone = _clone(TextVectorization, fixed)
    assert clone.get_vocabulary() == fixed.get_vocabulary()
    assert set(layer.get_config()) >= {"standardize", "split", "ngrams", "output_mode",
                                       "output_sequence_length", "vocabulary", "vocabulary_size"}


def test_text_vectorization_modes_standardize_and_ngrams():
    layer = TextVectorization(output_mode="multi_hot", ngrams=2)
    layer.adapt(np.array(["The cat sat.", "the DOG, sat!"]))
    vocab = layer.get_vocabulary()
    assert vocab[:3] == ["[UNK]", "the", "sat"] and "the dog" in vocab and "dog sat" in vocab
    row = layer(["the cat"])[0].tolist()
    assert sorted(vocab[i] for i, v in enumerate(row) if v) == ["cat", "the", "the cat"]
    counts = TextVectorization(output_mode="count", vocabulary=["a", "b"])
    assert counts(["a a b c"]).tolist() == [[1, 2, 1]]
    chars = TextVectorization(split="character", standardize=None, vocabulary=["a", "b"])
    assert chars(["abA"]).tolist() == [[2, 3, 1]]
