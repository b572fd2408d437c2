"""The per-batch train / test / predict steps, eager or through `torch.compile`.

A train step is forward, loss and metric updates, then `backward()`, the optimizer step and
weight constraints. With `jit=True` and torch >= 2.13, the whole step (backward and the
optimizer update included) is traced into one graph by `torch.compile`, with the optimizer's
step-dependent scalars computed on the host; where that is not allowed (loss scaling, a hook
on `optimizer.step` as in data-parallel training, optimizers without host scalars) the
forward, loss and metrics are compiled and backward and the fused optimizer kernel run eagerly.
Evaluation compiles forward, loss and metrics (`test` mode), prediction the forward pass.

A model whose class overrides `train_step` or `test_step` gets them called instead, eagerly,
with the batch packed as Keras packs it (`x`, `(x, y)` or `(x, y, sample_weight)`); the dict
they return becomes the batch logs. Models that do not override them keep the paths above.

Compilation rules, per mode:
- models with convolution or recurrent layers stay eager on CPU, with one warning: with
  torch 2.13, inductor's CPU code around convolutions (ReLU masks saved as bools, the max-pool
  backward) makes a conv net 1.3-3x slower than eager, and the fused recurrent kernels must
  run outside the graph, where the graph breaks cost more than compiling saves (measured in
  benchmarks/README.md);
- the first call runs eagerly: it builds lazily created layers, metrics and optimizer state;
- a graph is compiled for each new, larger batch size; smaller batches (the ragged last batch
  of an epoch) run eagerly instead of triggering a recompile;
- if compiling fails, the step warns once and stays eager from then on.
"""
from __future__ import annotations

import inspect
import types
import warnings

import torch

from kestrel.layers import graph_closures, training_mode
from kestrel.layers.layer import Layer
from kestrel.layers.node import flatten
from kestrel.utils.data_utils import pack_x_y_sample_weight


