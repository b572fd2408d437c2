"""MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 grayscale."""
from __future__ import annotations

import numpy as np

from kestrel.datasets._origins import TF_KERAS_DATASETS
from kestrel.utils.file_utils import get_file

SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def load_data(path: str = "mnist.npz"):
    """Load MNIST as uint8 arrays: `(x_train, y_train), (x_test, y_test)`.

    Args:
        path: file name in the cache (`~/.keras/datasets`).

    Returns:
        `x_*` of shape `(n, 28, 28)` with values 0-255, `y_*` of shape `(n,)` with digits 0-9.
    """
    path = get_file(fname=path, origin=f"{TF_KERAS_DATASETS}mnist.npz", file_hash=SHA256)
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
