"""HashedCrossing: Keras' layer needs TensorFlow, so the bins are checked against the values
Keras' docs and tests state, and the crossing hash against TensorFlow's documented recipe."""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel.layers.preprocessing import HashedCrossing  # noqa: E402
from kestrel.layers.preprocessing.hashed_crossing import fingerprint_cat64  # noqa: E402
from kestrel.layers.preprocessing.string_hash import fingerprint64  # noqa: E402

FEAT1 = np.array(["A", "B", "A", "B", "A"])
FEAT2 = np.array([101, 101, 101, 102, 102])


def test_int_bins_match_keras_docs():
    out = HashedCrossing(num_bins=5)((FEAT1, FEAT2))
    assert out.dtype == torch.int64
    assert out.tolist() == [1, 4, 1, 1, 3]


def test_one_hot_matches_keras_docs_and_column_inputs():
    expected = np.eye(5, dtype="float32")[[1, 4, 1, 1, 3]]
    out = HashedCrossing(num_bins=5, output_mode="one_hot")((FEAT1, FEAT2))
    np.testing.assert_array_equal(out.numpy(), expected)
    out = HashedCrossing(num_bins=5, output_mode="one_hot")((FEAT1[:, None], FEAT2[:, None]))
    assert out.shape == (5, 5)
    np.testing.assert_array_equal(out.numpy(), expected)
    out = HashedCrossing(num_bins=5)((FEAT1[:, None], FEAT2[:, None]))
    assert out.shape == (5, 1) and out[:, 0].tolist() == [1, 4, 1, 1, 3]


def test_scalars_lists_and_tensors():
    assert HashedCrossing(num_bins=10)((np.array("A"), np.array(101))).item() == 1
    ints = HashedCrossing(num_bins=10)((torch.tensor([1, 2]), torch.tensor([4, 5])))
    assert ints.tolist() == HashedCrossing(num_bins=10)(([1, 2], np.array([4, 5]))).tolist()
    assert HashedCrossing(10)((["A", "B"], [101, 101])).tolist() == [
        HashedCrossing(10)((np.array(["A"]), np.array([101]))).item(),
        HashedCrossing(10)((np.array(["B"]), np.array([101]))).item()]


def test_hash_is_tensorflow_recipe():
    """FingerprintCat64 chain from the default key over Fingerprint64(strings) and raw ints."""
    key = 0xDECAFCAFFE
    a = fingerprint_cat64(fingerprint_cat64(key, fingerprint64(b"x")), fingerprint64(b"y"))
    got = HashedCrossing(num_bins=1000)((np.array(["x"]), np.array(["y"])))
    assert got.item() == a % 1000
    b = fingerprint_cat64(fingerprint_cat64(fingerprint_cat64(key, 7), 2**64 - 3), 11)
    got = HashedCrossing(num_bins=97)((np.array([7]), np.array([-3]), np.array([11])))
    assert got.item() == b % 97
    assert fingerprint_cat64(1, 2) != fingerprint_cat64(2, 1)


def test_config_dtype_and_functional_use():
    layer = HashedCrossing(num_bins=7, output_mode="one_hot", name="cross")
    config = json.loads(json.dumps(layer.get_config()))
    assert set(config) == {"num_bins", "output_mode", "sparse", "name", "dtype"}
    assert HashedCrossing.from_config(config).num_bins == 7
    assert HashedCrossing(num_bins=3).get_config()["dtype"] == "int64"
    assert HashedCrossing(num_bins=3, dtype="int32")((FEAT1, FEAT2)).dtype == torch.int32
    a, b = kestrel.Input((1,), dtype="int64"), kestrel.Input((1,), dtype="int64")
    out = HashedCrossing(num_bins=4, output_mode="one_hot")((a, b))
    assert tuple(out.shape) == (None, 4)
    model = kestrel.Model([a, b], out)
    got = model([torch.tensor([[1], [2]]), torch.tensor([[4], [5]])])
    expected = HashedCrossing(num_bins=4, output_mode="one_hot")(([1, 2], [4, 5]))
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    assert keras.layers.HashedCrossing.__init__.__code__.co_varnames[1:6] == (
        "num_bins", "output_mode", "sparse", "name", "dtype")


@pytest.mark.parametrize("inputs,match", [
    (np.array([1]), "list or tuple"),
    ((np.array([1]),), "at least two"),
    ((np.array([[[1]]]), np.array([[[1]]])), "shape"),
    ((np.array([1, 2]), np.array([1])), "equal shape"),
    ((np.array([1.0]), np.array([1.0])), "integer or string")])
def test_errors(inputs, match):
    with pytest.raises(ValueError, match=match):
        HashedCrossing(num_bins=10)(inputs)


def test_argument_errors():
    with pytest.raises(ValueError, match="output_mode"):
        HashedCrossing(num_bins=3, output_mode="multi_hot")
    with pytest.raises(ValueError, match="sparse"):
        HashedCrossing(num_bins=3, sparse=True)