class StepFunctions:
    """Runs one batch of `fit`, `evaluate` or `predict` for `model`.

    Args:
        model: a compiled Kestrel model.
        jit: whether to run the steps through `torch.compile`.
    """

    def __init__(self, model, jit: bool = False):
        from kestrel.trainers.trainer import Trainer

        self.model = model
        self.jit = jit
        # a Keras 2 loss function reading graph tensors (the Keras blog's `vae_loss`)
        self._loss_reads_graph = any(graph_closures.references_graph_tensors(fn)
                                     for fn in flatten(getattr(model, "loss", None)))
        cls = type(model)
        # a user's train_step / test_step (on the class, or set on the model as nl_image_search
        # sets `self.train_step = self.train_step_torch`) replaces the built-in step
        self.custom_train = cls.train_step is not Trainer.train_step or \
            "train_step" in vars(model)
        self.custom_test = cls.test_step is not Trainer.test_step or "test_step" in vars(model)
        # the mode fit leaves the model in: a user's train_step picks its own, and a `call`
        # without `training` runs its layers in inference (see training_mode.step)
        self.trains_layers = not self.custom_train and model._call_accepts_training
        self._test_loss_kwargs = {"training": False} if \
            "training" in inspect.signature(cls.compute_loss).parameters else {}
        self._compiled: dict = {}
        self._checked_device = False
        self._whole = None  # whether the whole train step may be compiled (known once built)
        self._largest_batch: dict = {}
        self._constrained = None
        self._optimizer_checked = False  # whether the optimizer tracks all trainable weights
        self.warm = False  # whether the last step ran a compiled graph (maybe compiling it)

    # ------------------------------------------------------------------ the steps
    def train(self, batch):
        """One optimization step on `(x, y, sample_weight)`, with the metric updates; returns
        what a user's `train_step` returned (it gets the batch packed as Keras packs it), or
        None after the built-in step."""
        x, y, sample_weight = batch
        logs = None
        if self.custom_train:
            logs = self.model.train_step(pack_x_y_sample_weight(x, y, sample_weight))
            _mark_built_by_sublayers(self.model)
        else:
            with training_mode.step(self.model, True):
                if not self._train_whole(x, y, sample_weight):
                    self._train_in_parts(x, y, sample_weight)
        self._apply_constraints()
        return logs

    def _train_in_parts(self, x, y, sample_weight, compile_forward: bool = True) -> None:
        """Forward, loss and metrics (compiled with jit), then an eager backward and update."""
        model = self.model
        loss = self._run("train", self._forward_metrics, x, y, sample_weight) \
            if compile_forward else self._forward_metrics(x, y, sample_weight)
        optimizer = model.optimizer
        if not optimizer.built:
            if not model.trainable_weights:  # as Keras: nothing to train, a warning
                warnings.warn("The model does not have any trainable weights.", stacklevel=2)
                return
            optimizer.build(model.trainable_weights)
        elif not self._optimizer_checked:  # an optimizer shared with another model (Keras 2)
            optimizer._include(model.trainable_weights)
        self._optimizer_checked = True
        optimizer.zero_grad()
        optimizer.scale_loss(loss).backward()  # a LossScaleOptimizer unscales in step()
        optimizer.step()

    def _train_whole(self, x, y, sample_weight) -> bool:
        """The whole step as one compiled graph (eager for a first or ragged batch); False
        where the whole step is not allowed, and the caller trains in parts."""
        if not self._whole_step_allowed():
            return False
        compiled = self._compiled_for("train_whole", self._whole_step, x)
        if compiled is None:  # the first call, a ragged batch: eager
            self._train_in_parts(x, y, sample_weight, compile_forward=False)
            return True
        optimizer = self.model.optimizer
        config = torch._dynamo.config
        optimizer.zero_grad()  # gradients stay inside the graph: no stale `.grad` is left
        optimizer._prepare_host_scalars()
        previous, config.trace_autograd_ops = config.trace_autograd_ops, True
        try:
            compiled(x, y, sample_weight)
        except Exception as error:  # noqa: BLE001 - retried eagerly; a real error raises there
            optimizer._host_scalars = False
            self._train_in_parts(x, y, sample_weight, compile_forward=False)
            self._give_up(error)
            return True
        finally:
            config.trace_autograd_ops = previous
        optimizer._finish_host_scalars()
        return True

    def _whole_step_allowed(self) -> bool:
        """Whether a compiled step may hold backward and the optimizer update too: an update
        reading host-prepared scalars (all optimizers but Adamax and Nadam), no loss scaling,
        and no hook on `optimizer.step` (data-parallel training all-reduces gradients there)."""
        if not self.jit:
            return False
        optimizer = self.model.optimizer
        if self._whole is None:
            if not optimizer.built:
                return False
            self._whole = bool(optimizer.supports_host_scalars) and \
                hasattr(torch._dynamo.config, "trace_autograd_ops")  # torch >= 2.13
        return self._whole and "step" not in vars(optimizer)

    def _whole_step(self, x, y, sample_weight):
        """Forward, loss, metrics, backward and the optimizer update (traced as one graph)."""
        optimizer = self.model.optimizer
        loss = self._forward_metrics(x, y, sample_weight)
        grads = torch.autograd.grad(optimizer.scale_loss(loss), optimizer._params,
                                    allow_unused=True)
        indices = [i for i, g in enumerate(grads) if g is not None]
        with torch.no_grad():
            optimizer._apply(None if len(indices) == len(grads) else indices,
                             [grads[i] for i in indices])
        return loss.detach()

    def test(self, batch):
        """Loss and metric updates on `(x, y, sample_weight)`, without gradients; returns what
        a user's `test_step` returned, or None after the built-in step."""
        if self.custom_test:
            with torch.no_grad():
                logs = self.model.test_step(pack_x_y_sample_weight(*batch))
            _mark_built_by_sublayers(self.model)
            return logs
        self.builtin_test(batch)
        return None

    def builtin_test(self, batch) -> None:
        """The built-in test step: loss and metric updates, without gradients."""
        x, y, sample_weight = batch
        with torch.no_grad(), training_mode.step(self.model, False):
            self._run("test", self._test_forward_metrics, x, y, sample_weight)

    def predict(self, x):
        """The model's outputs for the batch `x`, without gradients."""
        with torch.no_grad(), training_mode.step(self.model, False):
            return self._run("predict", self._forward, x)

    # ------------------------------------------------------------------ traced bodies
    def _forward_metrics(self, x, y, sample_weight):
        return self.loss_and_metrics(x, y, self.model(x), sample_weight)

    def _test_forward_metrics(self, x, y, sample_weight):
        return self.loss_and_metrics(x, y, self.model(x), sample_weight, training=False)

    def loss_and_metrics(self, x, y, y_pred, sample_weight, training: bool = True):
        """The loss of predictions `y_pred` for the batch `x`, after updating the metrics."""
        model = self.model
        kwargs = {} if training else self._test_loss_kwargs
        if self._loss_reads_graph:
            with graph_closures.model_run(model, x, training):
                loss = model.compute_loss(x, y, y_pred, sample_weight, **kwargs)
        else:
            loss = model.compute_loss(x, y, y_pred, sample_weight, **kwargs)
        with torch.no_grad():
            model._update_metrics(loss, y, y_pred, sample_weight, _batch_size(x), x)
        return loss

    def _forward(self, x):
        return self.model(x)

    # ------------------------------------------------------------------ compilation
    def _run(self, mode: str, body, *args):
        compiled = self._compiled_for(mode, body, args[0])
        if compiled is None:
            return body(*args)
        try:
            return compiled(*args)
        except Exception as error:  # noqa: BLE001 - retried eagerly; a real error raises there
            result = body(*args)
            self._give_up(error)
            return result

    def _compiled_for(self, mode: str, body, x):
        """`body` compiled for this batch `x`, or None where it runs eagerly (no jit, the
        first call, a smaller batch than before, a model kept eager on CPU); `warm` tells
        which (`step_groups` checks the guards less often after warm steps)."""
        compiled = self._lookup(mode, body, x)
        self.warm = compiled is not None
        return compiled

    def _lookup(self, mode: str, body, x):
        if not self.jit or self._loss_reads_graph or self.model._closes_over_graph:
            return None  # graph tensors are computed eagerly (see graph_closures)
        first = flatten(x)[0]
        if not self._checked_device:  # once: the model's device is known from its first batch
            self._checked_device = True
            kind = _slower_compiled_on_cpu(self.model) if first.device.type == "cpu" else None
            if kind is not None:
                self.jit = False
                warnings.warn(
                    f"jit_compile: model '{self.model.name}' runs eagerly: on CPU, "
                    f"torch.compile makes its {kind} layers slower than eager.", stacklevel=5)
                return None
        size = first.shape[0]
        largest = self._largest_batch.get(mode)
        if largest is None or size < largest:  # first call, or a ragged last batch
            self._largest_batch[mode] = max(size, largest or 0)
            return None
        self._largest_batch[mode] = size
        compiled = self._compiled.get(mode)
        if compiled is None:
            compiled = self._compiled[mode] = torch.compile(_own_code(body), dynamic=False)
        return compiled

    def _give_up(self, error: Exception) -> None:
        """After a failed compiled call that ran fine eagerly: eager from now on, one warning."""
        self.jit = False
        warnings.warn(
            f"jit_compile: torch.compile failed for model '{self.model.name}' "
            f"({type(error).__name__}: {str(error)[:300]}); continuing in eager mode.",
            stacklevel=5)

    def _apply_constraints(self) -> None:
        if self._constrained is None:
            self._constrained = [m for m in self.model.modules()
                                 if isinstance(m, Layer) and m._constraints]
        for layer in self._constrained:
            layer._apply_constraints()


