"""Run a worker in two gloo processes for the distributed tests."""
import socket

import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on localhost that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(worker, out_dir) -> None:
    """`worker(rank, port, out_dir)` in two processes; returns when both have finished."""
    mp.spawn(worker, args=(free_port(), str(out_dir)), nprocs=2, join=True)
