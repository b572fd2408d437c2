"""Gradient all-reduce overlapped with backward: buckets are sent while backward still runs.

The trainable parameters are grouped, in reverse order (about the order in which backward
produces their gradients), into flat buckets of about 25 MB. A post-accumulate-grad hook
copies each gradient into its bucket as soon as autograd has finished it; a bucket whose
gradients are all in is scaled by this rank's share of the global batch and all-reduced
asynchronously. Buckets are always launched in index order, so every rank issues the same
collectives in the same order even when its hooks fire in another order or not at all (an
unused parameter, a rank without samples). At the end of backward (an autograd engine
callback) the remaining buckets are launched, all of them are waited for, and every `.grad`
becomes a view of its reduced bucket: the exact gradient of the global-batch mean loss.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist

BUCKET_BYTES = 25 * 2**20


class _Bucket:
    """A flat buffer holding the gradients of `params`, one view each."""

    def __init__(self, params: list):
        numel = sum(p.numel() for p in params)
        self.params = params
        self.buffer = torch.zeros(numel, dtype=params[0].dtype, device=params[0].device)
        self.views, offset = [], 0
        for p in params:
            self.views.append(self.buffer[offset:offset + p.numel()].view(p.shape))
            offset += p.numel()
        self.ready = [False] * len(params)
        self.pending = len(params)
        self.work = None

    def fill(self, index: int) -> None:
        """Copy parameter `index`'s gradient (zeros when it has none) into the buffer."""
        grad, view = self.params[index].grad, self.views[index]
        if grad is None:
            view.zero_()
        elif grad.data_ptr() != view.data_ptr():
            view.copy_(grad)
        if not self.ready[index]:
            self.ready[index] = True
            self.pending -= 1


def _group(params: list, bucket_bytes: int) -> list[list]:
    """Consecutive runs of `params` of one dtype and device, each about `bucket_bytes`."""
    groups, current, size = [], [], 0
    for p in params:
        if current and (size >= bucket_bytes or p.dtype != current[0].dtype or
                        p.device != current[0].device):
            groups.append(current)
            current, size = [], 0
        current.append(p)
        size += p.numel() * p.element_size()
    return groups + ([current] if current else [])


class GradientBuckets:
    """Averages the `.grad` of `params` over all ranks, overlapping the sends with backward.

    Args:
        params: the trainable parameters (duplicates are ignored).
        scale: returns this rank's weight for the current step (its share of the global batch;
            the weights of all ranks sum to 1).
        bucket_bytes: target size of one bucket (default `BUCKET_BYTES`, 25 MB).

    Example:
        buckets = GradientBuckets(model.trainable_weights, lambda: 0.5)
        loss.backward()        # gradients are averaged when backward returns
        buckets.sync()         # before the optimizer step: a no-op after a hooked backward
    """

    def __init__(self, params, scale: Callable[[], float], bucket_bytes: int | None = None):
        unique = list({id(p): p for p in params if p.requires_grad}.values())
        self._scale = scale
        self._buckets = [_Bucket(group) for group in
                         _group(unique[::-1], bucket_bytes or BUCKET_BYTES)]
        self._next = 0  # the next bucket to launch
        self._in_backward = False
        self._synced = False
        self._handles = [p.register_post_accumulate_grad_hook(self._hook(bucket, index))
                         for bucket in self._buckets for index, p in enumerate(bucket.params)]

    def _hook(self, bucket: _Bucket, index: int):
        def on_grad(_param) -> None:
            if not self._in_backward:
                self._in_backward = True
                torch.autograd.Variable._execution_engine.queue_callback(self._end_of_backward)
            bucket.fill(index)
            self._launch(everything=False)

        return on_grad

    def _launch(self, everything: bool) -> None:
        """Launch the next buckets in order: those complete, or all of them."""
        while self._next < len(self._buckets):
            bucket = self._buckets[self._next]
            if bucket.pending and not everything:
                return
            for index, done in enumerate(bucket.ready):
                if not done:
                    bucket.fill(index)
            bucket.buffer.mul_(self._scale())
            bucket.work = dist.all_reduce(bucket.buffer, async_op=True)
            self._next += 1

    def _end_of_backward(self) -> None:
        self._in_backward = False
        self.reduce()

    def reduce(self) -> None:
        """Average the `.grad`s now (missing ones count as zeros): launch what is left, wait
        for every bucket, point each `.grad` at its result. Every rank must call it as often."""
        self._launch(everything=True)
        for bucket in self._buckets:
            bucket.work.wait()
            bucket.work = None
            for p, view in zip(bucket.params, bucket.views):
                p.grad = view
            bucket.ready = [False] * len(bucket.params)
            bucket.pending = len(bucket.params)
        self._next = 0
        self._synced = True

    def sync(self) -> None:
        """Make sure the current `.grad`s are averaged: after a hooked backward they already
        are; otherwise (a step without a hooked backward) they are all-reduced now."""
        if not self._synced:
            self.reduce()
        self._synced = False

    def remove(self) -> None:
        """Remove the hooks; the parameters keep their last gradients."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
