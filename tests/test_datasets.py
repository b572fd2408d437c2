"""kestrel.datasets: Keras' file names, cache folder, hashes and post-processing, offline.

Each test writes a tiny stand-in for the real file into the cache (`$KERAS_HOME`) and sets the
module's expected hash to that file's hash, so no download is attempted.
"""
import gzip
import hashlib
import io
import pickle
import tarfile
from collections import OrderedDict

import numpy as np
import pytest

from kestrel import config
from kestrel.datasets import boston_housing, cifar10, fashion_mnist, imdb, mnist
from kestrel.utils import file_utils


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(file_utils, "_download", _no_network)
    folder = tmp_path / "datasets"
    folder.mkdir()
    return folder


def _no_network(origin, path):
    raise AssertionError(f"test tried to download {origin}")


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return _sha(path)


def test_published_hashes_and_origins():
    assert mnist.SHA256 == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert imdb.SHA256.startswith("69664113") and boston_housing.SHA256.startswith("f553886a")
    assert cifar10.SHA256.startswith("6d958be0")
    assert len(fashion_mnist.FILE_HASHES) == 4


def test_mnist_reads_cached_file(cache, monkeypatch):
    x = np.arange(2 * 28 * 28, dtype="uint8").reshape(2, 28, 28)
    digest = _save_npz(cache / "mnist.npz", x_train=x, y_train=np.array([3, 4], "uint8"),
                       x_test=x[:1], y_test=np.array([5], "uint8"))
    monkeypatch.setattr(mnist, "SHA256", digest)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    np.testing.assert_array_equal(x_train, x)
    assert y_train.tolist() == [3, 4] and x_test.shape == (1, 28, 28) and y_test.tolist() == [5]


def test_mnist_wrong_hash_tries_to_download(cache):
    _save_npz(cache / "mnist.npz", x_train=np.zeros(1))
    with pytest.raises(AssertionError, match="tf-keras-datasets/mnist.npz"):
        mnist.load_data()


def test_fashion_mnist_parses_idx_files(cache, monkeypatch):
    folder = cache / "fashion-mnist"
    folder.mkdir()
    images = np.arange(3 * 784, dtype=np.uint8).reshape(3, 28, 28)
    contents = {"train-labels-idx1-ubyte.gz": b"\0" * 8 + bytes([1, 2, 3]),
                "train-images-idx3-ubyte.gz": b"\0" * 16 + images.tobytes(),
                "t10k-labels-idx1-ubyte.gz": b"\0" * 8 + bytes([9]),
                "t10k-images-idx3-ubyte.gz": b"\0" * 16 + images[:1].tobytes()}
    for name, data in contents.items():
        (folder / name).write_bytes(gzip.compress(data))
        monkeypatch.setitem(fashion_mnist.FILE_HASHES, name, _sha(folder / name))
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    np.testing.assert_array_equal(x_train, images)
    assert y_train.tolist() == [1, 2, 3] and y_test.tolist() == [9]
    np.testing.assert_array_equal(x_test, images[:1])


def _cifar_archive(path, rng):
    batches = {}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, 2).tolist()
            batches[name] = (data, labels)
            raw = pickle.dumps({b"batch_label": b"x", b"data": data, b"labels": labels},
                               protocol=4)  # raw bytes, as in the real (Python 2) files
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    path.write_bytes(buffer.getvalue())
    return batches


def test_cifar10_extracts_and_transposes_to_channels_last(cache, monkeypatch):
    batches = _cifar_archive(cache / "cifar-10-batches-py_archive", np.random.default_rng(0))
    monkeypatch.setattr(cifar10, "SHA256", _sha(cache / "cifar-10-batches-py_archive"))
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert x_train.shape == (10, 32, 32, 3) and y_train.shape == (10, 1)
    assert x_train.dtype == np.uint8 and y_test.dtype == np.uint8
    first = batches["data_batch_1"][0][0].reshape(3, 32, 32)  # rows are R, then G, then B
    np.testing.assert_array_equal(x_train[0], first.transpose(1, 2, 0))
    assert y_train[2:4, 0].tolist() == batches["data_batch_2"][1]
    np.testing.assert_array_equal(x_test[1].transpose(2, 0, 1).reshape(-1),
                                  batches["test_batch"][0][1])
    monkeypatch.setattr(config, "_IMAGE_DATA_FORMAT", "channels_first")
    assert cifar10.load_data()[0][0].shape == (10, 3, 32, 32)


