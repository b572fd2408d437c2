"""Turn what users pass to fit/evaluate/predict into batches of tensors on the model's device.

Arrays, tensors, DataFrames and lists/dicts of them are converted to tensors once and sliced
per batch (shuffled batches are gathered one at a time). They move to the model's device
whole, unless they would take more than a quarter of a CUDA device's free memory: then they
stay in host memory and each batch is copied through pinned memory without blocking. Datasets,
DataLoaders, PyDatasets and generators are iterated, each batch converted as it comes.
"""
from __future__ import annotations

import itertools
import math
import random
import types
import warnings
from typing import Iterator

import numpy as np
import torch

from kestrel import config
from kestrel.layers.node import flatten, is_string_array, map_structure
from kestrel.ops.convert import from_numpy


def to_tensor(value, device=None):
    """NumPy/pandas/Python data to a tensor; float64 becomes the default float type."""
    if value is None:
        return None
    if hasattr(value, "to_numpy") and not isinstance(value, torch.Tensor):  # pandas
        value = value.to_numpy()
    if not isinstance(value, torch.Tensor):
        array = np.asarray(value)
        if is_string_array(array):  # strings stay NumPy; string layers turn them into tensors
            return array
        if array.dtype == np.float64:
            array = array.astype(config.floatx())
        elif array.dtype == object:
            raise ValueError(f"Cannot convert data of dtype object to a tensor. Received: {value!r:.80}")
        value = from_numpy(np.ascontiguousarray(array))
    elif value.dtype == torch.float64 and config.floatx() != "float64":
        value = value.to(config.to_torch_dtype(config.floatx()))
    if device is not None and value.device != device:
        value = value.to(device, non_blocking=True)
    return value


DEVICE_DATA_FRACTION = 0.25  # of a CUDA device's free memory; larger array data stays on host


def to_device(value, device):
    """`value` on `device` (None: where it is). Host to CUDA goes through pinned memory with a
    non-blocking copy, which neither waits for the GPU's queued work nor stalls the host."""
    if value is None or device is None or not isinstance(value, torch.Tensor) \
            or value.device == device:
        return value
    if device.type == "cuda" and value.device.type == "cpu":
        return value.pin_memory().to(device, non_blocking=True)
    return value.to(device)


def _stays_on_host(parts: list, device) -> bool:
    """Whether array data is too large to move to the CUDA `device` at once."""
    if device is None or device.type != "cuda":
        return False
    on_host = [t for t in flatten(parts) if isinstance(t, torch.Tensor) and t.device.type == "cpu"]
    size = sum(t.numel() * t.element_size() for t in on_host)
    free, _ = torch.cuda.mem_get_info(device)
    return size > DEVICE_DATA_FRACTION * free


