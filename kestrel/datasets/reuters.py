"""Reuters newswires: 11,228 wires labeled over 46 topics, as sequences of word indices."""
from __future__ import annotations

import json

import numpy as np

from kestrel.datasets._origins import TF_KERAS_DATASETS
from kestrel.datasets._safe_load import load_npz
from kestrel.utils.file_utils import get_file

SHA256 = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
WORD_INDEX_MD5 = "4d44cc38712099c9e383dc6e5f11a921"
LABEL_NAMES = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply",
    "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas",
    "cpi", "money-fx", "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin",
    "strategic-metal", "livestock", "retail", "ipi", "iron-steel", "rubber", "heat", "jobs",
    "lei", "bop", "zinc", "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog", "lead")


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2,
              seed=113, start_char=1, oov_char=2, index_from=3):
    """Load the newswires: `(x_train, y_train), (x_test, y_test)`.

    Args:
        path: file name in the cache (`~/.keras/datasets`).
        num_words: keep the `num_words` most frequent words; rarer ones become `oov_char`.
        skip_top: replace the `skip_top` most frequent words by `oov_char`.
        maxlen: drop sequences of `maxlen` tokens or more (start token included).
        test_split: fraction of the (shuffled) wires kept for the test set.
        seed: seed of the shuffle.
        start_char: token that starts every sequence (`None` for none).
        oov_char: token replacing words cut by `num_words` or `skip_top` (`None` drops them).
        index_from: offset added to every word index.

    Returns:
        `x_*`: object arrays of sequences (lists of ints); `y_*`: int arrays of topics 0-45.

    Example: `(x, y), _ = kestrel.datasets.reuters.load_data(num_words=10000)`.
    """
    arrays = load_npz(get_file(fname=path, origin=TF_KERAS_DATASETS + "reuters.npz",
                               file_hash=SHA256))
    xs, labels = arrays["x"], arrays["y"]
    order = np.arange(len(xs))
    np.random.RandomState(seed).shuffle(order)
    xs, labels = xs[order], labels[order]
    prefix = [start_char] if start_char is not None else []
    xs = [prefix + [w + index_from for w in x] for x in xs]
    if maxlen:
        keep = [i for i, x in enumerate(xs) if len(x) < maxlen]
        xs, labels = [xs[i] for i in keep], labels[keep]
    num_words = num_words or max(max(x) for x in xs)
    if oov_char is not None:
        xs = [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    else:
        xs = [[w for w in x if skip_top <= w < num_words] for x in xs]
    split = int(len(xs) * (1 - test_split))
    return ((_objects(xs[:split]), np.array(labels[:split])),
            (_objects(xs[split:]), np.array(labels[split:])))


def _objects(seqs: list) -> np.ndarray:
    """A 1-D object array of lists (also when all lists have the same length)."""
    out = np.empty(len(seqs), dtype="object")
    out[:] = seqs
    return out


def get_word_index(path: str = "reuters_word_index.json") -> dict[str, int]:
    """The `{word: index}` dict behind the sequences (add `index_from` to each index)."""
    path = get_file(path, origin=TF_KERAS_DATASETS + "reuters_word_index.json",
                    file_hash=WORD_INDEX_MD5)
    with open(path) as f:
        return json.load(f)


def get_label_names() -> tuple[str, ...]:
    """The 46 topic names, indexed by label."""
    return LABEL_NAMES
