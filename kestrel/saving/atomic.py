"""Atomic file writes: write beside the target, flush to disk, then rename over it.

A crash or an exception in the middle of a save leaves the previous file untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_write(filepath) -> Iterator[str]:
    """Yield a temporary path in `filepath`'s folder; on success it replaces `filepath`.

    The temporary file is fsync'ed, then `os.replace`d onto the target, so readers see either
    the old file or the complete new one. On an exception the temporary file is removed.

    Args:
        filepath: the final destination (str or path-like).
    """
    filepath = os.fspath(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(filepath)}.", suffix=".tmp")
    os.close(handle)
    try:
        yield temp_path
        with open(temp_path, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temp_path, filepath)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp_path)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (best effort: not every platform allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