def structure_to_tensors(data, device=None, series_as_columns: bool = False):
    """An array-like, or a list / tuple / dict of them (several inputs), as tensors.

    With `series_as_columns` (the data fit/evaluate/predict slice, as Keras' array adapter)
    a pandas Series becomes one column, `(n, 1)`.
    """
    if series_as_columns and _is_series(data):
        data = np.expand_dims(data.to_numpy(), -1)
    if data is None or _is_array(data):
        return to_tensor(data, device)
    if isinstance(data, dict):
        return {k: structure_to_tensors(v, device, series_as_columns) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(structure_to_tensors(v, device, series_as_columns) for v in data)
    return to_tensor(data, device)


def _is_series(data) -> bool:
    return type(data).__name__ == "Series" and type(data).__module__.startswith("pandas")


def _is_array(data) -> bool:
    """One array: NumPy, torch, pandas, anything with `__array__` (an h5py dataset, as Keras
    reads it), or nested Python lists of numbers or strings."""
    if isinstance(data, (np.ndarray, torch.Tensor)) or hasattr(data, "to_numpy") or \
            hasattr(data, "__array__"):
        return True
    if isinstance(data, (list, tuple)):
        return bool(data) and all(isinstance(v, (int, float, bool, np.number, str)) or (
            isinstance(v, (list, tuple)) and _is_array(v)) for v in data)
    return False


def unpack(data):
    """A batch as `(x, y, sample_weight)` from `x`, `(x,)`, `(x, y)` or `(x, y, sw)`."""
    if isinstance(data, tuple):
        if len(data) == 1:
            return data[0], None, None
        if len(data) == 2:
            return data[0], data[1], None
        if len(data) == 3:
            return data
    if isinstance(data, list) and len(data) in (2, 3) and not isinstance(data[0], (int, float)):
        return unpack(tuple(data))
    return data, None, None


def num_samples(data) -> int:
    sizes = {int(t.shape[0]) for t in flatten(data) if t is not None}
    if len(sizes) > 1:
        raise ValueError(f"Data cardinality is ambiguous: the arrays have different numbers of "
                         f"samples {sorted(sizes)}. Make sure all arrays contain the same number "
                         "of samples.")
    return sizes.pop()


def is_array_like(x) -> bool:
    """Data held in memory: arrays, or lists / dicts of arrays."""
    if _is_array(x):
        return True
    leaves = flatten(x)
    return bool(leaves) and all(_is_array(v) for v in leaves)


class ArrayAdapter:
    """In-memory data: tensors on the device, sliced into batches."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False,
                 device=None):
        parts = [structure_to_tensors(v, series_as_columns=True) for v in (x, y, sample_weight)]
        # where batches are copied to, one at a time; None when the data moves whole
        self.batch_device = device if _stays_on_host(parts, device) else None
        if self.batch_device is None and device is not None:
            parts = [None if p is None else map_structure(lambda t: to_device(t, device), p)
                     for p in parts]
        self.x, self.y, self.sample_weight = parts
        n_x = num_samples(self.x)
        for name, part in (("y", self.y), ("sample_weight", self.sample_weight)):
            if part is not None and num_samples(part) != n_x:
                raise ValueError(
                    f"Data cardinality is ambiguous: x sizes: {n_x}, {name} sizes: "
                    f"{num_samples(part)}. Make sure all arrays contain the same number of samples.")
        self.n = n_x
        # as Keras: with steps and no batch size, the steps cover the data
        self.batch_size = batch_size or (max(1, math.ceil(n_x / steps)) if steps else 32)
        self.shuffle = shuffle
        self.steps = steps
        self.device = device

    @property
    def num_batches(self) -> int:
        full = math.ceil(self.n / self.batch_size)
        return min(full, self.steps) if self.steps else full

    def __iter__(self) -> Iterator[tuple]:
        if self.steps:
            yield from self._steps_of_a_pass()
            return
        # Keras' torch DataLoader draws a seed from the global RNG for each pass it starts,
        # and Keras starts the next pass as soon as one is complete
        _draw_seed()
        yield from self._pass_batches(self.num_batches)
        _draw_seed()

    def _pass_batches(self, count: int):
        return batches((self.x, self.y, self.sample_weight), count, self.batch_size,
                       self._order(), self.batch_device)

    def _steps_of_a_pass(self):
        """With `steps`, Keras reads one pass across epochs: an epoch that reaches the pass'
        end stops there (warning that the data ran out) and the next pass starts at once."""
        full = math.ceil(self.n / self.batch_size)
        if getattr(self, "_pass", None) is None:
            self._start_steps_pass(full)
        for _ in range(self.steps):
            if self._left == 0:
                _ran_out_of_data()
                break
            self._left -= 1
            yield next(self._pass)
        if self._left == 0:
            self._start_steps_pass(full)

    def _start_steps_pass(self, full: int) -> None:
        _draw_seed()  # the pass' DataLoader iterator; its shuffle draws when first read
        self._pass, self._left = iter(self._lazy_pass(full)), full

    def _lazy_pass(self, full: int):
        yield from self._pass_batches(full)

    def _order(self):
        """Rows in the order Keras' torch sampler gives them after the same global seed: None
        (in order); a permutation from a generator seeded off the global RNG (`shuffle=True`);
        or each batch's rows permuted by the global RNG as the batch is read (`"batch"`)."""
        device = self.x_device()
        if self.shuffle == "batch":
            size = self.batch_size
            return lambda step: (step * size + torch.randperm(
                min(size, self.n - step * size))).to(device)
        if self.shuffle:
            generator = torch.Generator().manual_seed(_draw_seed())
            return torch.randperm(self.n, generator=generator).to(device)
        return None

    def draw_build_batch_seeds(self) -> None:
        """The global RNG draws of the batch Keras reads to build a model at its first
        fit/evaluate after compile (a pass started and one batch taken, then dropped)."""
        _draw_seed()
        if self.shuffle == "batch":
            torch.randperm(min(self.batch_size, self.n))
        elif self.shuffle:
            _draw_seed()

    def x_device(self):
        tensors = [t for t in flatten(self.x) if isinstance(t, torch.Tensor)]
        return tensors[0].device if tensors else None


def _draw_seed() -> int:
    return int(torch.empty((), dtype=torch.int64).random_().item())


def batches(data, num_batches: int, batch_size: int, perm=None, device=None):
    """Consecutive batches of `data`: slices (views), or rows `perm[i:i+bs]` when shuffling,
    copied to `device` when given. `perm` may also be a function of the step giving the rows
    of that batch.

    Shuffled batches are gathered one at a time, so the data is never copied whole.
    """
    for step in range(num_batches):
        start = step * batch_size
        if perm is None:
            yield map_structure(lambda t: None if t is None else
                                to_device(t[start:start + batch_size], device), data)
        else:
            rows = perm(step) if callable(perm) else perm[start:start + batch_size]
            yield map_structure(lambda t: None if t is None else
                                to_device(_take(t, rows), device), data)


def _take(data, rows: torch.Tensor):
    """`data[rows]` for a tensor (on its device) or a NumPy string array."""
    if isinstance(data, torch.Tensor):
        return data.index_select(0, rows)
    return data[rows.cpu().numpy()]


class IterableAdapter:
    """Datasets, DataLoaders, PyDatasets and generators, converted batch by batch."""

    def __init__(self, data, batch_size=None, steps=None, shuffle=False, device=None):
        from torch.utils.data import DataLoader, Dataset

        if isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
            data = DataLoader(data, batch_size=batch_size or 32, shuffle=bool(shuffle))
        if _is_py_dataset(data):
            getattr(data, "workers", None)  # Keras warns here when super().__init__() was skipped
        self.data = data
        self.steps = steps
        self.shuffle = shuffle
        self.device = device
        self._iterator = None
        self._seen = 0  # batches read from `_iterator`, which `steps` keeps across epochs
        # as Keras, a generator's first batches are read ahead and every new pass over it
        # replays them before going on with the generator
        self._peeked = list(itertools.islice(data, _PEEKED_BATCHES)) if _is_stream(data) \
            else None

    def reset(self) -> None:
        """Start the next pass afresh, as Keras' epoch iterator does when fit or evaluate
        (validation included) begins; like it, this ends a PyDataset's epoch."""
        self._iterator, self._seen = None, 0
        if hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()

    def _fresh_iterator(self):
        if self._peeked is not None:
            return itertools.chain(self._peeked, self.data)
        return iter(self.data)

    @property
    def num_batches(self) -> int | None:
        if self.steps:
            return self.steps
        if _is_py_dataset(self.data):
            return _py_dataset_size(self.data)
        return _length(self.data)

    def _source(self):
        if _is_py_dataset(self.data):
            size = _py_dataset_size(self.data)
            if size is None:  # endless: read in order until `steps`
                order = itertools.count()
            else:
                order = self._py_dataset_order(size)
            return (self.data[int(i)] for i in order)
        if self.steps and self._iterator is not None:
            return self._iterator  # keep consuming a stream across epochs
        iterator = self._fresh_iterator()
        if self.steps:
            self._iterator, self._seen = iterator, 0
        return iterator

    def _py_dataset_order(self, size: int) -> list[int]:
        """A pass' batch indices, shuffled with Python's `random` as Keras does."""
        order = list(range(size))
        if self.shuffle:
            random.shuffle(order)
        return order

    def read_build_batch(self) -> None:
        """Keras' first fit/evaluate after compile starts a pass over a PyDataset or a
        DataLoader and reads one batch to build (then drops it, and `reset` ends the pass);
        the same reads keep its random draws in step."""
        if isinstance(self.data, torch.utils.data.DataLoader):
            next(iter(self.data), None)
            return
        _draw_seed()  # the DataLoader Keras wraps other data in starts a pass
        if not _is_py_dataset(self.data):
            return
        size = _py_dataset_size(self.data)
        if hasattr(self.data, "on_epoch_begin"):
            self.data.on_epoch_begin()
        if size is None or size > 0:
            self.data[0 if size is None else self._py_dataset_order(size)[0]]

    def __iter__(self):
        if hasattr(self.data, "on_epoch_begin"):
            self.data.on_epoch_begin()
        if not (self.steps and self._iterator is not None):
            _start_pass(self.data)
        source = self._source()
        step = 0
        for step, batch in enumerate(source, 1):
            batch = unpack(tuple(batch) if isinstance(batch, list) else batch)
            yield map_structure(lambda v: to_device(to_tensor(v), self.device), batch)
            self._seen += 1
            if self.steps and step >= self.steps:
                break
        else:
            if self.steps and step < self.steps:
                _ran_out_of_data()
            self._iterator = None
        if self._iterator is not None and self._seen == _length(self.data):
            self._iterator, self._seen = iter(self.data), 0  # read to its end: restart, as Keras
        elif not self.steps and step == self.num_batches:
            _start_pass(self.data, next_one=True)
        if hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()


_PEEKED_BATCHES = 2  # what Keras' generator adapter reads ahead for its tensor spec


def _is_stream(data) -> bool:
    """A generator or other one-pass iterator (not a PyDataset, DataLoader or Dataset)."""
    return not _is_py_dataset(data) and hasattr(data, "__next__") and iter(data) is data


def _start_pass(data, next_one: bool = False) -> None:
    """The global RNG draws of starting a pass as Keras' epoch iterator does: it wraps data
    other than a DataLoader in one, whose every pass draws a base seed, and it starts the
    next pass (`next_one`) as soon as one is read to its known end. A DataLoader draws its
    own seeds when iterated (its sampler's later, when the pass is read)."""
    if not isinstance(data, torch.utils.data.DataLoader):
        _draw_seed()
    elif next_one and not (data.persistent_workers and data.num_workers > 0):
        torch.empty((), dtype=torch.int64).random_(generator=data.generator)


def _length(data) -> int | None:
    try:
        return len(data)
    except TypeError:
        return None


def _ran_out_of_data() -> None:
    """Keras' warning when `steps_per_epoch` asks for more batches than the data holds."""
    warnings.warn("Your input ran out of data; interrupting training. Make sure that your "
                  "dataset or generator can generate at least `steps_per_epoch * epochs` "
                  "batches. You may need to use the `.repeat()` function when building your "
                  "dataset.", stacklevel=2)


def _py_dataset_size(data) -> int | None:
    """A PyDataset's `num_batches` (Keras 2 Sequences have only `__len__`)."""
    return data.num_batches if hasattr(data, "num_batches") else len(data)


def _is_py_dataset(data) -> bool:
    return hasattr(data, "__getitem__") and hasattr(data, "__len__") and \
        not isinstance(data, (list, tuple, dict, np.ndarray, torch.Tensor)) and \
        not isinstance(data, torch.utils.data.Dataset)


def get_adapter(x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False,
                device=None):
    """Pick the adapter for `x`; batch_size defaults to 32 as in Keras."""
    if x is None:
        raise ValueError("Expected input data `x`. Received: x=None")
    limit = config.max_steps_per_epoch()  # `keras.config.set_max_steps_per_epoch`, for debugging
    if limit and (not steps or limit < steps):
        warnings.warn(f"Limiting steps_per_epoch to {limit}", stacklevel=3)
        steps = limit
    if is_array_like(x) or isinstance(x, dict):
        return ArrayAdapter(x, y, sample_weight, batch_size, steps, shuffle, device)
    if y is not None:
        raise ValueError(
            "`y` should not be passed when `x` is a dataset, generator or PyDataset: it must "
            f"yield (x, y) itself. Received: x={type(x).__name__}, y={type(y).__name__}")
    if shuffle:
        _warn_shuffle_ignored(x)
    return IterableAdapter(x, batch_size, steps, shuffle, device)


def _warn_shuffle_ignored(x) -> None:
    """Keras' warning when `fit(shuffle=True)` (the default) cannot shuffle `x`."""
    if isinstance(x, types.GeneratorType):
        kind = "a generator. The generator is expected to yield already-shuffled data"
    elif isinstance(x, torch.utils.data.DataLoader):
        kind = "a torch DataLoader. The DataLoader is expected to already be shuffled"
    elif _is_py_dataset(x) and getattr(x, "num_batches", 0) is None:
        kind = "an infinite PyDataset. The PyDataset is expected to already be shuffled"
    else:
        return
    warnings.warn(f"`shuffle=True` was passed, but will be ignored since the data `x` was "
                  f"provided as {kind}.", stacklevel=5)


def split_validation(x, y, sample_weight, validation_split: float):
    """Keras' validation_split: the *last* fraction of the samples, taken before shuffling."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1). Received: {validation_split}")
    if not is_array_like(x) and not isinstance(x, dict):
        raise ValueError("validation_split is only supported for arrays and tensors, not for "
                         f"{type(x).__name__}. Pass validation_data instead.")
    x, y, sample_weight = (structure_to_tensors(v, series_as_columns=True)
                           for v in (x, y, sample_weight))
    n = num_samples(x)
    split = int(n * (1.0 - validation_split))
    head = lambda d: None if d is None else map_structure(lambda t: t[:split], d)  # noqa: E731
    tail = lambda d: None if d is None else map_structure(lambda t: t[split:], d)  # noqa: E731
    return (head(x), head(y), head(sample_weight)), (tail(x), tail(y), tail(sample_weight))
