"""Freed CPU memory kept in the process while Kestrel's loops run (glibc only).

A training step on the CPU allocates and frees large buffers: a convolutional network at
batch 32 moves about 2 GB of activations and gradients per step. glibc returns every freed
block above its mmap threshold (at most 32 MiB by default) to the kernel, so the next step
faults each page in again, and on a virtual machine that kernel time can match the
arithmetic (MobileNetV2's training step, batch 32 at 224x224, 2 threads: 1.1 s with 40% of
the CPU time in the kernel, 0.55 s with freed memory kept).

`fit`, `evaluate`, `predict` and the `*_on_batch` calls on a CPU model raise glibc's mmap and
trim thresholds for the process (once), so freed blocks are reused, as torch's CUDA allocator
keeps its cache: up to 2 GiB free at the top of the heap stays with the process, and
`clear_session()` hands it back (`malloc_trim`). Handing it back whenever a loop returns would
make the next call fault its buffers in again (a hand-written loop after `fit`, 6% slower in
the MLP benchmark). `kestrel.config.disable_cpu_memory_reuse()` turns this off (and lowers the
thresholds again); on other C libraries nothing changes.
"""
from __future__ import annotations

import ctypes
import platform

import torch

from kestrel import config

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Blocks up to 2 GiB come from the heap; up to 2 GiB free at its top stays (mallopt's int).
_KEPT = 2 ** 31 - 1
# glibc's own ceilings for its adaptive thresholds: what `release` sets them back to.
_GLIBC_MMAP_MAX, _GLIBC_TRIM_MAX = 32 << 20, 64 << 20

_state = {"libc": None, "raised": False}


def _libc():
    """glibc's handle, or None on other C libraries."""
    if _state["libc"] is None:
        _state["libc"] = ctypes.CDLL("libc.so.6") if platform.libc_ver()[0] == "glibc" else False
    return _state["libc"] or None


def keep_freed(device: torch.device) -> None:
    """Raise glibc's thresholds for the process (once) when `device` is the CPU and reuse is
    enabled."""
    if _state["raised"] or device.type != "cpu" or not config.is_cpu_memory_reuse_enabled():
        return
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _KEPT)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEPT)
        _state["raised"] = True


def give_back() -> None:
    """Hand the heap's free memory back to the kernel (`clear_session`)."""
    if _state["raised"]:
        _libc().malloc_trim(0)


def release() -> None:
    """Lower the thresholds to glibc's ceilings for its own adaptive ones and give the kept
    memory back (after `disable_cpu_memory_reuse`)."""
    if _state["raised"]:
        libc = _libc()
        libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_MAX)
        libc.malloc_trim(0)
        _state["raised"] = False

