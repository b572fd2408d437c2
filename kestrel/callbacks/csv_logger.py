"""`CSVLogger`: stream epoch results to a CSV file."""
from __future__ import annotations

import csv
import os
from collections.abc import Iterable

import numpy as np

from kestrel.callbacks.callback import Callback
from kestrel.ops.core import convert_to_numpy


def _cell(value):
    """A CSV cell as Keras writes it: strings and numbers as they are; any other iterable as
    `"[a, b, ...]"` with its quotes (which the csv module then doubles)."""
    if hasattr(value, "detach"):  # torch tensor: the NumPy array Keras' logs would hold
        value = convert_to_numpy(value)
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value
    if isinstance(value, Iterable):
        items = ", ".join(map(str, value))
        return f'"[{items}]"'
    return value


class CSVLogger(Callback):
    """Streams epoch results to a CSV file, one row per epoch (epochs are 0-based).

    Columns are `epoch` then the sorted log names; when the first epoch has no
    validation results, `val_` columns are added anyway (filled with `NA`), as Keras does.

    Args:
        filename: Name of the CSV file, e.g. `"run/log.csv"`.
        separator: String used to separate cells.
        append: Whether to append to an existing file (no second header) instead of
            overwriting it.
    """

    def __init__(self, filename, separator: str = ",", append: bool = False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as f:
                self.append_header = not f.readline()
        else:
            self.append_header = True
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w",
                             newline="", encoding="utf-8")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys],
                                         delimiter=self.sep, extrasaction="ignore")
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, _cell(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None
