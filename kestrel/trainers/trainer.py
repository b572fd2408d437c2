"""compile / fit / evaluate / predict: Keras' training API with a lean torch loop underneath.

The per-batch path is forward, loss, backward, optimizer step and on-device metric updates;
nothing reads a value back to the host unless a callback or the progress bar asks for it.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch

from kestrel.layers import training_mode
from kestrel.layers.keras1_args import keras2_arguments
from kestrel.layers.layer import Layer, collect_losses
from kestrel.layers.node import map_structure
from kestrel.ops.core import convert_to_numpy
from kestrel.trainers import cpu_memory, data_adapter
from kestrel.trainers.compile_utils import CompileLoss, CompileMetrics, output_list, \
    prediction_list
from kestrel.trainers.class_weights import ClassWeights
from kestrel.trainers.fit_loop import run_evaluate, run_fit, run_predict
from kestrel.trainers.legacy import GeneratorMethods
from kestrel.trainers.step_functions import StepFunctions
from kestrel.trainers.step_groups import check_steps_per_execution
from kestrel.trainers import trainable_state
from kestrel.utils.data_utils import pack_x_y_sample_weight, unpack_x_y_sample_weight

# tf.keras 2's data-loading arguments of fit / evaluate / predict, accepted and ignored
_KERAS2_LOADING = ("max_queue_size", "workers", "use_multiprocessing")


class Trainer(GeneratorMethods):
    """Mixin giving `Model` its training API (and Keras 2's `*_generator` names)."""

    def __init__(self):
        self.compiled = False
        self.optimizer = None
        self.stop_training = False
        self.history = None
        self._steps = None
        self._all_layers = None
        self.steps_per_execution = 1
        self.run_eagerly = False
        self.jit_compile = False
        self.train_function = self.test_function = self.predict_function = None

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                sample_weight_mode=None, weighted_metrics=None, target_tensors=None,
                run_eagerly=False, steps_per_execution=1, jit_compile=False,
                auto_scale_loss=True, **kwargs):
        """Configure the model for training (optimizer, loss, metrics).

        Under `mixed_float16`, `auto_scale_loss` wraps the optimizer in a
        `LossScaleOptimizer` (dynamic loss scaling), as Keras does.
        """
        from kestrel import optimizers
        from kestrel.metrics import Mean

        if kwargs:
            raise TypeError(f"compile() got unexpected keyword arguments: {sorted(kwargs)}")
        check_steps_per_execution(steps_per_execution)
        if sample_weight_mode not in (None, "temporal") and \
                not isinstance(sample_weight_mode, (dict, list)):
            raise ValueError("sample_weight_mode must be None or 'temporal'. "
                             f"Received: sample_weight_mode={sample_weight_mode!r}")
        self.optimizer = optimizers.get(optimizer)
        if auto_scale_loss and self._computes_in_float16() and \
                not isinstance(self.optimizer, optimizers.LossScaleOptimizer):
            self.optimizer = optimizers.LossScaleOptimizer(self.optimizer,
                                                           name="loss_scale_optimizer")
        names = self._output_names(loss, loss_weights, metrics, weighted_metrics)
        # a recompile without a loss (or without metrics) keeps the earlier ones, as Keras
        if loss is not None or getattr(self, "compiled_loss", None) is None:
            self._compile_loss(loss, loss_weights, names,
                               outputs_known=bool(getattr(self, "output_names", None)))
            self.loss = loss
        if metrics is not None or weighted_metrics is not None or \
                getattr(self, "compiled_metrics", None) is None:
            self.compiled_metrics = CompileMetrics(metrics, weighted_metrics, names,
                                                   self.compiled_loss.losses)
        self._loss_tracker = Mean(name="loss")
        self.compiled_loss.total_tracker = self._loss_tracker
        self._compile_config = {"optimizer": optimizer, "loss": loss, "metrics": metrics,
                                "loss_weights": loss_weights, "weighted_metrics": weighted_metrics,
                                "steps_per_execution": steps_per_execution,
                                "jit_compile": jit_compile, "run_eagerly": run_eagerly}
        self.sample_weight_mode = sample_weight_mode
        self._target_tensors = target_tensors
        self.steps_per_execution = steps_per_execution
        self.jit_compile = bool(jit_compile)
        self.run_eagerly = bool(run_eagerly)
        self._steps = StepFunctions(self, jit=self.jit_compile)
        self.train_function = self.test_function = self.predict_function = None
        self._all_layers = None
        self._compiled_trainable = trainable_state.record(self)
        self.compiled = True

    def _computes_in_float16(self) -> bool:
        return any(isinstance(m, Layer) and m.dtype_policy == "mixed_float16"
                   for m in self.modules())

    def _compile_loss(self, loss, loss_weights, names: list[str], outputs_known=True) -> None:
        self.compiled_loss = CompileLoss(loss, loss_weights, names, outputs_known)
        if isinstance(loss, dict) and isinstance(getattr(self, "_outputs_struct", None), dict):
            self.compiled_loss.order_trackers(list(loss))

    def _output_names(self, *compile_specs) -> list[str]:
        """The names losses, metrics and targets go by. Outputs given as a flat dict whose
        keys are not the output layers' names go by those keys, as Keras 3's compile does:
        in insertion order for an OrderedDict, else sorted. A model whose outputs are not
        known yet (subclassed) goes by the keys of the dicts given to compile, if any."""
        names = list(getattr(self, "output_names", None) or [])
        struct = getattr(self, "_outputs_struct", None)
        if isinstance(struct, Mapping) and len(struct) == len(names) and \
                set(struct) != set(names) and \
                not any(isinstance(v, (Mapping, list, tuple)) for v in struct.values()):
            return _key_order(struct)
        keys = {key for spec in compile_specs if isinstance(spec, Mapping) for key in spec}
        return names or sorted(keys) or ["output"]

    def _name_outputs_by_keys(self, y_pred) -> list[str]:
        """A subclassed model returning a dict whose keys compile could not know (no dicts
        given, or dicts naming some of them): its losses and metrics are made again, one per
        key, on the first batch (Keras 3 builds them there)."""
        names = _key_order(y_pred)
        config = self._compile_config
        self._compile_loss(config["loss"], config["loss_weights"], names)
        self.compiled_loss.total_tracker = self._loss_tracker
        self.compiled_metrics = CompileMetrics(config["metrics"], config["weighted_metrics"],
                                               names, self.compiled_loss.losses)
        return names

    def _assert_compiled(self, what: str) -> None:
        if not self.compiled:
            raise ValueError(
                "You must call `compile()` before using the model. "
                f"Model '{self.name}' has not been compiled, so it cannot be used for {what}.")

    # ------------------------------------------------------------------ metrics
    @property
    def metrics(self) -> list:
        """The loss tracker(s), the compiled metrics and metrics assigned as attributes.

        The compiled metrics are one container named "compile_metrics" (as in Keras), whose
        `update_state(y, y_pred, sample_weight)` builds them and weighs only the weighted ones
        and whose `result()` is a dict of their values.
        """
        tracked = self._attribute_metrics(skip=Trainer)  # a nested model's own are its own
        if not self.compiled:
            return tracked
        compiled = self.compiled_metrics
        listed = [compiled] if compiled.configured else []
        return [self._loss_tracker, *self.compiled_loss.trackers, *listed, *tracked]

    def _flat_metrics(self) -> list:
        """`metrics` with the compiled metrics' container opened once built: the metric
        objects the loops log, reduce and defer one by one."""
        return [inner for m in self.metrics for inner in (
            m.metrics if isinstance(m, CompileMetrics) and m.built else [m])]

    @property
    def metrics_names(self) -> list[str]:
        """The names of `metrics`; once built, the compiled metrics are named one by one, the
        order `evaluate` returns them in (Keras 2's `["loss", "accuracy"]`)."""
        return [m.name for m in self._flat_metrics()]

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset_state()

    def get_metrics_result(self) -> dict:
        """`{name: result}` for every metric in `metrics`; dict results are merged in."""
        logs = {}
        for metric in self.metrics:
            result = metric.result()
            if isinstance(result, dict):
                logs.update(result)
            else:
                logs[metric.name] = result
        return logs

    def _results(self, step_logs=None, nested: bool = False) -> dict:
        """The metric results as Python floats sorted by name, or what a custom step returned
        last (`step_logs`) when its keys differ from the metrics' (as Keras does). A nested
        dict in a step's logs (its `compile_metrics` result) is flattened in its place, or,
        `nested` (fit's epoch logs, which callbacks flatten), kept."""
        logs = self.get_metrics_result()
        if step_logs is not None and (not isinstance(step_logs, Mapping)
                                      or set(step_logs) != set(logs)):
            logs = step_logs if isinstance(step_logs, Mapping) else {"output": step_logs}
        if nested:
            return {key: logs[key] if isinstance(logs[key], Mapping) else _python(logs[key])
                    for key in sorted(logs)}
        return _sorted_flat(logs)

    def _evaluate_order(self) -> list:
        """`metrics` as Keras orders them for evaluate's list: the compiled metrics right
        after the total loss, before the per-output loss trackers."""
        metrics = self.metrics
        compiled = [m for m in metrics if isinstance(m, CompileMetrics)]
        others = [m for m in metrics if not isinstance(m, CompileMetrics)]
        return others[:1] + compiled + others[1:] if compiled else metrics

    def _flatten_results(self, logs: dict):
        """`evaluate`'s list: the metrics' values in Keras' order (`_evaluate_order`), then
        other keys sorted; a single value alone."""
        names = [name for m in self._evaluate_order() for name in (
            m.order_names if isinstance(m, CompileMetrics) and m.built else [m.name])]
        values = [logs[name] for name in names if name in logs]
        values += [logs[key] for key in sorted(logs) if key not in names]
        return values[0] if len(values) == 1 else values

    # ------------------------------------------------------------------ steps
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Total loss: compiled output losses (weighted) + regularization + `add_loss` terms.

        `training` tells an override whether it is called by a train or a test step.
        """
        return self._total_loss(self._compiled_loss(y, y_pred, sample_weight), self._penalty())

    def stateless_compute_loss(self, trainable_variables, non_trainable_variables,
                               metrics_variables, x=None, y=None, y_pred=None,
                               sample_weight=None, training=True):
        """`compute_loss` with the given variable values, as Keras 3 returns it; see
        `kestrel.layers.stateless`."""
        from kestrel.layers.stateless import stateless_compute_loss

        return stateless_compute_loss(self, trainable_variables, non_trainable_variables,
                                      metrics_variables, x=x, y=y, y_pred=y_pred,
                                      sample_weight=sample_weight, training=training)

    def get_state_tree(self, value_format="backend_tensor") -> dict:
        """Every variable's value nested by path (trainable, non-trainable, optimizer and
        metrics variables), as Keras 3's `get_state_tree`."""
        from kestrel.layers.stateless import get_state_tree

        return get_state_tree(self, value_format)

    def set_state_tree(self, state_tree: dict) -> None:
        """Assign the values of a `get_state_tree` tree back to the variables."""
        from kestrel.layers.stateless import set_state_tree

        set_state_tree(self, state_tree)

    def _total_loss(self, compiled, penalty):
        """`compiled + penalty`, either of which may be None, but not both."""
        if compiled is None and penalty is None:
            raise ValueError(
                f"Model '{self.name}' has no loss to optimize: pass `loss=` to compile() or "
                "call add_loss() in the model.")
        if penalty is None:
            return compiled
        return penalty if compiled is None else compiled + penalty

    def _compiled_loss(self, y, y_pred, sample_weight):
        """The weighted sum of the compiled per-output losses, or None when none applies."""
        self.compiled_loss.match_outputs(y_pred)
        names = self.compiled_loss.output_names
        if isinstance(y_pred, Mapping) and len(y_pred) > 1 and set(y_pred) != set(names) and \
                getattr(self, "_outputs_struct", None) is None:
            names = self._name_outputs_by_keys(y_pred)
        y_list = output_list(y, names, "y")
        pred_list = prediction_list(y_pred, names)
        sw_list = output_list(sample_weight, names, "sample_weight")
        return self.compiled_loss(y_list, pred_list, sw_list)

    def _penalty(self):
        """The sum of the last forward pass's `add_loss` terms and weight penalties, or None."""
        if self._all_layers is None:  # walked once per compile, not once per batch
            self._all_layers = [m for m in self.modules() if isinstance(m, Layer)]
        extra = collect_losses(self._all_layers)
        if not extra:
            return None
        return torch.stack([e.sum().to(torch.float32) for e in extra]).sum()

    def train_step(self, data):
        """One optimization step on a batch (`x`, `(x, y)` or `(x, y, sample_weight)`):
        forward, loss, backward, optimizer update and metric updates; returns the results.

        `fit` calls it only when a subclass overrides it (it may call this one through
        `super()`); otherwise `fit` runs the same step on its fast paths.
        """
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        with training_mode.step(self, True):  # as Keras' `self(x, training=True)`
            self._steps._train_in_parts(x, y, sample_weight, compile_forward=False)
        return self.get_metrics_result()

    def test_step(self, data):
        """Loss and metric updates on a batch, in inference mode; returns the results."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        self._steps.builtin_test((x, y, sample_weight))
        return self.get_metrics_result()

    def predict_step(self, data):
        """The model's outputs for a batch (`x`, or a tuple whose first item is `x`)."""
        x, _, _ = unpack_x_y_sample_weight(data)
        if self._steps is not None:
            return self._steps.predict(x)
        with training_mode.step(self, False):
            return self(x)

    def _predict_batch(self, batch):
        """`predict_step` on a batch `(x, y, sample_weight)`, without gradients."""
        if type(self).predict_step is not Trainer.predict_step:
            with torch.no_grad():
                return self.predict_step(pack_x_y_sample_weight(*batch))
        x = batch[0]
        if self._steps is not None:
            return self._steps.predict(x)
        with torch.no_grad(), training_mode.step(self, False):
            return self(x)

    def compute_metrics(self, x, y, y_pred, sample_weight=None) -> dict:
        """Update the compiled metrics with a batch; return every metric's result (Keras 3's
        hook for custom `train_step`s; the loss tracker is updated by the caller)."""
        self._assert_compiled("compute_metrics")
        self._update_compiled_metrics(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def _update_metrics(self, loss, y, y_pred, sample_weight, batch_size, x=None):
        self._loss_tracker.update_state(loss, sample_weight=batch_size)  # runs without grad
        if type(self).compute_metrics is not Trainer.compute_metrics:  # a user's, as Keras
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        else:
            self._update_compiled_metrics(y, y_pred, sample_weight)

    def _update_compiled_metrics(self, y, y_pred, sample_weight) -> None:
        if self.compiled_metrics._specs:
            names = self.compiled_loss.output_names
            y_pred = prediction_list(y_pred, names)
            self.compiled_metrics.update(output_list(y, names, "y"), y_pred,
                                         output_list(sample_weight, names, "sample_weight"))

    # ------------------------------------------------------------------ fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, max_queue_size=10, workers=1,
            use_multiprocessing=False, **keras1):
        """Train for `epochs` epochs; returns a `History`. (`keras1`: Keras 1's `nb_epoch`;
        tf.keras 2's `max_queue_size`, `workers`, `use_multiprocessing` are accepted and
        ignored: batches are drawn in this process.)"""
        if keras1:
            return self.fit(**keras2_arguments("fit", locals()))
        self._assert_compiled("training")
        arguments = {k: v for k, v in locals().items()
                     if k not in ("self", "keras1", *_KERAS2_LOADING)}
        with trainable_state.compiled_trainable_state(self):
            return run_fit(self, **arguments)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """Loss and metrics on the given data, in inference mode."""
        self._assert_compiled("evaluation")
        logs = run_evaluate(self, x, y, batch_size, verbose, sample_weight, steps, callbacks)
        return logs if return_dict else self._flatten_results(logs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None,
                max_queue_size=10, workers=1, use_multiprocessing=False):
        """Outputs for `x` as NumPy arrays, computed batch by batch in inference mode
        (tf.keras 2's `max_queue_size`, `workers`, `use_multiprocessing`: ignored)."""
        return run_predict(self, x, batch_size, verbose, steps, callbacks)

    # ------------------------------------------------------------------ on-batch
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       reset_metrics=True, return_dict=False):
        """Run one training step on exactly this batch."""
        self._assert_compiled("training")
        if reset_metrics:
            self.reset_metrics()
        x, y, sw = self._on_device(x, y, sample_weight)
        if class_weight is not None:
            class_weight = ClassWeights(class_weight)
            class_weight.check(y)
            sw = class_weight(y, sw)
        was_training = self.training
        self.train(self._steps.trains_layers)
        try:
            with trainable_state.compiled_trainable_state(self):
                step_logs = self._steps.train((x, y, sw))
        finally:
            self.train(was_training)
        return self._on_batch_result(return_dict, step_logs)

    def test_on_batch(self, x, y=None, sample_weight=None, reset_metrics=True, return_dict=False):
        """Loss and metrics on exactly this batch, without updating weights."""
        self._assert_compiled("evaluation")
        if reset_metrics:
            self.reset_metrics()
        x, y, sw = self._on_device(x, y, sample_weight)
        self.eval()
        step_logs = self._steps.test((x, y, sw))
        return self._on_batch_result(return_dict, step_logs)

    def predict_on_batch(self, x):
        """Outputs for exactly this batch, as NumPy arrays."""
        return map_structure(convert_to_numpy, self._predict_tensors(x))

    def _predict_tensors(self, x):
        """Outputs (tensors) for exactly this batch, in inference mode, without gradients."""
        self.eval()
        (x,) = self._on_device(x)
        return self._predict_batch((x, None, None))

    def _on_device(self, *values) -> list:
        """The `*_on_batch` calls' `x`, `y`, ... as tensors on the model's device (on the CPU,
        with freed memory kept for reuse: `cpu_memory`)."""
        device = self._device()
        cpu_memory.keep_freed(device)
        return [data_adapter.structure_to_tensors(v, device) for v in values]

    # ------------------------------------------------------------------ Keras' step functions
    def make_train_function(self, force=False):
        """`model.train_function(data)`: one training step on the batch `data[0]` (`x`,
        `(x, y)` or `(x, y, sample_weight)`; Keras' torch trainer takes a list of batches),
        returning the logs without resetting the metrics. Made once, again with `force`."""
        def train(batch):
            return self.train_on_batch(*unpack_x_y_sample_weight(batch), reset_metrics=False,
                                       return_dict=True)
        return self._step_function("train_function", train, force)

    def make_test_function(self, force=False):
        """`model.test_function(data)`: loss and metrics on the batch `data[0]`."""
        def test(batch):
            return self.test_on_batch(*unpack_x_y_sample_weight(batch), reset_metrics=False,
                                      return_dict=True)
        return self._step_function("test_function", test, force)

    def make_predict_function(self, force=False):
        """`model.predict_function(data)`: the outputs (tensors) for the batch `data[0]`."""
        def predict(batch):
            return self._predict_tensors(unpack_x_y_sample_weight(batch)[0])
        return self._step_function("predict_function", predict, force)

    def _step_function(self, attribute: str, step, force: bool):
        if force or getattr(self, attribute) is None:
            setattr(self, attribute, lambda data: step(data[0]))
        return getattr(self, attribute)

    def _on_batch_result(self, return_dict, step_logs):
        logs = self._results(step_logs)
        return logs if return_dict else self._flatten_results(logs)

    def get_compile_config(self) -> dict | None:
        from kestrel.saving.training_config import compile_config

        return compile_config(self) if self.compiled else None


def _python(value):
    """A 0-d tensor or NumPy scalar as a Python float; other values as they are."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return float(value.detach())  # no autograd warning for a custom train step's loss
    if isinstance(value, np.generic):
        return float(value)
    return value


def _sorted_flat(logs: Mapping) -> dict:
    """Logs sorted by name (Keras' order), a nested dict (a step's `compile_metrics` result)
    flattened in its place, values as Python floats."""
    flat = {}
    for key in sorted(logs):
        value = logs[key]
        flat.update(_sorted_flat(value) if isinstance(value, Mapping) else {key: _python(value)})
    return flat


def _key_order(outputs: Mapping) -> list[str]:
    """A dict of outputs' keys as Keras 3 orders them: an OrderedDict's order, else sorted."""
    return list(outputs) if isinstance(outputs, OrderedDict) else sorted(outputs)
