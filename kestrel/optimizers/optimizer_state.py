"""An optimizer's Keras variables: learning rate, iteration count and slots.

The learning rate is a Python float (rounded to float32, as Keras stores it), a schedule or a
callable. Keras 3 orders an optimizer's variables as: `iteration`, `learning_rate` (only when
the rate is a float, not a schedule), then the per-parameter slots in creation order (Adam:
momentum and velocity interleaved per parameter; RMSprop: all velocities, then all momentums),
then any optimizer-wide extras (Nadam's `u_product`). Real Keras writes exactly this list to
`optimizer/vars` of a `.weights.h5` file.
"""
from __future__ import annotations

import inspect
import numbers

import numpy as np
import torch

from kestrel.optimizers import foreach
from kestrel.optimizers.optimizer_values import IterationsValue, LearningRateValue
from kestrel.optimizers.schedules import LearningRateSchedule, rate_at
from kestrel.variables import Variable, wrap


def _takes_arg(fn) -> bool:
    try:
        inspect.signature(fn).bind(0)
    except (TypeError, ValueError):
        return False
    return True


def _as_tensor(value) -> torch.Tensor:
    return value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


class OptimizerState:
    """Mixin of `Optimizer`: learning rate, iteration count, `variables`, weights, `state_dict`."""

    # ---------------------------------------------------------------- learning rate
    @property
    def learning_rate(self) -> LearningRateValue:
        """The learning rate used by the next step: a float with Keras' `assign`/`numpy`, in
        float32 precision as Keras' (a schedule's value too)."""
        return LearningRateValue(float(np.float32(float(self._host_lr()))), self)

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if not callable(value) and not self._lr_is_float:
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` or callable as its "
                "`learning_rate`, hence its learning rate is not settable. Instantiate the "
                f"optimizer with a float `learning_rate` instead. Received: value={value!r}")
        self._set_learning_rate(value)

    @property
    def lr(self) -> LearningRateValue:
        """Keras 2's name for `learning_rate`."""
        return self.learning_rate

    @lr.setter
    def lr(self, value) -> None:
        self.learning_rate = value

    def _set_learning_rate(self, value) -> None:
        self._lr_is_float = not callable(value)  # compiled steps guard on this flag only
        if callable(value):
            self._learning_rate = value
            self._lr_takes_step = isinstance(value, LearningRateSchedule) or _takes_arg(value)
            return
        if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(
                "Argument `learning_rate` should be float, or an instance of "
                "LearningRateSchedule, or a callable (that takes in the current iteration value "
                f"and returns the corresponding learning rate value). Received instead: "
                f"learning_rate={value!r}")
        self._learning_rate = float(np.float32(value))  # a float32 variable in Keras
        if self._lr_t is not None:
            self._lr_t.fill_(self._learning_rate)

    def _call_schedule(self, step):
        """The scheduled rate: a built-in schedule's Python float for a number step (see
        `schedules.rate_at`), else what the schedule or callable returns."""
        if self._lr_takes_step:
            return rate_at(self._learning_rate, step)
        return self._learning_rate()

    def _host_lr(self):
        if self._lr_is_float:
            return self._learning_rate
        return self._call_schedule(self._schedule_step())

    def _traced_lr(self) -> torch.Tensor:
        if self._lr_is_float or self._host_scalars:
            return self._lr_t
        return self._call_schedule(self._step_t)

    # ---------------------------------------------------------------- iterations
    @property
    def iterations(self) -> IterationsValue:
        """The number of steps applied so far (an int with Keras Variable methods)."""
        if self._host_stale:
            self._sync_host()
        return IterationsValue(self._iterations, self)

    @iterations.setter
    def iterations(self, value) -> None:
        self._iterations = int(value)
        self._micro_steps = self._iterations * (self.gradient_accumulation_steps or 1)
        self._host_stale = False
        if self._step_t is not None:
            self._step_t.fill_(self._iterations)

    def _sync_host(self) -> None:
        """Refresh host copies of state that compiled steps advanced on the device (one sync)."""
        self._host_stale = False
        self._iterations = int(self._step_t.item())

    def _follow_params(self) -> None:
        """Move the state to the parameters' devices after `model.to(device)`."""
        device = self._params[0].device
        self._step_t = self._step_t.to(device)
        self._lr_t = self._lr_t.to(device)
        for slot, tensors in self._slots.items():
            self._slots[slot] = [t.to(p.device) for t, p in zip(tensors, self._params)]
        self._fusable = foreach.fusable(self._params)

    # ---------------------------------------------------------------- variables
    def _build_extra_state(self, device: torch.device) -> None:
        """Create optimizer-wide state at build time (none by default)."""

    def _extra_state(self) -> list[tuple[str, torch.Tensor]]:
        """Optimizer-wide state tensors stored after the slots (none by default)."""
        return []

    def slot_variables(self) -> list[tuple[int | None, str, torch.Tensor]]:
        """`(param_index, slot_name, tensor)` for every state tensor after iteration and rate.

        Per-parameter slots (same shape as their parameter) come in Keras' order; extras that
        belong to no parameter (Nadam's `u_product`) follow with `param_index=None`.
        """
        slots = [(i, name, self._slots[name][i]) for i, name in self._slot_order]
        return slots + [(None, name, tensor) for name, tensor in self._extra_state()]

    def _has_lr_variable(self) -> bool:
        return self._lr_is_float

    @property
    def variables(self) -> list[torch.Tensor]:
        """The state in Keras order: iteration, learning_rate (if a float), then the slots, as
        Variables named as Keras names them (`adam/sequential_dense_kernel_momentum`).

        Iteration and learning rate are fresh 0-d copies; the slots share the live tensors.
        """
        head = [torch.tensor(self._iteration_variable(), dtype=torch.int32)]
        if self._has_lr_variable():
            head.append(torch.tensor(self._learning_rate, dtype=torch.float32))
        tensors = head + [tensor for _, _, tensor in self.slot_variables()]
        return [wrap(tensor, trainable=False, name=name, path=f"{self.name}/{name}")
                if type(tensor) is torch.Tensor else tensor  # Variables, sharded DTensors
                for name, tensor in zip(self.variable_names(), tensors)]

    @property
    def weights(self) -> list[torch.Tensor]:
        """`variables`, by its Keras 2 name (scripts save `K.batch_get_value(opt.weights)`)."""
        return self.variables

    def variable_names(self) -> list[str]:
        """Keras' names of `variables`: `iteration`, `learning_rate`, then a slot is
        `<its parameter's path, / as _>_<slot>` (an extra is its own name)."""
        names = ["iteration"] + (["learning_rate"] if self._has_lr_variable() else [])
        for index, slot, _ in self.slot_variables():
            if index is None:
                names.append(slot)
                continue
            param = self._params[index]
            path = param.path if isinstance(param, Variable) else f"variable_{index}"
            names.append(f"{path.replace('/', '_')}_{slot}")
        return names

    def get_weights(self) -> list[np.ndarray]:
        """The state as NumPy arrays in Keras order (iteration as int32, like Keras writes it)."""
        head = [np.array(self._iteration_variable(), dtype=np.int32)]
        if self._has_lr_variable():
            head.append(np.array(self._learning_rate, dtype=np.float32))
        return head + [t.detach().cpu().numpy().copy() for _, _, t in self.slot_variables()]

    def set_weights(self, weights) -> None:
        """Restore the state from arrays in `get_weights()` order."""
        if not self.built:
            raise ValueError(
                "You are calling `set_weights()` on an optimizer that has not yet been built. "
                "Please call `optimizer.build(trainable_variables)` to create the optimizer "
                "weights before calling `set_weights()`.")
        weights = list(weights)
        slots = self.slot_variables()
        expected = 1 + self._has_lr_variable() + len(slots)
        if len(weights) != expected:
            raise ValueError(
                f"Optimizer '{self.name}' has {expected} variables, but {len(weights)} weights "
                f"were given. Received: len(weights)={len(weights)}")
        values = [_as_tensor(w) for w in weights]
        for (index, name, tensor), value in zip(slots, values[expected - len(slots):]):
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(
                    f"Optimizer variable {name!r} (parameter {index}) has shape "
                    f"{tuple(tensor.shape)} not compatible with provided weight shape "
                    f"{tuple(value.shape)}.")
        with torch.no_grad():
            for (_, _, tensor), value in zip(slots, values[expected - len(slots):]):
                tensor.copy_(value)
        if self._has_lr_variable():
            self.learning_rate = float(values[1].item())
        self._set_iteration_variable(int(values[0].item()))
        self._sync_host()

    # ---------------------------------------------------------------- torch-style state
    def state_dict(self) -> dict:
        """`{"iterations", "learning_rate", "state"}`; `state` holds the live slot tensors."""
        if not self.built and self._pending_state is not None:
            return self._pending_state
        learning_rate = self._learning_rate if self._has_lr_variable() else None
        return {"iterations": self._iteration_variable(), "learning_rate": learning_rate,
                "state": [tensor for _, _, tensor in self.slot_variables()]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from `state_dict()`; before `build()` the state is kept until the build."""
        if not self.built:
            self._pending_state = state_dict
            return
        weights = [state_dict["iterations"]]
        if self._has_lr_variable():
            learning_rate = state_dict.get("learning_rate")
            weights.append(self._learning_rate if learning_rate is None else learning_rate)
        self.set_weights(weights + list(state_dict["state"]))

    # ---------------------------------------------------------------- moving average (use_ema)
    @staticmethod
    def _check_ema_arguments(momentum, overwrite_frequency) -> None:
        if not 0 <= momentum <= 1:
            raise ValueError("`ema_momentum` must be in the range [0, 1]. "
                             f"Received: ema_momentum={momentum}")
        if overwrite_frequency and (not isinstance(overwrite_frequency, int)
                                    or overwrite_frequency < 1):
            raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. "
                             f"Received: ema_overwrite_frequency={overwrite_frequency}")

    def _update_ema(self, t) -> None:
        """After step `t` (1-based; an int, or a 0-d tensor in a compiled step): fold the
        weights into their average (step 1 copies them), then every `ema_overwrite_frequency`
        steps copy the average into the weights."""
        averages, params = self._slots["average"], self._params
        frequency = self.ema_overwrite_frequency
        if isinstance(t, torch.Tensor):  # traced: branch-free, the weights are 0-d tensors
            weight = 1.0 - self.ema_momentum * (t != 1).to(params[0].dtype)
            for average, p in zip(averages, params):
                average.lerp_(p, weight)
            if frequency:
                overwrite = (t % frequency == 0).to(params[0].dtype)
                for p, average in zip(params, averages):
                    p.lerp_(average, overwrite)
            return
        torch._foreach_lerp_(averages, params, 1.0 if t == 1 else 1.0 - self.ema_momentum)
        if frequency and t % frequency == 0:
            torch._foreach_copy_(params, averages)

    def _ema_variables(self) -> list[torch.Tensor]:
        if not self.use_ema:
            raise ValueError(f"Optimizer '{self.name}' keeps no moving average of the weights: "
                             f"create it with `use_ema=True`. Received: use_ema={self.use_ema}")
        if not self.built:
            raise ValueError(f"Optimizer '{self.name}' has not been built yet: it has no moving "
                             "average of the weights until its first step.")
        return self._slots["average"]

    @torch.no_grad()
    def finalize_variable_values(self, var_list=None) -> None:
        """At the end of training: with `use_ema`, copy the moving averages into `var_list`
        (the model's trainable variables; by default those the optimizer was built with)."""
        if not self.use_ema or not self.built:
            return
        var_list = self._params if var_list is None else list(var_list)
        averages = self._slots["average"]
        if len(var_list) != len(averages):
            raise ValueError(
                f"The length of model variables ({len(var_list)}) to override does not match "
                f"the length of model variables stored in the optimizer ({len(averages)}). "
                "Please check if the optimizer was called on your model.")
        torch._foreach_copy_([_data(v) for v in var_list], averages)

    @torch.no_grad()
    def swap_ema_weights(self) -> None:
        """Exchange the trainable weights and their moving averages in place."""
        averages = self._ema_variables()
        for p, average in zip(self._params, averages):
            kept = p.detach().clone()
            p.copy_(average)
            average.copy_(kept)


def _data(variable) -> torch.Tensor:
    return variable.detach() if isinstance(variable, torch.Tensor) else variable.value
