"""PyDataset (Keras 3) / Sequence (Keras 2): a batch-indexed dataset for fit()."""
from __future__ import annotations


class PyDataset:
    """Base class for datasets that return whole batches by index.

    Subclasses define `__len__` (number of batches) and `__getitem__(index)` returning
    `(x, y)` or `(x, y, sample_weight)`; `on_epoch_end()` is called after each epoch.
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def on_epoch_end(self):
        """Called at the end of every epoch; override to reshuffle."""


Sequence = PyDataset
