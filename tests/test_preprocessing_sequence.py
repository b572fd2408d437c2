"""keras.preprocessing.sequence (Keras 2): TimeseriesGenerator windows against Keras 3's legacy
generator, skipgrams structure, the sampling table, and fit on a TimeseriesGenerator."""
import doctest
import json
import os
import random

import numpy as np
import pytest

import kestrel
from kestrel.preprocessing import sequence
from kestrel.preprocessing.sequence import (TimeseriesGenerator, make_sampling_table,
                                            pad_sequences, skipgrams)


@pytest.fixture(scope="module")
def legacy():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    from keras.src.legacy.preprocessing import sequence as legacy_sequence

    return legacy_sequence


def test_doctests():
    assert doctest.testmod(sequence, extraglobs={"np": np}).failed == 0


def test_reachable_from_kestrel():
    assert kestrel.preprocessing.sequence.pad_sequences is kestrel.utils.pad_sequences
    assert pad_sequences([[1], [2, 3]]).tolist() == [[0, 1], [2, 3]]


@pytest.mark.parametrize("kwargs", [
    dict(length=3),
    dict(length=4, sampling_rate=2, stride=3, batch_size=5),
    dict(length=2, start_index=3, end_index=20, reverse=True, batch_size=4),
    dict(length=5, stride=2, batch_size=1),
])
def test_timeseries_windows_match_keras(legacy, kwargs):
    data = np.arange(60, dtype="float32").reshape(30, 2)
    targets = np.arange(30) * 10
    ours = TimeseriesGenerator(data, targets, **kwargs)
    ref = legacy.TimeseriesGenerator(data, targets, **kwargs)
    assert len(ours) == len(ref)
    for i in range(len(ref)):
        np.testing.assert_array_equal(ours[i][0], ref[i][0])
        np.testing.assert_array_equal(ours[i][1], ref[i][1])


def test_timeseries_documented_window():
    gen = TimeseriesGenerator(np.arange(20), np.arange(20), length=10, sampling_rate=2,
                              batch_size=2)
    x, y = gen[0]
    assert x.tolist() == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]] and y.tolist() == [10, 11]
    assert len(gen) == 5


def test_timeseries_shuffle_and_errors():
    np.random.seed(0)
    gen = TimeseriesGenerator(np.arange(50), np.arange(50), length=4, shuffle=True, batch_size=8)
    x, y = gen[0]
    assert x.shape == (8, 4)
    np.testing.assert_array_equal(x[:, -1] + 1, y)  # each target follows its window
    with pytest.raises(ValueError, match="same length"):
        TimeseriesGenerator(np.arange(5), np.arange(4), length=2)
    with pytest.raises(ValueError, match="end_index"):
        TimeseriesGenerator(np.arange(5), np.arange(5), length=5)


def test_timeseries_json():
    gen = TimeseriesGenerator(np.arange(10), np.arange(10) * 2, length=2, batch_size=3)
    spec = json.loads(gen.to_json())
    assert spec["class_name"] == "TimeseriesGenerator"
    config = spec["config"]
    assert json.loads(config["data"]) == list(range(10))
    assert json.loads(config["targets"]) == list(range(0, 20, 2))
    assert (config["start_index"], config["end_index"], config["batch_size"]) == (2, 9, 3)
    with pytest.raises(TypeError, match="JSON"):
        TimeseriesGenerator([object()] * 3, [0] * 3, length=1).to_json()


def test_fit_consumes_timeseries_generator():
    rng = np.random.default_rng(0)
    series = rng.normal(size=(64, 3)).astype("float32")
    gen = TimeseriesGenerator(series, series[:, 0], length=5, batch_size=16)
    model = kestrel.Sequential([kestrel.layers.Input((5, 3)), kestrel.layers.Flatten(),
                                kestrel.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(gen, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert model.predict(gen, verbose=0).shape == (59, 1)


def test_make_sampling_table_matches_keras(legacy):
    np.testing.assert_allclose(make_sampling_table(50), legacy.make_sampling_table(50))
    table = make_sampling_table(1000, sampling_factor=1e-3)
    assert table[0] == table[1] and np.all(np.diff(table[1:]) >= 0)  # rarer ranks kept more
    assert table[-1] == 1.0 and table[1] < 0.1


def test_skipgrams_positive_pairs_and_negatives():
    seq = [1, 2, 0, 3, 4]
    couples, labels = skipgrams(seq, 5, window_size=1, negative_samples=0, shuffle=False)
    assert couples == [[1, 2], [2, 1], [3, 4], [4, 3]] and labels == [1, 1, 1, 1]
    random.seed(1)
    couples, labels = skipgrams(seq, 5, window_size=2, negative_samples=2.0, seed=3)
    positives = [c for c, l in zip(couples, labels) if l == 1]
    negatives = [c for c, l in zip(couples, labels) if l == 0]
    assert len(negatives) == 2 * len(positives)
    assert sorted(map(tuple, positives)) == [(1, 2), (2, 1), (2, 3), (3, 2), (3, 4), (4, 3)]
    assert all(1 <= c[1] < 5 and c[0] in (1, 2, 3, 4) for c in negatives)


def test_skipgrams_categorical_and_seeded_shuffle(legacy):
    seq = [1, 2, 3, 4, 5, 6]
    ours = skipgrams(seq, 7, negative_samples=0, categorical=True, seed=7)
    ref = legacy.skipgrams(seq, 7, negative_samples=0, categorical=True, seed=7)
    assert ours == ref
    assert all(label == [0, 1] for label in ours[1])


def test_skipgrams_sampling_table_drops_words():
    couples, _ = skipgrams([1, 2, 3], 4, negative_samples=0, shuffle=False,
                           sampling_table=np.array([0.0, 0.0, 1.0, 1.0]))
    assert all(pair[0] != 1 for pair in couples) and [2, 1] in couples
