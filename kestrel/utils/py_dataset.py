"""PyDataset (Keras 3) / Sequence (Keras 2): a batch-indexed dataset for fit()."""
from __future__ import annotations

import itertools
import warnings

_LOADING_DEFAULTS = {"workers": 1, "use_multiprocessing": False, "max_queue_size": 10}


class PyDataset:
    """Base class for datasets that return whole batches by index.

    Subclasses define `__len__` (number of batches; or override `num_batches`, None for an
    endless dataset) and `__getitem__(index)` returning `(x, y)` or `(x, y, sample_weight)`;
    `on_epoch_begin()` / `on_epoch_end()` are called around each epoch. Iterating one yields
    its batches in order, as Keras does.
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getattr__(self, name):
        """Keras' defaults (and warning) for a subclass whose `__init__` skipped `super()`."""
        if name not in _LOADING_DEFAULTS:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in its "
                      "constructor. `**kwargs` can include `workers`, `use_multiprocessing`, "
                      "`max_queue_size`. Do not pass these arguments to `fit()`, as they will "
                      "be ignored.", stacklevel=2)
        for key, value in _LOADING_DEFAULTS.items():
            self.__dict__.setdefault(key, value)
        return self.__dict__[name]

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    @property
    def num_batches(self) -> int | None:
        """The number of batches, `len(self)`; None means endless."""
        return len(self)

    def __iter__(self):
        count = self.num_batches
        for index in itertools.count() if count is None else range(count):
            yield self[index]

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called after each epoch; override to reshuffle."""


Sequence = PyDataset
