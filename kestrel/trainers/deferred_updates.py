"""evaluate() with the loss and metric updates applied once per chunk of batches.

Kestrel's built-in losses (averaged over the batch) and metrics are additive over samples:
updating them on several batches joined together leaves the same state as updating them on
each batch in turn (the loss trackers weight a batch by its size). On small models most of an
evaluation step is the dispatch cost of those updates, so when every loss and metric of a
model is built in, an eager `evaluate` runs only the forward pass per batch, keeps the
predictions, and applies the updates per chunk. Reading the batch logs (a callback, the
progress bar) flushes the chunk first, so every value anyone sees is exact.
"""
from __future__ import annotations

import math

import torch

from kestrel.layers import training_mode
from kestrel.layers.node import flatten, map_structure
from kestrel.losses.losses import LossFunctionWrapper
from kestrel.metrics.reduction_metrics import MeanMetricWrapper

CHUNK_BYTES = 16 * 2**20  # predictions, targets and weights kept before a flush
_AVERAGING = ("sum_over_batch_size", "mean")


def can_defer(model, callbacks) -> bool:
    """Whether `model`'s evaluation may defer its updates under these callbacks."""
    from kestrel.callbacks import ProgbarLogger
    from kestrel.trainers.trainer import Trainer

    if any(getattr(type(model), name) is not getattr(Trainer, name)
           for name in ("compute_loss", "compute_metrics", "_update_metrics")) or \
            model._steps.custom_test:
        return False
    if model._steps.jit:  # a compiled test step fuses the loss and metric ops already
        return False
    # Only the progress bar may look during the pass: it reads the flushing batch logs,
    # while a user callback could read metric objects directly.
    if not all(isinstance(cb, ProgbarLogger) for cb in callbacks._test_batch):
        return False
    losses = [loss for loss in model.compiled_loss.losses if loss is not None]
    return all(_additive_loss(loss) for loss in losses)


def metrics_are_additive(metrics) -> bool:
    """Whether every metric is a Kestrel built-in (and wrapped functions are built in too)."""
    return all(_builtin(type(m)) and (not isinstance(m, MeanMetricWrapper) or _builtin(m._fn))
               for m in metrics)


def _additive_loss(loss) -> bool:
    return type(loss).__module__ == "kestrel.losses.losses" and \
        isinstance(loss, LossFunctionWrapper) and _builtin(loss.fn) and \
        loss.reduction in _AVERAGING


def _builtin(obj) -> bool:
    module = getattr(obj, "__module__", None) or ""  # None for a function made by `exec`
    return module.startswith(("kestrel.losses.", "kestrel.metrics."))


class DeferredUpdates:
    """Runs evaluation batches forward-only and updates the loss and metrics per chunk.

    Args:
        model: a compiled model for which `can_defer` holds.
    """

    def __init__(self, model):
        self.model = model
        self._steps = model._steps
        self._pending: list[tuple] = []  # (y, y_pred, sample_weight, batch size, penalty)
        self._bytes = 0
        self._signature = None
        self._row_bytes = 0  # bytes per sample of the pending leaves
        self._additive = None  # whether the metrics allow deferring; known once they exist

    def test(self, batch) -> None:
        """Evaluate one batch `(x, y, sample_weight)`: forward now, updates at the next flush."""
        x, y, sample_weight = batch
        model = self.model
        if self._additive is None and model.compiled_metrics.built:
            self._additive = metrics_are_additive(model._flat_metrics())
        if not self._additive:  # also the first batch, which builds the metrics
            self._steps.test(batch)
            return
        with torch.no_grad(), training_mode.mode(model, False):
            y_pred = model(x)  # no compiled step here: `can_defer` excludes jit
            outputs = [y_pred] if type(y_pred) is torch.Tensor else flatten(y_pred)
            if any(getattr(t, "_keras_mask", None) is not None for t in outputs):
                self.flush()  # masked outputs are updated batch by batch
                self._steps.loss_and_metrics(x, y, y_pred, sample_weight, training=False)
                return
            penalty = model._penalty()
        leaves = outputs + [t for t in flatten((y, sample_weight)) if t is not None]
        signature = [(t.shape[1:], t.dtype) for t in leaves]
        if signature != self._signature:  # batches of other shapes are not joined
            self.flush()
            self._signature = signature
            self._row_bytes = sum(math.prod(shape) * dtype.itemsize for shape, dtype in signature)
        size = (x if type(x) is torch.Tensor else flatten(x)[0]).shape[0]
        self._pending.append((y, y_pred, sample_weight, size, penalty))
        self._bytes += size * self._row_bytes
        if self._bytes >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        """Apply the pending batches' loss and metric updates."""
        if not self._pending:
            return
        pending, self._pending, self._bytes = self._pending, [], 0
        y, y_pred, sample_weight = (_concat([entry[part] for entry in pending])
                                    for part in range(3))
        sizes = [entry[3] for entry in pending]
        total = sum(sizes)
        model = self.model
        with torch.no_grad():
            penalties = [(p, n) for *_, n, p in pending if p is not None]
            # each batch's penalty counts once per sample, as batch by batch
            penalty = sum(p * n for p, n in penalties) / total if penalties else None
            loss = model._total_loss(model._compiled_loss(y, y_pred, sample_weight), penalty)
            model._update_metrics(loss, y, y_pred, sample_weight, total)


def _concat(structures: list):
    """One structure whose leaves join the leaves of `structures` along the batch axis."""
    first = structures[0]
    if first is None:
        return None
    if len(structures) == 1:
        return first
    leaves = [flatten(s) for s in structures]
    joined = iter([None if column[0] is None else torch.cat(column)
                   for column in zip(*leaves)])
    return map_structure(lambda _: next(joined), first)
