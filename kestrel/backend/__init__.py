"""`kestrel.backend`: Keras 3's backend names, and Keras 2's `K` functions for older scripts.

    from kestrel import backend as K
    K.floatx(), K.epsilon(), K.backend()        # "float32", 1e-07, "torch"
    K.mean(K.square(y_true - y_pred), axis=-1)  # Keras 2 style, on tensors or KerasTensors

The Keras 2 functions live in `kestrel.backend.keras2`, built on `kestrel.ops` (one
implementation per op); they load on first use.
"""
from __future__ import annotations

import importlib
import itertools

from kestrel.backend.dtypes import is_float_dtype, is_int_dtype, result_type, standardize_dtype
from kestrel.config import (epsilon, floatx, image_data_format, set_epsilon, set_floatx,
                            set_image_data_format)

_UIDS: dict[str, itertools.count] = {}


def backend() -> str:
    """The name of the tensor library underneath: always `"torch"`."""
    return "torch"


def get_uid(prefix: str = "") -> int:
    """A counter per prefix, starting at 1 (Keras' `backend.get_uid`)."""
    counter = _UIDS.setdefault(prefix, itertools.count(1))
    return next(counter)


def reset_uids() -> None:
    """Restart every `get_uid` counter at 1 (Keras 2's `backend.reset_uids`)."""
    _UIDS.clear()


def clear_session(free_memory: bool = True) -> None:
    """Reset generated layer names and uid counters (Keras' `clear_session`)."""
    from kestrel.utils.session import clear_session as reset_names

    reset_names()
    reset_uids()


def is_keras_tensor(x) -> bool:
    """Whether `x` is a symbolic `KerasTensor` (made by `Input` or by a layer on one)."""
    from kestrel.layers.node import KerasTensor

    return isinstance(x, KerasTensor)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    keras2 = importlib.import_module("kestrel.backend.keras2")
    if name in keras2.__all__:
        return getattr(keras2, name)
    raise AttributeError(f"module 'kestrel.backend' has no attribute {name!r}")