def _slower_compiled_on_cpu(model) -> str | None:
    """The kind of layer ("convolution", "recurrent") that makes a compiled step of `model`
    slower than eager on CPU, or None."""
    from kestrel.layers.convolutional.base_conv import ConvLayerBase
    from kestrel.layers.rnn.cell_base import RNNCellBase

    for module in model.modules():
        if isinstance(module, ConvLayerBase):
            return "convolution"
        if isinstance(module, RNNCellBase):
            return "recurrent"
    return None


def _own_code(method):
    """`method` rebound to a private copy of its code object.

    Dynamo keeps compiled graphs (and its recompile limit) per code object; a private copy
    gives every model and mode its own cache instead of sharing one across all models.
    """
    function = method.__func__
    copy = types.FunctionType(function.__code__.replace(), function.__globals__,
                              function.__name__, function.__defaults__, function.__closure__)
    return types.MethodType(copy, method.__self__)


def _batch_size(x) -> int:
    return flatten(x)[0].shape[0]


def _mark_built_by_sublayers(model) -> None:
    """After a user's step that called only the sublayers (a trainer wrapping a model), the
    model counts as built once they all are, as Keras' fit builds it before the first step."""
    if not model.built and all(m.built for m in model.modules()
                               if isinstance(m, Layer) and m is not model):
        model.built = True
