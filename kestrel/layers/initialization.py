"""Skipping weight initializers for models whose weights are all about to be overwritten."""
from __future__ import annotations

import contextlib

_DEPTH = [0]  # how many `initializers_skipped` scopes are open


@contextlib.contextmanager
def initializers_skipped():
    """Inside, new weights start as zeros instead of running their initializers: for a model
    built only to load a weights file (a pretrained application), whose loading fails loudly
    when the file lacks a weight. Initializers draw no global random state when called, so
    what is drawn afterwards is unchanged."""
    _DEPTH[0] += 1
    try:
        yield
    finally:
        _DEPTH[0] -= 1


def skipped() -> bool:
    """Whether an `initializers_skipped` scope is open."""
    return bool(_DEPTH[0])
