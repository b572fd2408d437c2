"""What `adapt()` accepts: one array or tensor, or an iterable of batches (lists of arrays,
generators, torch DataLoaders, `PyDataset`s); `(x, y, ...)` batches contribute `x`."""
from __future__ import annotations

import itertools

import numpy as np
import torch

from kestrel.ops.convert import from_numpy


def first_of(batch):
    """`x` of an `(x, y)` or `(x, y, sample_weight)` batch; other batches unchanged."""
    return batch[0] if isinstance(batch, tuple) else batch


def is_whole(data) -> bool:
    """Whether `data` is one array or tensor (not an iterable of batches)."""
    return isinstance(data, (np.ndarray, torch.Tensor))


def iter_batches(data, layer: str, batch_size=None, steps=None):
    """Yield the batches of `data` (at most `steps`); an array is cut into `batch_size` rows.

    Raises a TypeError naming `layer` for data that is neither an array nor iterable.
    """
    if is_whole(data):
        size = batch_size or len(data) or 1
        batches = (data[i:i + size] for i in range(0, max(len(data), 1), size))
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__") \
            and not isinstance(data, (list, tuple, str)) and hasattr(data, "num_batches"):
        batches = (data[i] for i in range(len(data)))  # a PyDataset
    elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes)):
        batches = iter(data)
    else:
        raise TypeError(f"{layer}.adapt: unsupported data type {type(data).__name__}; pass a "
                        "NumPy array, a tensor, or an iterable of batches (list, generator, "
                        "DataLoader).")
    if steps is not None:
        batches = itertools.islice(batches, steps)
    return (first_of(b) for b in batches)


def peek(batches, layer: str):
    """(first batch, the same batches again): raises a ValueError if there are none."""
    first = next(batches, None)
    if first is None:
        raise ValueError(f"{layer}.adapt received an empty iterable (no batches). Pass a "
                         "non-empty iterable of arrays or tensors.")
    return first, itertools.chain([first], batches)


def is_strings(values) -> bool:
    """Whether `values` (a NumPy array) holds strings or bytes."""
    return isinstance(values, np.ndarray) and values.dtype.kind in "USO"


def rectangular(values, layer: str, dtype=None) -> np.ndarray:
    """`np.asarray(values, dtype)`, refusing ragged nested lists as Keras does (a ValueError
    naming `layer`) instead of keeping whole rows as single items."""
    try:
        array = np.asarray(values, dtype=dtype)
    except ValueError:
        array = None
    if array is None or array.dtype == object and any(
            isinstance(v, (list, tuple, np.ndarray)) for v in array.reshape(-1)):
        raise ValueError(f"{layer}: can't convert non-rectangular Python sequence to Tensor; "
                         "torch has no ragged tensors, so give every row the same length. "
                         f"Received: inputs={str(values)[:80]}")
    return array


def as_values(inputs, layer: str):
    """A tensor stays a tensor; lists and arrays of numbers become tensors; strings become a
    NumPy array of `str` (bytes decoded as UTF-8)."""
    if isinstance(inputs, torch.Tensor):
        return inputs
    array = rectangular(inputs, layer)
    if array.dtype.kind == "S" or array.dtype.kind == "O":
        flat = [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.reshape(-1)]
        if all(isinstance(v, str) for v in flat):
            return np.array(flat, dtype=object).reshape(array.shape).astype(str) \
                if flat else array.astype(str)
        return from_numpy(array.astype(np.int64) if array.dtype.kind == "O" else array)
    if array.dtype.kind == "U":
        return array
    return from_numpy(np.ascontiguousarray(array))


class AcceptsStrings:
    """Mixin for layers that take string data: NumPy/list inputs are converted by `as_values`;
    strings (which torch cannot hold) go straight to `call`, tensors through `Layer.__call__`."""

    accepts_strings = True

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (list, tuple, np.ndarray)):
            inputs = as_values(inputs, type(self).__name__)
            if isinstance(inputs, np.ndarray):
                if not self.built:
                    self._build_from_shape(tuple(inputs.shape))
                kwargs.pop("training", None)
                return self.call(inputs, *args, **kwargs)
        return super().__call__(inputs, *args, **kwargs)
