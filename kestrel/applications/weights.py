"""Weights for the applications: argument checks and loading pretrained or local files."""
from __future__ import annotations

import os

from kestrel.utils.file_utils import get_file


def validate_weights_args(weights, include_top: bool, classes: int) -> None:
    """Reject a `weights` that is neither None, `"imagenet"` nor an existing file, and a
    pretrained classifier asked for other than 1000 classes (Keras' messages).

    Example:
        >>> validate_weights_args(None, True, 10)
    """
    if not (weights in {"imagenet", None} or _exists(weights)):
        raise ValueError("The `weights` argument should be either `None` (random "
                         "initialization), 'imagenet' (pre-training on ImageNet), or the path "
                         f"to the weights file to be loaded.  Received: weights={weights}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("If using `weights='imagenet'` with `include_top=True`, `classes` "
                         f"should be 1000.  Received classes={classes}")


def _exists(weights) -> bool:
    try:
        return os.path.exists(os.fspath(weights))
    except TypeError:
        return False


def load_application_weights(model, weights, *, file_name: str, origin: str,
                             file_hash: str | None = None):
    """Fill `model` from `weights` and return it.

    Args:
        model: the freshly built application model.
        weights: None (keep the initialization), `"imagenet"` (download `origin` once into
            the Keras cache's `models` folder as `file_name`, checked against `file_hash`),
            or a path to a `.h5` (Keras 2 layout, as published) or `.weights.h5` file.
        file_name: cache file name of the pretrained weights.
        origin: address of the pretrained weights.
        file_hash: their md5 or sha256 digest.
    """
    if weights is None:
        return model
    if weights == "imagenet":
        weights = get_file(file_name, origin, cache_subdir="models", file_hash=file_hash)
    model.load_weights(weights)
    return model
