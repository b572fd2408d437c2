"""Run a worker in several gloo processes for the distributed tests."""
import socket

import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on localhost that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(worker, out_dir, *extra) -> None:
    """`worker(rank, port, out_dir, *extra)` in two processes; returns when both finished."""
    run_ranks(2, worker, out_dir, *extra)


def run_ranks(nprocs: int, worker, out_dir, *extra) -> None:
    """`worker(rank, port, out_dir, *extra)` in `nprocs` processes."""
    mp.spawn(worker, args=(free_port(), str(out_dir), *extra), nprocs=nprocs, join=True)
