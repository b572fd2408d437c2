"""Data-parallel training step time: Kestrel's DataParallel fit against torch's DDP hand loop.

Two processes (gloo, CPU, one thread each) train the same model on the same global batches:
Kestrel through `model.fit` under `DataParallel` (gradients all-reduced in buckets while
backward runs), torch through a hand-written loop around `DistributedDataParallel`, with
torch's default Adam and with `Adam(fused=True)` (the one-kernel update Kestrel's Adam runs,
which isolates the cost of the data-parallel machinery). Workloads:
an MLP 784-1024-1024-10 (1.9M parameters) and a small CNN on 32x32x3 images (conv 32, conv 64,
dense 256: 1.1M parameters). Each timed call is one epoch of `--steps` steps after an untimed
warm-up; the variants take turns, and the table shows the median ms/step over `--repeats`.
Run: `python benchmarks/distributed.py [--steps 30] [--repeats 5] [--batch 64]`.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn


def _mlp_kestrel(K):
    return K.Sequential([K.Input(shape=(784,)), K.layers.Dense(1024, activation="relu"),
                         K.layers.Dense(1024, activation="relu"), K.layers.Dense(10)])


def _mlp_torch():
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 10))


def _cnn_kestrel(K):
    L = K.layers
    return K.Sequential([K.Input(shape=(32, 32, 3)),
                         L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                         L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                         L.Flatten(), L.Dense(256, activation="relu"), L.Dense(10)])


def _cnn_torch():
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10))


WORKLOADS = {"mlp": ((784,), _mlp_kestrel, _mlp_torch), "cnn": ((32, 32, 3), _cnn_kestrel,
                                                                 _cnn_torch)}


class KestrelFit:
    """`model.fit` for one epoch under DataParallel (the global batch is split by fit)."""

    def __init__(self, name, x, y, batch):
        import kestrel as K

        K.utils.set_random_seed(0)
        self.model = WORKLOADS[name][1](K)
        self.model.compile(K.optimizers.Adam(1e-3),
                           K.losses.SparseCategoricalCrossentropy(from_logits=True))
        self.x, self.y, self.batch = x, y, batch

    def run(self):
        self.model.fit(self.x, self.y, batch_size=self.batch, epochs=1, shuffle=False, verbose=0)


class TorchDDP:
    """The idiomatic loop: this rank's half of each global batch through DDP, default Adam."""

    fused = False

    def __init__(self, name, x, y, batch):
        torch.manual_seed(0)
        rank, world = dist.get_rank(), dist.get_world_size()
        x = torch.from_numpy(x)
        x = x.permute(0, 3, 1, 2).contiguous() if x.ndim == 4 else x  # NCHW for torch convs
        local = batch // world
        self.batches = [(x[s + rank * local:s + (rank + 1) * local],
                         torch.from_numpy(y[s + rank * local:s + (rank + 1) * local]))
                        for s in range(0, len(x), batch)]
        self.model = nn.parallel.DistributedDataParallel(WORKLOADS[name][2]())
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3,
                                          fused=self.fused or None)

    def run(self):
        self.model.train()
        for xb, yb in self.batches:
            self.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(self.model(xb), yb).backward()
            self.optimizer.step()


class TorchDDPFused(TorchDDP):
    """The same loop with `Adam(fused=True)`, the one-kernel update Kestrel's Adam also runs."""

    fused = True


VARIANTS = {"Kestrel DataParallel": KestrelFit, "torch DDP loop": TorchDDP,
            "DDP, fused Adam": TorchDDPFused}


def _worker(rank: int, port: int, args, queue) -> None:
    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    import kestrel as K

    K.distribution.initialize()
    K.distribution.set_distribution(K.distribution.DataParallel())
    results = {}
    for name in args.workloads.split(","):
        rng = np.random.default_rng(0)
        n = args.steps * args.batch
        x = rng.standard_normal((n,) + WORKLOADS[name][0]).astype("float32")
        y = rng.integers(0, 10, n)
        runners = {v: cls(name, x, y, args.batch) for v, cls in VARIANTS.items()}
        times = {v: [] for v in runners}
        for runner in runners.values():
            runner.run()  # warm-up: builds, optimizer state, DDP buckets
        for round_ in range(args.repeats):
            shift = round_ % len(runners)
            order = list(runners)[shift:] + list(runners)[:shift]
            for variant in order:
                dist.barrier()
                start = time.perf_counter()
                runners[variant].run()
                dist.barrier()
                times[variant].append((time.perf_counter() - start) / args.steps * 1e3)
        results[name] = {v: statistics.median(t) for v, t in times.items()}
    if rank == 0:
        queue.put(results)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per variant")
    parser.add_argument("--batch", type=int, default=64, help="global batch size (even)")
    parser.add_argument("--workloads", default="mlp,cnn", help="comma-separated: mlp, cnn")
    args = parser.parse_args(argv)
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.spawn(_worker, args=(_free_port(), args, queue), nprocs=2, join=True)
    results = queue.get()
    print(f"2 processes (gloo, CPU, 1 thread each), global batch {args.batch}, median of "
          f"{args.repeats} epochs of {args.steps} steps; ms/step (ratio: Kestrel / that loop)")
    kestrel, *loops = VARIANTS
    print(f"{'workload':<10}{kestrel:>22}" + "".join(f"{v:>26}" for v in loops))
    for name, row in results.items():
        print(f"{name:<10}{row[kestrel]:>22.2f}" + "".join(
            f"{row[v]:>17.2f} ({row[kestrel] / row[v]:.2f}x)" for v in loops))
    return results


if __name__ == "__main__":
    main()
