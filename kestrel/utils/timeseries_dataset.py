"""`timeseries_dataset_from_array`: sliding windows over a sequence, batched."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from kestrel.ops.convert import from_numpy
from kestrel.utils.dataset_utils import BatchDataset


class WindowSamples(Dataset):
    """Sample `i`: `data[start + p_i : ... : rate]` (`length` steps) and `targets[p_i]`."""

    def __init__(self, data, targets, starts, length, rate):
        self.data, self.targets = data, targets
        self.starts, self.length, self.rate = starts, length, rate

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int):
        start = int(self.starts[index])
        window = self.data[start:start + self.length * self.rate:self.rate]
        return window if self.targets is None else (window, self.targets[start])


def _sliceable(values, start, end):
    values = values[start:end]
    return values if isinstance(values, torch.Tensor) else from_numpy(np.asarray(values))


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None, format="tf"):
    """Batches of windows `(batch, sequence_length, ...)` of `data` (and the targets at each
    window's first step), as Keras' function.

    Windows start every `sequence_stride` steps from `start_index` (inclusive) and end before
    `end_index`; each takes every `sampling_rate`-th step. `shuffle` permutes the windows with
    `np.random.RandomState(seed)` (Keras' set of start positions) and draws a new batch order
    each epoch (Keras' tf.data shuffle buffer has no torch equivalent). Returns a
    `BatchDataset` (`.dataloader(...)` for a torch DataLoader).

    Example:
        >>> ds = timeseries_dataset_from_array(np.arange(10), None, sequence_length=3,
        ...                                    batch_size=4)
        >>> next(iter(ds)).tolist()
        [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    """
    n = len(data)
    if start_index and not 0 <= start_index < n:
        raise ValueError("`start_index` must be 0 or greater and lower than the length of the "
                         f"data. Received: start_index={start_index}, for data of length {n}")
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError("`end_index` must be higher than `start_index`. Received: "
                             f"start_index={start_index}, and end_index={end_index}")
        if not 0 < end_index < n:
            raise ValueError("`end_index` must be higher than 0 and lower than the length of "
                             f"the data. Received: end_index={end_index}, for data of length {n}")
    for name, value in (("sampling_rate", sampling_rate), ("sequence_stride", sequence_stride)):
        if not 0 < value < n:
            raise ValueError(f"`{name}` must be higher than 0 and lower than the length of the "
                             f"data. Received: {name}={value}, for data of length {n}")
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')
    start_index = start_index or 0
    end_index = end_index or n
    num_seqs = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_seqs = min(num_seqs, len(targets))
    starts = np.arange(0, max(num_seqs, 0), sequence_stride, dtype="int64")
    if shuffle:
        seed = np.random.randint(1e6) if seed is None else seed
        np.random.RandomState(seed).shuffle(starts)
    samples = WindowSamples(_sliceable(data, start_index, end_index),
                            None if targets is None else _sliceable(targets, start_index,
                                                                    end_index),
                            starts, sequence_length, sampling_rate)
    return BatchDataset(samples, batch_size, shuffle, seed)