def test_boston_housing_shuffles_then_splits(cache, monkeypatch):
    x = np.arange(10 * 13, dtype="float64").reshape(10, 13)
    y = np.arange(10, dtype="float64")
    monkeypatch.setattr(boston_housing, "SHA256", _save_npz(cache / "boston_housing.npz",
                                                            x=x, y=y))
    (x_train, y_train), (x_test, y_test) = boston_housing.load_data(test_split=0.3, seed=113)
    order = np.arange(10)
    np.random.RandomState(113).shuffle(order)
    assert y_train.tolist() == order[:7].tolist() and y_test.tolist() == order[7:].tolist()
    np.testing.assert_array_equal(x_train, x[order[:7]])
    with pytest.raises(ValueError, match="test_split"):
        boston_housing.load_data(test_split=1.0)


def _imdb_file(cache):
    def ragged(*seqs):
        out = np.empty(len(seqs), dtype=object)
        out[:] = [list(s) for s in seqs]
        return out
    x_train = ragged([1, 2, 3], [4, 5], [6, 7, 8, 9])
    x_test = ragged([2, 2], [9])
    return _save_npz(cache / "imdb.npz", x_train=x_train, y_train=np.array([0, 1, 1]),
                     x_test=x_test, y_test=np.array([1, 0]))


def test_imdb_indexing_shuffle_and_vocabulary_cut(cache, monkeypatch):
    monkeypatch.setattr(imdb, "SHA256", _imdb_file(cache))
    (x_train, y_train), (x_test, y_test) = imdb.load_data(seed=113)
    rng = np.random.RandomState(113)
    train_order, test_order = np.arange(3), np.arange(2)
    rng.shuffle(train_order)
    rng.shuffle(test_order)
    raw_train = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    # start_char 1, words shifted by index_from=3; the largest index (12) falls outside
    # range(num_words) with num_words=None and becomes oov_char, as in Keras.
    expected = [[1] + [w + 3 if w + 3 < 12 else 2 for w in raw_train[i]] for i in train_order]
    assert x_train == expected
    assert y_train.tolist() == [[0, 1, 1][i] for i in train_order]
    assert len(x_test) == 2 and y_test.tolist() == [[1, 0][i] for i in test_order]

    (x_train, _), _ = imdb.load_data(num_words=7, skip_top=4, oov_char=2)
    assert all(w == 2 or 4 <= w < 7 for s in x_train for w in s)
    (x_train, y_train), _ = imdb.load_data(maxlen=5)  # keeps sequences shorter than maxlen
    assert all(len(s) < 5 for s in x_train) and len(x_train) == len(y_train) == 2
    (x_train, _), _ = imdb.load_data(start_char=None, index_from=0, oov_char=None)
    assert sorted(map(len, x_train)) == [2, 3, 3]  # index 9 (the max) dropped


def test_imdb_refuses_pickled_code(cache, monkeypatch):
    evil = np.empty(1, dtype=object)
    evil[0] = OrderedDict(a=1)  # any non-array global is refused, e.g. os.system
    monkeypatch.setattr(imdb, "SHA256", _save_npz(cache / "imdb.npz", x_train=evil,
                                                  y_train=np.zeros(1), x_test=evil,
                                                  y_test=np.zeros(1)))
    with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict"):
        imdb.load_data()


def test_imdb_word_index_checks_its_md5(cache, monkeypatch):
    (cache / "imdb_word_index.json").write_text('{"the": 1, "and": 2}')
    digest = hashlib.md5((cache / "imdb_word_index.json").read_bytes()).hexdigest()
    monkeypatch.setattr(imdb, "WORD_INDEX_MD5", digest)
    assert imdb.get_word_index() == {"the": 1, "and": 2}
