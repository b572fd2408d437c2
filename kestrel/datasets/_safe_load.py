"""Read dataset files without letting them run code: pickles may only rebuild NumPy arrays.

IMDB stores ragged sequences as object arrays and CIFAR stores its batches as pickled dicts;
both need pickle, which could otherwise execute anything a tampered file asks for.
"""
from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np

_ALLOWED = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
})


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"Refusing to load `{module}.{name}` from a dataset file: only NumPy arrays are "
            "allowed. The file may be corrupted or malicious.")


def load_pickle(fileobj, encoding: str = "ASCII"):
    """Unpickle plain data and NumPy arrays only."""
    return _ArrayOnlyUnpickler(fileobj, encoding=encoding).load()


def _read_npy(buffer: io.BytesIO) -> np.ndarray:
    try:
        return np.lib.format.read_array(buffer, allow_pickle=False)
    except ValueError:  # an object array: its payload is a pickle stream after the header
        buffer.seek(0)
        major, _ = np.lib.format.read_magic(buffer)
        if major == 1:
            np.lib.format.read_array_header_1_0(buffer)
        else:
            np.lib.format.read_array_header_2_0(buffer)
        return load_pickle(buffer)


def load_npz(path) -> dict[str, np.ndarray]:
    """All arrays of an `.npz` file; object arrays go through the restricted unpickler."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                arrays[member[:-4]] = _read_npy(io.BytesIO(archive.read(member)))
    return arrays
