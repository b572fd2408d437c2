"""keras.utils data helpers against real Keras 3 (torch backend) on the same inputs."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from kestrel.utils.numerical_utils import normalize, to_categorical  # noqa: E402
from kestrel.utils.sequence_utils import pad_sequences  # noqa: E402


@pytest.mark.parametrize("x, n", [([0, 1, 2, 3], None), ([[1], [0], [2]], 4),
                                  (np.array([[0, 2], [1, 1]]), 3)])
def test_to_categorical_matches_keras(x, n):
    ours, ref = to_categorical(x, n), keras.utils.to_categorical(x, n)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_to_categorical_tensor():
    out = to_categorical(torch.tensor([[2], [0]]), 3)
    assert out.tolist() == [[0, 0, 1], [1, 0, 0]] and out.dtype == torch.float32


@pytest.mark.parametrize("axis, order", [(-1, 2), (-2, 2), (1, 1)])
def test_normalize_matches_keras(axis, order):
    x = np.random.RandomState(0).randn(4, 3)
    x[1] = 0
    np.testing.assert_allclose(normalize(x, axis, order), keras.utils.normalize(x, axis, order))
    t = normalize(torch.tensor(x), axis, order)
    np.testing.assert_allclose(t.numpy(), keras.utils.normalize(x, axis, order))


SEQS = [[1], [2, 3], [4, 5, 6], []]


@pytest.mark.parametrize("kwargs", [{}, {"maxlen": 2}, {"padding": "post"},
                                    {"truncating": "post", "maxlen": 2}, {"value": -1},
                                    {"dtype": "float32", "value": 0.5}])
def test_pad_sequences_matches_keras(kwargs):
    ours, ref = pad_sequences(SEQS, **kwargs), keras.utils.pad_sequences(SEQS, **kwargs)
    assert ours.dtype == ref.dtype
    np.testing.assert_array_equal(ours, ref)


def test_pad_sequences_strings_and_samples():
    seqs = [["a", "b"], ["c"]]
    kw = {"dtype": object, "value": "<pad>"}
    np.testing.assert_array_equal(pad_sequences(seqs, **kw), keras.utils.pad_sequences(seqs, **kw))
    vecs = [np.ones((2, 3)), np.ones((1, 3))]
    np.testing.assert_array_equal(pad_sequences(vecs), keras.utils.pad_sequences(vecs))
    with pytest.raises(ValueError, match="dtype=object"):
        pad_sequences(seqs, value="x")
    with pytest.raises(ValueError, match="Padding type"):
        pad_sequences(seqs, padding="mid")
