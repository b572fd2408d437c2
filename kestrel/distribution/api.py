"""initialize / set_distribution / DataParallel: the public distribution API."""
from __future__ import annotations

import atexit
import datetime
import os

import torch
import torch.distributed as dist

_DISTRIBUTION = None
DEFAULT_TIMEOUT_S = 60


def initialize(job_addresses=None, num_processes=None, process_id=None, timeout_s=None) -> None:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA).

    Without torchrun's environment (`WORLD_SIZE`, `RANK`, ...) this is a single-process no-op.
    A rank that dies makes the others fail after `timeout_s` (default 60 s) instead of hanging.
    """
    if dist.is_available() and dist.is_initialized():
        return
    world = int(num_processes or os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return
    rank = int(process_id if process_id is not None else os.environ.get("RANK", 0))
    if job_addresses:
        host, _, port = job_addresses.split(",")[0].partition(":")
        os.environ.setdefault("MASTER_ADDR", host)
        os.environ.setdefault("MASTER_PORT", port or "29500")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    timeout = datetime.timedelta(seconds=timeout_s or float(
        os.environ.get("KESTREL_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    atexit.register(_shutdown)


def _shutdown() -> None:
    """Leave the process group cleanly at exit (gloo aborts the process otherwise)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def list_devices(device_type: str | None = None) -> list[str]:
    """Devices visible to this process, as `"cpu:0"` / `"cuda:N"` strings."""
    if device_type in (None, "gpu", "cuda") and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu:0"]


def get_device_count(device_type: str | None = None) -> int:
    """Devices taking part in training: one per process under torchrun, else this machine's.

    Example:
        >>> get_device_count() >= 1
        True
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return len(list_devices(device_type))


class DataParallel:
    """Replicate the model on every process; each one trains on its share of the global batch.

    Gradients are averaged over the global batch by all-reduces overlapped with backward, so
    training equals single-process training with the same global batch size. Batches are
    always sharded by `fit` (`auto_shard_dataset` is accepted for Keras compatibility).
    """

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True):
        if device_mesh is not None:
            raise NotImplementedError("DataParallel(device_mesh=...) is not supported yet; "
                                      "pass devices or nothing.")
        self.devices = devices or list_devices()
        self.auto_shard_dataset = auto_shard_dataset
        self.batch_dim_name = "batch"

    @property
    def world_size(self) -> int:
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    @property
    def rank(self) -> int:
        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def set_distribution(value) -> None:
    """Make `value` (DataParallel, ModelParallel, FullyShardedDataParallel or None) the
    distribution fit/evaluate/predict use."""
    global _DISTRIBUTION
    from kestrel.distribution.model_parallel import ModelParallel

    if value is not None and not isinstance(value, (DataParallel, ModelParallel)):
        raise ValueError(f"set_distribution expects a DataParallel or ModelParallel instance "
                         f"or None. Received: value of type {type(value).__name__}")
    _DISTRIBUTION = value


def distribution():
    """The current distribution, or None."""
    return _DISTRIBUTION


def active():
    """The distribution when it spans more than one process, else None."""
    if _DISTRIBUTION is not None and _DISTRIBUTION.world_size > 1:
        return _DISTRIBUTION
    return None
