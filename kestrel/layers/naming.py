"""Unique automatic names (`dense`, `dense_1`, ...) and snake_case conversion."""
from __future__ import annotations

import re
from collections import defaultdict

_COUNTS: defaultdict[str, int] = defaultdict(int)


def to_snake_case(name: str) -> str:
    """`Conv2DTranspose` -> `conv2d_transpose`, `ConvLSTM2D` -> `conv_lstm2d`, as Keras does."""
    name = re.sub(r"\W+", "", name)
    intermediate = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def unique_name(base: str) -> str:
    """`base` the first time, then `base_1`, `base_2`, ..."""
    count = _COUNTS[base]
    _COUNTS[base] += 1
    return base if count == 0 else f"{base}_{count}"


def next_uid(prefix: str) -> int:
    """Count one more use of `prefix` and return the count (Keras' `backend.get_uid`): it shares
    the counters of `unique_name`, so `get_uid("dense")` after one `Dense()` is 2."""
    _COUNTS[prefix] += 1
    return _COUNTS[prefix]


def reset_names() -> None:
    """Forget every generated name (part of `clear_session`)."""
    _COUNTS.clear()
