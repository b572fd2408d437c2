"""cifar100, reuters and california_housing: Keras' cache layout and post-processing, offline.

Tiny stand-ins for the real files go into a temporary `$KERAS_HOME`; each module's expected
hash is set to the stand-in's hash, and real Keras reads the same files as the reference.
"""
import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)
from keras.src.datasets import california_housing as k_california  # noqa: E402
from keras.src.datasets import cifar100 as k_cifar100  # noqa: E402
from keras.src.datasets import reuters as k_reuters  # noqa: E402

from kestrel.datasets import california_housing, cifar100, reuters  # noqa: E402
from kestrel.utils import file_utils  # noqa: E402


def _no_network(origin, path):
    raise OSError(f"no network in tests: {origin}")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(file_utils, "_download", _no_network)
    folder = tmp_path / "datasets"
    folder.mkdir()
    return folder


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _keras_hash(monkeypatch, module, digest):
    """Real Keras verifies the file against the hash literal in `get_file`'s call, and reads
    `$KERAS_HOME` once at import: both are passed in."""
    real = module.get_file

    def get_file(*args, **kwargs):
        kwargs.update(file_hash=digest, cache_dir=os.environ["KERAS_HOME"])
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "get_file", get_file)


def test_published_hashes():
    assert cifar100.SHA256.startswith("85cd44d0") and reuters.SHA256.startswith("d6586e69")
    assert california_housing.SHA256.startswith("1a2e3a52")
    assert reuters.WORD_INDEX_MD5 == "4d44cc38712099c9e383dc6e5f11a921"
    assert reuters.get_label_names() == keras.datasets.reuters.get_label_names()


def _cifar100_archive(cache):
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for part, n in (("train", 3), ("test", 2)):
            batch = {b"data": rng.integers(0, 256, (n, 3072), dtype="uint8"),
                     b"fine_labels": rng.integers(0, 100, n).tolist(),
                     b"coarse_labels": rng.integers(0, 20, n).tolist()}
            payload = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-100-python/{part}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    archive = cache / "cifar-100-python-target_archive"
    archive.write_bytes(buffer.getvalue())
    return _sha(archive)


@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
def test_cifar100_matches_keras(cache, monkeypatch, label_mode):
    digest = _cifar100_archive(cache)
    monkeypatch.setattr(cifar100, "SHA256", digest)
    _keras_hash(monkeypatch, k_cifar100, digest)
    ours, theirs = cifar100.load_data(label_mode), k_cifar100.load_data(label_mode)
    for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert ours[0][0].shape == (3, 32, 32, 3) and ours[1][1].shape == (2, 1)
    with pytest.raises(ValueError, match="label_mode"):
        cifar100.load_data("medium")


def _reuters_file(cache):
    rng = np.random.default_rng(1)
    x = np.empty(10, dtype="object")
    x[:] = [rng.integers(1, 30, rng.integers(2, 9)).tolist() for _ in range(10)]
    path = cache / "reuters.npz"
    with open(path, "wb") as f:
        np.savez(f, x=x, y=rng.integers(0, 46, 10))
    return _sha(path)


@pytest.mark.parametrize("kwargs", [
    {}, {"num_words": 10, "skip_top": 2, "test_split": 0.3, "seed": 7},
    {"maxlen": 7, "oov_char": None, "start_char": None, "index_from": 0},
])
def test_reuters_matches_keras(cache, monkeypatch, kwargs):
    digest = _reuters_file(cache)
    monkeypatch.setattr(reuters, "SHA256", digest)
    _keras_hash(monkeypatch, k_reuters, digest)
    ours, theirs = reuters.load_data(**kwargs), k_reuters.load_data(**kwargs)
    for (xa, ya), (xb, yb) in zip(ours, theirs):
        assert xa.dtype == object and [list(s) for s in xa] == [list(s) for s in xb]
        np.testing.assert_array_equal(ya, yb)


def test_reuters_word_index(cache, monkeypatch):
    path = cache / "reuters_word_index.json"
    path.write_text('{"the": 1, "of": 2}')
    monkeypatch.setattr(reuters, "WORD_INDEX_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    assert reuters.get_word_index() == {"the": 1, "of": 2}


@pytest.mark.parametrize("kwargs", [{}, {"version": "small", "test_split": 0.5, "seed": 3}])
def test_california_housing_matches_keras(cache, monkeypatch, kwargs):
    rng = np.random.default_rng(2)
    path = cache / "california_housing.npz"
    with open(path, "wb") as f:
        np.savez(f, x=rng.normal(size=(700, 8)).astype("float32"),
                 y=rng.normal(size=700).astype("float32"))
    monkeypatch.setattr(california_housing, "SHA256", _sha(path))
    _keras_hash(monkeypatch, k_california, _sha(path))
    ours, theirs = california_housing.load_data(**kwargs), k_california.load_data(**kwargs)
    for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="version"):
        california_housing.load_data(version="medium")
    with pytest.raises(ValueError, match="test_split"):
        california_housing.load_data(test_split=1.0)


@pytest.mark.parametrize("load", [cifar100.load_data, reuters.load_data,
                                  california_housing.load_data, reuters.get_word_index])
def test_offline_error(cache, load):
    with pytest.raises(OSError, match="no network"):
        load()
    assert not [p for p in cache.iterdir() if p.name.startswith(".download")]
