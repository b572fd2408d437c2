"""`Optimizer`: Keras 3's optimizer API over a list of torch parameters.

The trainer calls `build(params)` once, then `step()` after each `loss.backward()`. A step
clips the gradients, applies Keras' decoupled weight decay, runs the subclass's multi-tensor
update and counts the iteration. The count is a Python int, so learning-rate schedules and
bias corrections are host floats computed without device syncs; a 0-d tensor copy of it
(`_step_t`) lets the same step run under `torch.compile`, where these values become tensors.
"""
from __future__ import annotations

import warnings

import torch

from kestrel.layers.naming import to_snake_case, unique_name
from kestrel.optimizers import foreach
from kestrel.optimizers.custom_api import CustomOptimizerAPI
from kestrel.optimizers.gradient_accumulation import GradientAccumulation, check_steps
from kestrel.optimizers.keras2_updates import Keras2Updates
from kestrel.optimizers.optimizer_state import OptimizerState
from kestrel.optimizers.weight_decay import WeightDecayExclusion
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

def _keras2_learning_rate(owner: str, learning_rate, kwargs: dict):
    """Keras 2's `lr=` (renamed `learning_rate`) and `decay=` (time-based decay per step,
    `lr / (1 + decay * iterations)`), accepted with a deprecation warning."""
    if kwargs.get("lr") is not None:
        warnings.warn(f"{owner}: `lr` is deprecated, use `learning_rate` instead.",
                      DeprecationWarning, stacklevel=3)
        learning_rate = kwargs.pop("lr")
    kwargs.pop("lr", None)
    decay = kwargs.pop("decay", None)
    if decay:
        warnings.warn(f"{owner}: `decay` is deprecated; it is applied as Keras 2 did, through "
                      "an InverseTimeDecay(decay_steps=1) learning-rate schedule.",
                      DeprecationWarning, stacklevel=3)
        from kestrel.optimizers.schedules import InverseTimeDecay

        if not isinstance(learning_rate, (int, float)):
            raise ValueError(f"{owner}: `decay` needs a float learning rate. Received: "
                             f"learning_rate={type(learning_rate).__name__}")
        learning_rate = InverseTimeDecay(float(learning_rate), decay_steps=1,
                                         decay_rate=float(decay))
    return learning_rate


