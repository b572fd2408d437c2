"""What fit/evaluate/predict do differently under DataParallel: shard, sync, reduce, gather.

Every global batch is split into contiguous, near-equal pieces, one per rank (`np.array_split`
sizes). Each rank weights its gradients by `local_n / global_n` and all-reduces them in buckets
while backward runs (`grad_buckets.py`): the sum is exactly the gradient of the global-batch
mean loss. A rank without samples in a batch contributes zeros to the same all-reduces.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from kestrel.distribution.grad_buckets import GradientBuckets
from kestrel.layers.node import flatten, map_structure
from kestrel.trainers import data_adapter


def piece(global_n: int, rank: int, world: int) -> tuple[int, int]:
    """(start, stop) of `rank`'s share of a batch of `global_n` samples."""
    base, extra = divmod(global_n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class DataParallelSession:
    """Wraps one model's fit/evaluate/predict in data-parallel training across ranks.

    Constructed under another distribution (ModelParallel), it is that one's session.
    """

    def __new__(cls, model):
        from kestrel.distribution import api

        current = api.active()
        if cls is DataParallelSession and hasattr(current, "session"):
            return current.session(model)
        return super().__new__(cls)

    def __init__(self, model):
        self.model = model
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.scale = 1.0
        self._restore = []
        self._buckets = None

    # ------------------------------------------------------------------ data
    def shard(self, adapter, training: bool):
        """Local batches of `adapter`; array data keeps identical global batches on all ranks."""
        if isinstance(adapter, data_adapter.ArrayAdapter):
            return self._shard_arrays(adapter)
        if training and not adapter.steps:
            raise ValueError(
                "Distributed fit() on a generator or dataset needs steps_per_epoch, so that "
                "every rank runs the same number of steps.")
        return self._shard_stream(adapter)

    def _shard_arrays(self, adapter):
        for batch in global_batches(adapter):
            n = flatten(batch[0])[0].shape[0]
            start, stop = piece(n, self.rank, self.world)
            self.scale = (stop - start) / n
            yield map_structure(lambda t: None if t is None else
                                data_adapter.to_device(t[start:stop], adapter.batch_device),
                                batch)

    def _shard_stream(self, adapter):
        for index, batch in enumerate(adapter):
            if index % self.world == self.rank:
                self.scale = 1.0 / self.world
                yield batch

    # ------------------------------------------------------------------ training
    def start(self, first_x) -> None:
        """Build the model if needed, copy rank 0's weights everywhere, hook gradient sync."""
        model = self.model
        if not model.built:
            with torch.no_grad():
                model(first_x)
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)
        self._buckets = GradientBuckets(model.trainable_weights, lambda: self.scale)
        optimizer = model.optimizer
        original_step = optimizer.step

        def synced_step(*args, **kwargs):
            self._buckets.sync()  # a no-op after a hooked backward: its end averaged them
            return original_step(*args, **kwargs)

        optimizer.step = synced_step  # also keeps the compiled whole step (no .grad) off
        original_train = model._steps.train

        def train(batch):
            if flatten(batch[0])[0].shape[0] == 0:  # this rank has no sample in this batch
                if not optimizer.built:
                    optimizer.build(model.trainable_weights)
                optimizer.zero_grad()
                self._buckets.reduce()  # zeros, in the all-reduces the others' backward sends
                optimizer.step()
                return None
            return original_train(batch)

        model._steps.train = train
        self._restore = [(optimizer, "step"), (model._steps, "train")]

    def finish(self) -> None:
        if self._buckets is not None:
            self._buckets.remove()
            self._buckets = None
        for owner, attr in self._restore:
            owner.__dict__.pop(attr, None)
        self._restore = []

    # ------------------------------------------------------------------ results
    def reduce_metrics(self, metrics) -> None:
        """Sum every metric's state over the ranks, so results are global and identical."""
        for metric in metrics:
            for variable in metric.variables:
                dist.all_reduce(variable)

    def gather(self, local_batches: list):
        """Every rank's predictions, reassembled in the original sample order."""
        everyone = [None] * self.world
        dist.all_gather_object(everyone, local_batches)
        ordered = []
        for step in range(max(len(b) for b in everyone)):
            for rank_batches in everyone:
                if step < len(rank_batches) and rank_batches[step] is not None:
                    ordered.append(rank_batches[step])
        return ordered


def global_batches(adapter):
    """The global batches of an ArrayAdapter, in the same (shuffled) order on every rank."""
    perm = None
    if adapter.shuffle:
        seed = torch.randint(0, 2**62, (1,))
        dist.broadcast(seed, src=0)  # the same permutation on every rank
        generator = torch.Generator().manual_seed(int(seed))
        perm = torch.randperm(adapter.n, generator=generator).to(adapter.x_device())
    return data_adapter.batches((adapter.x, adapter.y, adapter.sample_weight),
                                adapter.num_batches, adapter.batch_size, perm)
