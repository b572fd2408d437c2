"""tf.data-style chaining (`map`, `take`, `cache`, `prefetch`, `cardinality`) on iterables of
batches, so keras.io's `text_dataset_from_directory(...).map(fn).cache().prefetch(n)` runs.
"""
from __future__ import annotations

import itertools


class Pipeline:
    """Mixin for an iterable of elements with `len()`: each method returns a new lazy iterable.

    Example:
        >>> class Batches(Pipeline, list): pass
        >>> list(Batches([(1, 2), (3, 4)]).map(lambda x, y: x + y).take(1))
        [3]
    """

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """Apply `map_func` to each element; a tuple element is passed as positional args."""
        return _Derived(lambda: (map_func(*e) if isinstance(e, tuple) else map_func(e)
                                 for e in self), len(self))

    def take(self, count: int):
        """The first `count` elements (all of them when `count` is -1)."""
        n = len(self) if count < 0 else min(count, len(self))
        return _Derived(lambda: itertools.islice(self, n), n)

    def cache(self, filename: str = "", name=None):
        """Replay the elements of the first full pass (in memory) on later passes."""
        return _Cached(self)

    def prefetch(self, buffer_size=None, name=None):
        """The same elements (torch's `DataLoader` workers do the prefetching here)."""
        return self

    def cardinality(self) -> int:
        """The number of elements."""
        return len(self)


class _Derived(Pipeline):
    """Elements made anew on each pass by `make()`."""

    def __init__(self, make, length: int):
        self._make, self._length = make, length

    def __iter__(self):
        return iter(self._make())

    def __len__(self) -> int:
        return self._length


class _Cached(Pipeline):
    """Elements of `source`, kept after the first complete pass."""

    def __init__(self, source):
        self._source, self._elements = source, None

    def __iter__(self):
        if self._elements is not None:
            yield from self._elements
            return
        elements = []
        for e in self._source:
            elements.append(e)
            yield e
        self._elements = elements

    def __len__(self) -> int:
        return len(self._source)
