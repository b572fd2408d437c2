"""`HDF5Matrix`: Keras 2's read-only array view of an HDF5 dataset (`keras.utils.io_utils`)."""
from __future__ import annotations

import numpy as np

_OPEN_FILES: dict = {}  # path -> open h5py.File, shared by every matrix over that file


def _open(datapath):
    """The file at `datapath`, opened read-only once and shared (as Keras 2's `refs`)."""
    import h5py

    if datapath not in _OPEN_FILES:
        _OPEN_FILES[datapath] = h5py.File(datapath, "r")
    return _OPEN_FILES[datapath]


class HDF5Matrix:
    """Rows `start:end` of an HDF5 dataset, read on demand, usable where an array is.

    Args:
        datapath: path of the HDF5 file.
        dataset: name of the dataset in the file.
        start: first row of the slice (default 0).
        end: row after the last one (default: the dataset's length).
        normalizer: function applied to every block of rows read.

    Indexing takes an int, a slice (step 1), or a list / 1-D integer array of row numbers
    (in any order). `fit`, `evaluate` and `predict` read the slice into host memory once (via
    `to_numpy`), so `shuffle=True` works as well as Keras 2's required `shuffle="batch"`.

    Example (a file `data.h5` holding datasets `images` and `labels`):
        x = HDF5Matrix("data.h5", "images", end=1000, normalizer=lambda a: a / 255)
        model.fit(x, HDF5Matrix("data.h5", "labels", end=1000), shuffle="batch")
    """

    def __init__(self, datapath, dataset, start=0, end=None, normalizer=None):
        self.data = _open(datapath)[dataset]
        self.start = int(start)
        self.end = self.data.shape[0] if end is None else int(end)
        self.normalizer = normalizer
        first = self._read(slice(self.start, self.start + 1))
        self._row_shape = tuple(first.shape[1:])
        self._dtype = first.dtype

    def _read(self, rows):
        block = self.data[rows]
        return block if self.normalizer is None else self.normalizer(block)

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self._read(self._absolute_slice(key))
        if isinstance(key, (int, np.integer)):
            return self._read(self._absolute_row(int(key)))
        return self._read_rows(key)

    def _absolute_row(self, row: int) -> int:
        if not -len(self) <= row < len(self):
            raise IndexError(f"HDF5Matrix: row {row} is out of range for {len(self)} rows.")
        return self.start + row % len(self)

    def _absolute_slice(self, key: slice) -> slice:
        begin, stop, step = key.indices(len(self))
        if step != 1:
            raise IndexError(f"HDF5Matrix: slices must have step 1. Received: {key}")
        return slice(self.start + begin, self.start + max(begin, stop))

    def _read_rows(self, rows):
        """Rows in any order: h5py reads increasing unique rows, then they are reordered."""
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise IndexError("HDF5Matrix: index with an int, a slice, or a list / 1-D array "
                             f"of ints. Received: {rows.dtype} array of shape {rows.shape}")
        absolute = np.array([self._absolute_row(int(r)) for r in rows], dtype=np.int64)
        unique, positions = np.unique(absolute, return_inverse=True)
        return self._read(unique.tolist())[positions]

    def to_numpy(self) -> np.ndarray:
        """All rows of the slice as one NumPy array (normalizer applied)."""
        return np.asarray(self[:])

    def __array__(self, dtype=None, copy=None):
        array = self.to_numpy()
        return array if dtype is None else array.astype(dtype)

    @property
    def shape(self) -> tuple:
        return (len(self),) + self._row_shape

    @property
    def dtype(self):
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))
