"""LazyLogs: batch-level logs that read metric values only when someone looks."""
from __future__ import annotations

from collections.abc import Mapping


class LazyLogs(Mapping):
    """A read-only mapping `metric name -> 0-d tensor`, computed on access.

    The trainer hands one to batch-level callbacks; nothing is computed (and nothing syncs
    with the device) unless a callback or the progress bar reads a value. `before_read` runs
    before every read.
    """

    __slots__ = ("_metrics", "_before_read")

    def __init__(self, metrics, before_read=None):
        self._metrics = {m.name: m for m in sorted(metrics, key=lambda m: m.name)}  # as Keras
        self._before_read = before_read  # e.g. applies deferred metric updates

    def __getitem__(self, name):
        if self._before_read is not None:
            self._before_read()
        return self._metrics[name].result()

    def __iter__(self):
        return iter(self._metrics)

    def __len__(self):
        return len(self._metrics)
