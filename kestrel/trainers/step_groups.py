"""`steps_per_execution`: batches run in groups of k between two rounds of callbacks.

As in Keras 3, callbacks see one batch-begin and one batch-end per group: the begin hook gets
the index of the group's first batch, the end hook `begin + k - 1`, also for a last group cut
short when the data runs out. Every batch is trained on, so the weights equal those of k=1;
with `steps_per_epoch` not a multiple of k the last group is cut at `steps_per_epoch` (Keras
on JAX runs it whole, training a few batches more per epoch than asked).

Within a group nothing outside the step runs, so the host reads nothing back (no progress bar,
no callback) and, with `jit_compile=True`, the compiled step's guards are checked on the
group's first batch only: the later batches of the same shapes run the graph it selected,
with `torch.compiler.set_stance(skip_guard_eval_unsafe=True)`. Not after a first batch that ran
eagerly or compiled something (a cold graph, or Python state that changes between steps).
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Callable, Iterable, Iterator

import torch

from kestrel.layers.node import flatten


def check_steps_per_execution(value) -> int:
    """`value` as a positive int, or a ValueError naming `compile()`'s argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("compile(): steps_per_execution must be a positive integer. "
                         f"Received: steps_per_execution={value!r:.40}")
    return value


def groups(batches: Iterable, k: int, start: int = 0) -> Iterator[tuple[int, int, list]]:
    """`(begin, end, batches)` for consecutive groups of up to `k` batches, Keras' indices.

    Example:
        >>> [(b, e, g) for b, e, g in groups(range(5), 2)]
        [(0, 1, [0, 1]), (2, 3, [2, 3]), (4, 5, [4])]
    """
    iterator = iter(batches)
    begin = start
    while True:
        group = list(itertools.islice(iterator, k))
        if not group:
            return
        yield begin, begin + k - 1, group
        begin += k


def _signature(batch) -> tuple:
    return tuple(None if t is None else (t.shape, t.dtype, t.device, t.stride())
                 if isinstance(t, torch.Tensor) else type(t) for t in flatten(batch))


def run_group(step: Callable, batches: list, steps) -> list:
    """`[step(batch) for batch in batches]`, with the compiled guards checked once (see above).

    Args:
        step: one train, test or predict step on a batch.
        batches: the group's batches.
        steps: the model's `StepFunctions` (None before `compile()`).
    """
    if len(batches) < 2 or steps is None or not steps.jit or \
            not hasattr(torch.compiler, "set_stance"):
        return [step(batch) for batch in batches]
    from torch._dynamo.utils import counters

    compiled_before = counters["frames"]["total"]
    steps.warm = False  # a step that looks up no compiled graph (a user's step) leaves it so
    results = [step(batches[0])]
    # a compiled graph ran with every guard and compiled nothing: it is warm, and the Python
    # state it reads did not change since the last step (compiling under the skipping stance
    # is an error, so a cold graph or a changing state keeps every guard)
    if not steps.warm or counters["frames"]["total"] != compiled_before:
        return results + [step(batch) for batch in batches[1:]]
    signature = _signature(batches[0])
    with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
        for batch in batches[1:]:
            if _signature(batch) != signature:  # another shape: every guard again
                with torch.compiler.set_stance("default"):
                    results.append(step(batch))
            else:
                results.append(step(batch))
    return results
