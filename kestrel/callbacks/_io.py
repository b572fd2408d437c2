"""Small I/O helpers shared by the callbacks: messages and atomic file writes."""
from __future__ import annotations

import os
import sys
import tempfile


def print_msg(message: str) -> None:
    """Write one line to stdout and flush it (looked up at call time, so capture works)."""
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()


def atomic_write(path: str, write) -> None:
    """Call `write(temp_path)`, then move the result onto `path` in one step.

    The temporary file lives in the same folder, so `os.replace` is atomic: readers see
    the old file or the new one, never a partial one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp_path = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        write(temp_path)
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
