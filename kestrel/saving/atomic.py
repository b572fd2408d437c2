"""Atomic file writes: write beside the target, flush to disk, then rename over it.

A crash or an exception in the middle of a save leaves the previous file untouched. The
temporary file is named `.<target name>.<pid>.<random>.tmp`; a process killed mid-save
(`kill -9`) leaves it behind, and the next save to the same target removes it.
"""
from __future__ import annotations

import contextlib
import os
import re
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
    prefix = f".{os.path.basename(filepath)}."
    remove_stale_temporaries(folder, prefix)
    handle, temp_path = tempfile.mkstemp(dir=folder, prefix=f"{prefix}{os.getpid()}.",
                                         suffix=".tmp")
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


def remove_stale_temporaries(folder: str, prefix: str) -> list[str]:
    """Remove `<prefix><pid>.<random>.tmp` files in `folder` whose writing process is gone.

    Only this exact pattern is touched; files of a live process (a save in progress, in this
    or another process) are kept. Returns the removed paths.
    """
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.[a-z0-9_]{8}\.tmp")  # as mkstemp names
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _process_alive(int(match.group(1))):
            path = os.path.join(folder, name)
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether process `pid` exists (always assumed alive where this cannot be asked)."""
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # e.g. another user's process
        pass
    return True


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (best effort: not every platform allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
