"""Keras 2's `keras.preprocessing.sequence`: timeseries batches, skipgrams, padding."""
from __future__ import annotations

import json
import random

import numpy as np

from kestrel.utils.py_dataset import PyDataset
from kestrel.utils.sequence_utils import pad_sequences

__all__ = ["TimeseriesGenerator", "make_sampling_table", "pad_sequences", "skipgrams"]


class TimeseriesGenerator(PyDataset):
    """Batches of windows over a timeseries: a PyDataset that `model.fit` consumes.

    Sample `k` of the output ends just before row `t = start_index + length + k * stride`:
    it holds `data[t - length:t:sampling_rate]`, and its target is `targets[t]`.

    Args:
        data: indexable sequence of timesteps (axis 0 is time).
        targets: one target per timestep; same length as `data`.
        length: window length in timesteps (before sampling).
        sampling_rate: step between timesteps inside a window.
        stride: step between consecutive windows.
        start_index / end_index: the first and last rows usable as "current" rows
            (`start_index + length` and `end_index`, inclusive; `end_index` defaults to the last).
        shuffle: draw random windows (with replacement) instead of chronological ones.
        reverse: put each window's timesteps in reverse order.
        batch_size: windows per batch.

    Example:
        >>> gen = TimeseriesGenerator(np.arange(10), np.arange(10), length=3, batch_size=2)
        >>> gen[0][0].tolist(), gen[0][1].tolist()
        ([[0, 1, 2], [1, 2, 3]], [3, 4])
    """

    def __init__(self, data, targets, length, sampling_rate=1, stride=1, start_index=0,
                 end_index=None, shuffle=False, reverse=False, batch_size=128, **kwargs):
        super().__init__(**kwargs)
        if len(data) != len(targets):
            raise ValueError("TimeseriesGenerator: `data` and `targets` must have the same "
                             f"length. Received: len(data)={len(data)}, "
                             f"len(targets)={len(targets)}")
        self.data, self.targets = data, targets
        self.length, self.sampling_rate, self.stride = length, sampling_rate, stride
        self.start_index = start_index + length
        self.end_index = len(data) - 1 if end_index is None else end_index
        self.shuffle, self.reverse, self.batch_size = shuffle, reverse, batch_size
        if self.start_index > self.end_index:
            raise ValueError(f"TimeseriesGenerator: `start_index+length={self.start_index} > "
                             f"end_index={self.end_index}` leaves no timestep to predict.")

    def __len__(self):
        span = self.batch_size * self.stride
        return (self.end_index - self.start_index + span) // span

    def __getitem__(self, index):
        if self.shuffle:
            rows = np.random.randint(self.start_index, self.end_index + 1, size=self.batch_size)
        else:
            first = self.start_index + self.batch_size * self.stride * index
            last = min(first + self.batch_size * self.stride, self.end_index + 1)
            rows = np.arange(first, last, self.stride)
        samples = np.array([self.data[row - self.length:row:self.sampling_rate] for row in rows])
        targets = np.array([self.targets[row] for row in rows])
        return (samples[:, ::-1, ...] if self.reverse else samples), targets

    def get_config(self) -> dict:
        """The generator's arguments, with `data` and `targets` as JSON strings."""
        def as_json(name, value):
            try:
                return json.dumps(value.tolist() if isinstance(value, np.ndarray) else value)
            except TypeError:
                raise TypeError(f"TimeseriesGenerator: `{name}` is not JSON serializable "
                                f"(type {type(value).__name__}).") from None
        return {"data": as_json("data", self.data), "targets": as_json("targets", self.targets),
                "length": self.length, "sampling_rate": self.sampling_rate,
                "stride": self.stride, "start_index": self.start_index,
                "end_index": self.end_index, "shuffle": self.shuffle, "reverse": self.reverse,
                "batch_size": self.batch_size}

    def to_json(self, **kwargs) -> str:
        """`{"class_name": "TimeseriesGenerator", "config": ...}` as a JSON string."""
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()},
                          **kwargs)


def make_sampling_table(size, sampling_factor=1e-5):
    """Word2vec's keep-probability for the word of each frequency rank, assuming Zipf's law.

    Args:
        size: number of ranks (vocabulary size).
        sampling_factor: word2vec's sampling factor.

    Example:
        >>> make_sampling_table(3).shape
        (3,)
    """
    rank = np.arange(size)
    rank[0] = 1
    inverse_frequency = rank * (np.log(rank) + 0.577) + 0.5 - 1.0 / (12.0 * rank)
    scaled = sampling_factor * inverse_frequency
    return np.minimum(1.0, scaled / np.sqrt(scaled))


def skipgrams(sequence, vocabulary_size, window_size=4, negative_samples=1.0, shuffle=True,
              categorical=False, sampling_table=None, seed=None):
    """Skip-gram pairs: `(word, neighbour)` labelled 1 and `(word, random word)` labelled 0.

    Index 0 is a non-word and is skipped. Uses Python's `random` module, as Keras 2 does.

    Args:
        sequence: list of word indices.
        vocabulary_size: largest word index + 1 (negatives are drawn from 1..size-1).
        window_size: half-width of the context window.
        negative_samples: negatives per positive (0 for none).
        shuffle: shuffle the pairs (and labels alike).
        categorical: labels as `[0, 1]` / `[1, 0]` instead of 1 / 0.
        sampling_table: keep-probability per word index (see `make_sampling_table`).
        seed: seed for the shuffle.

    Returns:
        `(couples, labels)`: lists of `[word, context]` pairs and their labels.

    Example:
        >>> skipgrams([1, 2], 3, negative_samples=0, shuffle=False)
        ([[1, 2], [2, 1]], [1, 1])
    """
    positive, negative = ([0, 1], [1, 0]) if categorical else (1, 0)
    couples, labels = [], []
    for i, word in enumerate(sequence):
        if not word:
            continue
        if sampling_table is not None and sampling_table[word] < random.random():
            continue
        for j in range(max(0, i - window_size), min(len(sequence), i + window_size + 1)):
            if j != i and sequence[j]:
                couples.append([word, sequence[j]])
                labels.append(positive)
    if negative_samples > 0:
        count = int(len(labels) * negative_samples)
        words = [pair[0] for pair in couples]
        random.shuffle(words)
        couples += [[words[i % len(words)], random.randint(1, vocabulary_size - 1)]
                    for i in range(count)]
        labels += [negative] * count
    if shuffle:
        seed = random.randint(0, 10**7) if seed is None else seed
        random.seed(seed)
        random.shuffle(couples)
        random.seed(seed)
        random.shuffle(labels)
    return couples, labels
