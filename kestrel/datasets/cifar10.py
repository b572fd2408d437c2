"""CIFAR-10: 50,000 training and 10,000 test color images, 32x32, in 10 classes."""
from __future__ import annotations

import os

import numpy as np

from kestrel import config
from kestrel.datasets._origins import CIFAR10
from kestrel.datasets._safe_load import load_pickle
from kestrel.utils.file_utils import get_file

SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def load_batch(fpath, label_key: str = "labels"):
    """`(data, labels)` of one CIFAR batch file; data shaped `(n, 3, 32, 32)`."""
    with open(fpath, "rb") as f:
        batch = {k.decode("utf8"): v for k, v in load_pickle(f, encoding="bytes").items()}
    data = batch["data"]
    return data.reshape(data.shape[0], 3, 32, 32), batch[label_key]


def load_data():
    """Load CIFAR-10 as uint8 arrays: `(x_train, y_train), (x_test, y_test)`.

    Returns:
        `x_*` of shape `(n, 32, 32, 3)` (channels last; `(n, 3, 32, 32)` when the image data
        format is `"channels_first"`) with values 0-255, `y_*` of shape `(n, 1)` with classes
        0-9 (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck).
    """
    path = get_file(fname="cifar-10-batches-py", origin=CIFAR10, extract=True, file_hash=SHA256)
    path = os.path.join(path, "cifar-10-batches-py")  # the archive holds one inner folder
    batches = [load_batch(os.path.join(path, f"data_batch_{i}")) for i in range(1, 6)]
    x_train = np.concatenate([data for data, _ in batches]).astype("uint8")
    y_train = np.concatenate([labels for _, labels in batches]).astype("uint8").reshape(-1, 1)
    x_test, y_test = load_batch(os.path.join(path, "test_batch"))
    x_test = x_test.astype("uint8")
    y_test = np.asarray(y_test, dtype="uint8").reshape(-1, 1)
    if config.image_data_format() == "channels_last":
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test, y_test)
