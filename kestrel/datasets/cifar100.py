"""CIFAR-100: 50,000 training and 10,000 test color images, 32x32, in 100 fine classes
(20 coarse superclasses)."""
from __future__ import annotations

import os

import numpy as np

from kestrel import config
from kestrel.datasets.cifar10 import load_batch
from kestrel.utils.file_utils import get_file

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"


def load_data(label_mode: str = "fine"):
    """Load CIFAR-100 as uint8 images and int labels: `(x_train, y_train), (x_test, y_test)`.

    Args:
        label_mode: `"fine"` (100 classes) or `"coarse"` (20 superclasses).

    Returns:
        `x_*` of shape `(n, 32, 32, 3)` (`(n, 3, 32, 32)` with `"channels_first"`), `y_*` of
        shape `(n, 1)`.

    Example: `(x, y), _ = kestrel.datasets.cifar100.load_data(label_mode="coarse")`.
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError('cifar100.load_data: `label_mode` must be one of "fine", "coarse". '
                         f"Received: label_mode={label_mode}.")
    path = get_file(fname="cifar-100-python-target", origin=ORIGIN, extract=True,
                    file_hash=SHA256)
    path = os.path.join(path, "cifar-100-python")
    splits = []
    for part in ("train", "test"):
        x, y = load_batch(os.path.join(path, part), label_key=f"{label_mode}_labels")
        y = np.reshape(y, (len(y), 1))
        if config.image_data_format() == "channels_last":
            x = x.transpose(0, 2, 3, 1)
        splits.append((x, y))
    return tuple(splits)
