"""Fashion-MNIST: 60,000 training and 10,000 test images of clothes, 28x28 grayscale."""
from __future__ import annotations

import gzip
import os

import numpy as np

from kestrel.datasets._origins import TF_KERAS_DATASETS
from kestrel.utils.file_utils import get_file

FILE_HASHES = {
    "train-labels-idx1-ubyte.gz":
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "train-images-idx3-ubyte.gz":
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "t10k-labels-idx1-ubyte.gz":
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    "t10k-images-idx3-ubyte.gz":
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
}


def _read(path: str, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load_data():
    """Load Fashion-MNIST as uint8 arrays: `(x_train, y_train), (x_test, y_test)`.

    Returns:
        `x_*` of shape `(n, 28, 28)` with values 0-255, `y_*` of shape `(n,)` with classes 0-9
        (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot).
    """
    paths = [get_file(name, origin=TF_KERAS_DATASETS + name,
                      cache_subdir=os.path.join("datasets", "fashion-mnist"), file_hash=digest)
             for name, digest in FILE_HASHES.items()]
    y_train, y_test = _read(paths[0], 8), _read(paths[2], 8)
    x_train = _read(paths[1], 16).reshape(len(y_train), 28, 28)
    x_test = _read(paths[3], 16).reshape(len(y_test), 28, 28)
    return (x_train, y_train), (x_test, y_test)