class Optimizer(WeightDecayExclusion, GradientAccumulation, CustomOptimizerAPI, Keras2Updates,
                OptimizerState):
    """Base class of Kestrel optimizers (Keras 3 API).

    Built-in subclasses list their per-parameter state in `_slot_groups()` and implement
    `_update(params, grads, slots, lr, t)` with `torch._foreach_*` ops. A user's optimizer
    may instead follow Keras: create slots in `build(var_list)` with
    `add_variable_from_reference` and override `update_step(gradient, variable,
    learning_rate)` (see `custom_api`).

    Args:
        learning_rate: A float, a `LearningRateSchedule`, or a callable returning the rate
            (called with the iteration count if it takes an argument, else with none).
        weight_decay: If set, decoupled weight decay `var -= var * weight_decay * lr`.
        clipnorm: If set, each gradient is clipped to this L2 norm.
        clipvalue: If set, each gradient element is clipped to `[-clipvalue, clipvalue]`.
        global_clipnorm: If set, all gradients are scaled so their joint norm is at most this.
        use_ema: If True, keep an exponential moving average (EMA) of the trainable weights,
            updated after each step (see `finalize_variable_values`, `SwapEMAWeights`).
        ema_momentum: The EMA's momentum, in [0, 1]: `average = m * average + (1 - m) * var`
            (the first step copies the weights).
        ema_overwrite_frequency: If set, the weights are overwritten with their EMA every
            this many steps.
        loss_scale_factor: If set, gradients are divided by it (see `scale_loss`).
        gradient_accumulation_steps: If set (an integer >= 2), the gradients of this many
            steps are averaged and applied once (see `gradient_accumulation`).
        name: The optimizer's name (default: the snake-case class name, made unique).
    """

    # Whether `_update` can read every step-dependent scalar from the 0-d tensors that
    # `_fill_host_scalars` fills, so that a compiled step may trace it (see step_functions).
    supports_host_scalars = False

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        learning_rate = _keras2_learning_rate(type(self).__name__, learning_rate, kwargs)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if use_ema:
            self._check_ema_arguments(ema_momentum, ema_overwrite_frequency)
        check_steps(type(self).__name__, gradient_accumulation_steps)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))  # as Keras: "rm_sprop"
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.built = False
        self._params: list[torch.nn.Parameter] = []
        self._slots: dict[str, list[torch.Tensor]] = {}
        self._slot_order: list[tuple[int, str]] = []
        self._iterations = 0
        self._host_stale = False  # set by compiled steps, which only advance `_step_t`
        self._step_t: torch.Tensor | None = None
        self._lr_t: torch.Tensor | None = None
        self._host_scalars = False  # a whole compiled step reads scalars prepared on the host
        self._pending_state: dict | None = None
        self._own_variables: list = []  # (param index or None, name, Variable), Keras order
        # A subclass's own `update_step` runs per variable (eager, host scalars not prepared).
        self._per_variable = type(self).update_step is not CustomOptimizerAPI.update_step
        if self._per_variable or gradient_accumulation_steps:
            self.supports_host_scalars = False  # eager steps only (see step_functions)
        self._set_learning_rate(learning_rate)

    # ---------------------------------------------------------------- building
    def _slot_groups(self) -> list[list[tuple[str, float]]]:
        """Per-parameter state as Keras creates it: groups of `(name, initial value)`.

        Slots of one group are interleaved per parameter; groups follow one another.
        """
        return []

    def build(self, params) -> None:
        """Create the optimizer state for `params` (the model's trainable parameters, in order)."""
        if self.built:
            return
        self._params = list(params)
        if not self._params:
            raise ValueError(f"{type(self).__name__}.build() needs at least one parameter.")
        self._index = {id(p): i for i, p in enumerate(self._params)}
        device = self._params[0].device
        self._step_t = torch.full((), float(self._iterations), device=device)
        self._lr_t = torch.tensor(self._learning_rate if self._lr_is_float else 0.0, device=device)
        with torch.no_grad():
            groups = self._accumulator_groups() + self._slot_groups()
            if self.use_ema:  # Keras creates the averages first, before the optimizer's slots
                groups = [[("average", 0.0)]] + groups
            for group in groups:
                for i, p in enumerate(self._params):
                    for slot, value in group:
                        self._slots.setdefault(slot, []).append(
                            torch.full_like(p, value, memory_format=torch.preserve_format))
                        self._slot_order.append((i, slot))
        self._build_extra_state(device)
        self._fusable = foreach.fusable(self._params)
        self.built = True
        if self._pending_state is not None and type(self).build is Optimizer.build:
            state, self._pending_state = self._pending_state, None
            self.load_state_dict(state)

    def _include(self, params) -> None:
        """Add state for those of `params` a built optimizer does not track yet, keeping the
        state it has: Keras 2 lets compiled models share one optimizer (a GAN's discriminator
        and combined model), each updating its own weights."""
        new = [p for p in params if id(p) not in self._index]
        if not new:
            return
        if type(self).build is not Optimizer.build or self._per_variable:
            self._variable_index(new[0])  # raises Keras' "unknown variable" error
        old_slots = {name: list(tensors) for name, tensors in self._slots.items()}
        old_extra = [tensor.clone() for _, tensor in self._extra_state()]
        count, step_t, lr_t = len(self._params), self._step_t, self._lr_t
        self.built, self._slots, self._slot_order = False, {}, []
        self.build(self._params + new)
        self._step_t, self._lr_t = step_t, lr_t  # compiled steps may hold these
        with torch.no_grad():
            for name, tensors in old_slots.items():
                self._slots[name][:count] = tensors
            for (_, tensor), old in zip(self._extra_state(), old_extra):
                tensor.copy_(old)
        self._sync_host()

    # ---------------------------------------------------------------- stepping
    @torch.no_grad()
    def step(self) -> None:
        """Apply the parameters' `.grad` (parameters without one are skipped)."""
        if not self.built:
            raise ValueError(
                f"{type(self).__name__} must be built before step(): call "
                "`optimizer.build(params)` with the model's trainable parameters first.")
        grads = [p.grad for p in self._params]
        indices = None
        if any(g is None for g in grads):
            indices = [i for i, g in enumerate(grads) if g is not None]
            if not indices:
                return
            _warn_missing_gradients([p for p, g in zip(self._params, grads)
                                     if g is None and p.requires_grad])
            grads = [grads[i] for i in indices]
        self._apply(indices, grads)

    def apply(self, grads, trainable_variables=None):
        """Apply `grads` (one per variable, None skips) to `trainable_variables` or all."""
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be "
                    "built on a list of variables. Call `optimizer.build(trainable_variables)` "
                    "first.")
            if len(grads) != len(self._params):
                raise ValueError(
                    f"Received a list of {len(grads)} gradients, but the optimizer is tracking "
                    f"{len(self._params)} trainable variables.")
            indices = list(range(len(grads)))
        else:
            variables = list(trainable_variables)
            if not self.built:
                self.build(variables)
            indices = [self._variable_index(v) for v in variables]
        pairs = [(i, g) for i, g in zip(indices, grads) if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        if len(pairs) < len(grads):
            _warn_missing_gradients([self._params[i] for i, g in zip(indices, grads) if g is None])
        copy = self.clipnorm or self.clipvalue or self.global_clipnorm or self.loss_scale_factor
        tensors = []
        for i, g in pairs:
            p = self._params[i]
            g = torch.as_tensor(g, dtype=p.dtype, device=p.device)
            if g.stride() != p.stride():  # autograd.grad may hand a conv kernel's gradient in
                g = torch.empty_like(p).copy_(g)  # another memory layout; fused kernels need p's
            elif copy:
                g = g.clone()
            tensors.append(g)
        indices = [i for i, _ in pairs]
        with torch.no_grad():
            self._apply(None if indices == list(range(len(self._params))) else indices, tensors)

    def apply_gradients(self, grads_and_vars) -> int:
        """Apply `(gradient, variable)` pairs; returns the iteration count."""
        grads, variables = zip(*grads_and_vars)
        self.apply(grads, variables)
        return self.iterations

    def _variable_index(self, variable) -> int:
        index = self._index.get(id(variable))
        if index is None:
            raise ValueError(
                f"Unknown variable: {tuple(variable.shape)}. This optimizer can only be called "
                "for the variables it was originally built with. When working with a new set of "
                "variables, you should recreate a new optimizer instance.")
        return index

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the parameters' gradients (set them to None by default)."""
        if set_to_none:
            for p in self._params:
                p.grad = None
        else:
            grads = [p.grad for p in self._params if p.grad is not None]
            if grads:
                torch._foreach_zero_(grads)

    def scale_loss(self, loss):
        """Multiply `loss` by `loss_scale_factor` (if set) before computing gradients."""
        return loss if self.loss_scale_factor is None else loss * self.loss_scale_factor

    def _apply(self, indices: list[int] | None, grads: list[torch.Tensor]) -> None:
        """One step on the parameters at `indices` (all if None); clips `grads` in place."""
        if self._step_t.device != self._params[0].device:
            self._follow_params()
        compiling = torch.compiler.is_compiling()
        if compiling:
            lr = self._traced_lr()
        else:
            if self._host_stale:
                self._sync_host()
            lr = self._host_lr()
        if indices is None:
            params, slots = self._params, self._slots
        else:
            params = [self._params[i] for i in indices]
            slots = {k: [v[i] for i in indices] for k, v in self._slots.items()}
        if self.loss_scale_factor is not None:
            torch._foreach_div_(grads, self.loss_scale_factor)
        if self.gradient_accumulation_steps:
            self._accumulate(params, grads, slots, lr)
            return
        self._clip_and_update(params, grads, slots, lr, compiling)

    def _clip_and_update(self, params, grads, slots, lr, compiling: bool) -> None:
        """Clip `grads` in place, update `params`, count the step, fold in the average."""
        if self.clipnorm:
            foreach.clip_by_norm_(grads, self.clipnorm)
        elif self.global_clipnorm:
            foreach.clip_by_global_norm_(grads, self.global_clipnorm)
        elif self.clipvalue:
            foreach.clip_by_value_(grads, self.clipvalue)
        if self._per_variable:
            self._apply_each(params, grads, lr)
            return
        self._step_t.add_(1)
        if compiling:
            t = self._step_t
            self._host_stale = True
        else:
            self._iterations += 1
            t = self._iterations
        self._update_step(params, grads, slots, lr, t)
        if self.use_ema:
            self._update_ema(t)

    # ---------------------------------------------------------------- whole compiled steps
    def _prepare_host_scalars(self) -> None:
        """Before a compiled step that traces `_apply`: compute this step's learning rate (and
        the optimizer's step-dependent scalars) on the host into the 0-d tensors it reads.
        Traced, `beta**t` would be recomputed for every element of every parameter."""
        t = self.iterations + 1
        lr = self._host_lr()
        self._lr_t.fill_(lr)
        self._fill_host_scalars(lr, t)
        self._host_scalars = True

    def _finish_host_scalars(self) -> None:
        """After that step: the host step count advances as the device's did, without a sync."""
        self._host_scalars = False
        self._host_stale = False
        self._iterations += 1

    def _fill_host_scalars(self, lr: float, t: int) -> None:
        """Write the step-dependent scalars of step `t` (1-based) for `_update` to read."""

    def _update_step(self, params, grads, slots, lr, t) -> None:
        """Weight decay, then the update. `t` is the 1-based step; `lr`, `t` float or 0-d tensor."""
        if self.weight_decay is not None:
            self._decay_(params, lr, self.weight_decay)
        self._update(params, grads, slots, lr, t)

    def _update(self, params, grads, slots, lr, t) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement `_update`.")

    # ---------------------------------------------------------------- config
    def get_config(self) -> dict:
        """Hyperparameters as JSON-able data; a schedule is stored as its Keras config dict."""
        if self._lr_is_float:
            learning_rate = self._learning_rate
        else:
            learning_rate = serialize_keras_object(self._learning_rate, "schedules")
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        """Rebuild an optimizer (without state) from `get_config()` output."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), (dict, str)):
            config["learning_rate"] = deserialize_keras_object(
                config["learning_rate"], "schedules", custom_objects)
        return cls(**config)


def _warn_missing_gradients(variables) -> None:
    """Keras' warning for trainable variables the loss does not reach (e.g. `loss=[None, ...]`)."""
    if variables:
        paths = [getattr(v, "path", None) or getattr(v, "name", "?") for v in variables]
        warnings.warn(f"Gradients do not exist for variables {paths} when minimizing the loss. "
                      "If using `model.compile()`, did you forget to provide a `loss` argument?",
                      stacklevel=3)
