"""`kestrel.backend`: Keras 3's backend names, and Keras 2's `K` functions for older scripts.

    from kestrel import backend as K
    K.floatx(), K.epsilon(), K.backend()        # "float32", 1e-07, "torch"
    K.mean(K.square(y_true - y_pred), axis=-1)  # Keras 2 style, on tensors or KerasTensors

The Keras 2 functions live in `kestrel.backend.keras2`, built on `kestrel.ops` (one
implementation per op); they load on first use.
"""
from __future__ import annotations

import importlib

from kestrel.backend.dtypes import is_float_dtype, is_int_dtype, result_type, standardize_dtype
from kestrel.config import (epsilon, floatx, image_data_format, set_epsilon, set_floatx,
                            set_image_data_format)


def backend() -> str:
    """The name of the tensor library underneath: always `"torch"`."""
    return "torch"


def get_uid(prefix: str = "") -> int:
    """A counter per prefix, starting at 1 and shared with automatic names (Keras'
    `backend.get_uid`: after one `Dense()`, `get_uid("dense")` is 2)."""
    from kestrel.layers.naming import next_uid

    return next_uid(prefix)


def reset_uids() -> None:
    """Restart every `get_uid` counter and automatic name (Keras 2's `backend.reset_uids`)."""
    from kestrel.layers.naming import reset_names

    reset_names()


def clear_session(free_memory: bool = True) -> None:
    """Reset generated names, uid counters and the global seed generator (Keras'
    `clear_session`); `free_memory` also runs Python's garbage collection."""
    from kestrel.utils.session import clear_session as reset_session

    reset_session(free_memory)


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
