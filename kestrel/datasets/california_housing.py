"""California housing: 20,640 districts, 8 features each, and their median house value."""
from __future__ import annotations

import numpy as np

from kestrel.datasets._origins import TF_KERAS_DATASETS
from kestrel.datasets._safe_load import load_npz
from kestrel.utils.file_utils import get_file

SHA256 = "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f"


def load_data(version: str = "large", path: str = "california_housing.npz",
              test_split: float = 0.2, seed: int = 113):
    """Load the regression data: `(x_train, y_train), (x_test, y_test)`.

    Args:
        version: `"large"` (all 20,640 rows) or `"small"` (the first 600).
        path: file name in the cache (`~/.keras/datasets`).
        test_split: fraction of the (shuffled) rows kept for the test set, in `[0, 1)`.
        seed: seed of the shuffle before the split.

    Returns:
        `x_*` float arrays of shape `(n, 8)`, `y_*` float arrays of shape `(n,)`.

    Example: `(x, y), _ = kestrel.datasets.california_housing.load_data(version="small")`.
    """
    if not 0 <= test_split < 1:
        raise ValueError(f"california_housing.load_data: invalid `test_split` argument: "
                         f"{test_split}. It must be between 0 and 1 (exclusive of 1).")
    arrays = load_npz(get_file(path, origin=TF_KERAS_DATASETS + "california_housing.npz",
                               file_hash=SHA256))
    x, y = arrays["x"], arrays["y"]
    if version == "small":
        x, y = x[:600], y[:600]
    elif version != "large":
        raise ValueError("california_housing.load_data: argument `version` must be one of "
                         f"'small', 'large'. Received: version={version}")
    order = np.arange(len(x))
    np.random.RandomState(seed).shuffle(order)
    x, y = x[order], y[order]
    split = int(len(x) * (1 - test_split))
    return (np.array(x[:split]), np.array(y[:split])), (np.array(x[split:]), np.array(y[split:]))
