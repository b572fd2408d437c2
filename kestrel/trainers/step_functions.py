"""The per-batch train / test / predict steps, eager or through torch.compile."""
from __future__ import annotations

import warnings

import torch

from kestrel.layers.layer import Layer
from kestrel.layers.node import flatten


class StepFunctions:
    """Runs one batch; with `jit=True` the forward+loss is compiled, falling back to eager."""

    def __init__(self, model, jit: bool = False):
        self.model = model
        self.jit = jit
        self._constrained = None
        self._compiled_forward = None

    def _forward_loss(self, x, y, sample_weight):
        y_pred = self.model(x)
        return self.model.compute_loss(x, y, y_pred, sample_weight), y_pred

    def _run_forward(self, x, y, sample_weight):
        if not self.jit:
            return self._forward_loss(x, y, sample_weight)
        if self._compiled_forward is None:
            self._compiled_forward = torch.compile(self._forward_loss, dynamic=False)
        try:
            return self._compiled_forward(x, y, sample_weight)
        except Exception as error:  # noqa: BLE001 - any compiler failure falls back to eager
            warnings.warn(f"jit_compile: torch.compile failed ({type(error).__name__}: "
                          f"{error}); continuing in eager mode.", stacklevel=4)
            self.jit = False
            return self._forward_loss(x, y, sample_weight)

    def train(self, batch) -> None:
        model = self.model
        x, y, sample_weight = batch
        if type(model).train_step is not _base_train_step():
            loss, y_pred = model.train_step(batch)
        else:
            loss, y_pred = self._run_forward(x, y, sample_weight)
            optimizer = model.optimizer
            if not optimizer.built:
                optimizer.build(model.trainable_weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        self._apply_constraints()
        model._update_metrics(loss, y, y_pred, sample_weight, _batch_size(x))

    def test(self, batch) -> None:
        x, y, sample_weight = batch
        with torch.no_grad():
            loss, y_pred = self._run_forward(x, y, sample_weight)
        self.model._update_metrics(loss, y, y_pred, sample_weight, _batch_size(x))

    def _apply_constraints(self) -> None:
        if self._constrained is None:
            self._constrained = [m for m in self.model.modules()
                                 if isinstance(m, Layer) and m._constraints]
        for layer in self._constrained:
            layer._apply_constraints()


def _base_train_step():
    from kestrel.trainers.trainer import Trainer

    return Trainer.train_step


def _batch_size(x) -> int:
    return flatten(x)[0].shape[0]
