"""Boston Housing prices: 506 samples of 13 attributes, target in k$ (StatLib, 1970s).

Keras warns that this dataset has an ethical problem (its "B" attribute); use it to
illustrate such issues rather than as a benchmark.
"""
from __future__ import annotations

import numpy as np

from kestrel.datasets._origins import TF_KERAS_DATASETS
from kestrel.utils.file_utils import get_file

SHA256 = "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"


def load_data(path: str = "boston_housing.npz", test_split: float = 0.2, seed: int = 113):
    """Load the data shuffled with `seed`: `(x_train, y_train), (x_test, y_test)`.

    Args:
        path: file name in the cache (`~/.keras/datasets`).
        test_split: fraction of the samples kept for the test set, in `[0, 1)`.
        seed: seed of the shuffle done before splitting.
    """
    if not 0 <= test_split < 1:
        raise ValueError(f"Invalid `test_split` argument: it must be in [0, 1). "
                         f"Received: test_split={test_split}")
    path = get_file(path, origin=f"{TF_KERAS_DATASETS}boston_housing.npz", file_hash=SHA256)
    with np.load(path, allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    order = np.arange(len(x))
    np.random.RandomState(seed).shuffle(order)
    x, y = x[order], y[order]
    split = int(len(x) * (1 - test_split))
    return (x[:split], y[:split]), (x[split:], y[split:])
