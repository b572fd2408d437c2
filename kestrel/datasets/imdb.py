"""IMDB movie reviews: 25,000 training and 25,000 test reviews labeled by sentiment.

Each review is a list of word indices, ranked by frequency in the training set (index 3 is
the 3rd most frequent word once `index_from=3` is added). 0 stands for padding.
"""
from __future__ import annotations

import json

import numpy as np

from kestrel.datasets._origins import TF_KERAS_DATASETS
from kestrel.datasets._safe_load import load_npz
from kestrel.utils.file_utils import get_file

SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113,
              start_char=1, oov_char=2, index_from=3, **kwargs):
    """Load the reviews: `(x_train, y_train), (x_test, y_test)`.

    Args:
        path: file name in the cache (`~/.keras/datasets`).
        num_words: keep the `num_words` most frequent words; rarer ones become `oov_char`.
        skip_top: replace the `skip_top` most frequent words by `oov_char`.
        maxlen: drop sequences of `maxlen` tokens or more (start token included).
        seed: seed of the shuffles of the training and the test set.
        start_char: token that starts every sequence (`None` for none).
        oov_char: token replacing words cut by `num_words` or `skip_top` (`None` drops them).
        index_from: offset added to every word index.

    Returns:
        `x_*`: lists of sequences (lists of ints); `y_*`: arrays of 0/1 labels.
    """
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments: {sorted(kwargs)}")
    arrays = load_npz(get_file(fname=path, origin=TF_KERAS_DATASETS + "imdb.npz",
                               file_hash=SHA256))
    rng = np.random.RandomState(seed)
    splits = []
    for part in ("train", "test"):
        x, labels = arrays[f"x_{part}"], arrays[f"y_{part}"]
        order = np.arange(len(x))
        rng.shuffle(order)
        prefix = [start_char] if start_char is not None else []
        seqs = [prefix + [w + index_from for w in x[i]] for i in order]
        labels = labels[order]
        if maxlen:
            keep = [i for i, s in enumerate(seqs) if len(s) < maxlen]
            seqs, labels = [seqs[i] for i in keep], labels[keep]
            if not seqs:
                raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, "
                                 "no sequence was kept. Increase maxlen.")
        splits.append((seqs, labels))
    limit = num_words or max(max(s) for seqs, _ in splits for s in seqs if s)
    (x_train, y_train), (x_test, y_test) = [(_cut(seqs, skip_top, limit, oov_char), labels)
                                            for seqs, labels in splits]
    return (x_train, y_train), (x_test, y_test)


def _cut(seqs, skip_top: int, num_words: int, oov_char):
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in s] for s in seqs]
    return [[w for w in s if skip_top <= w < num_words] for s in seqs]


def get_word_index(path: str = "imdb_word_index.json") -> dict[str, int]:
    """The `{word: index}` dict behind the sequences (add `index_from` to each index)."""
    path = get_file(fname=path, origin=TF_KERAS_DATASETS + "imdb_word_index.json",
                    file_hash=WORD_INDEX_MD5)
    with open(path) as f:
        return json.load(f)
