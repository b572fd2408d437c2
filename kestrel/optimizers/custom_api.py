"""Keras 3's API for writing optimizers: slot variables, `assign*`, `update_step`, stateless use.

A custom optimizer subclasses `Optimizer`, creates its state in `build(var_list)` (after
`super().build(var_list)`) with `add_variable_from_reference`, `add_optimizer_variables` or
`add_variable`, and overrides `update_step(gradient, variable, learning_rate)`. The base class
then clips the gradients, applies weight decay and calls `update_step` once per variable (while
`iterations` still counts the steps before this one, as in Keras), then counts the step and
updates the moving average. Built-in optimizers keep their multi-tensor kernels; their own
`update_step` runs the same maths for one variable (for subclasses that call `super()`).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from kestrel import config
from kestrel.layers.naming import unique_name
from kestrel.variables import Variable, wrap


def _initial_value(initializer, shape, dtype: torch.dtype, device) -> torch.Tensor:
    from kestrel import initializers

    shape = tuple(int(d) for d in shape)
    if initializer in ("zeros", "Zeros"):
        return torch.zeros(shape, dtype=dtype, device=device)
    value = initializers.get(initializer)(shape, dtype=dtype)
    return torch.as_tensor(value, dtype=dtype).to(device)


class CustomOptimizerAPI:
    """Mixin of `Optimizer`: the hooks Keras 3 gives optimizer authors."""

    # ---------------------------------------------------------------- variables
    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="none",
                     layout=None, name=None) -> Variable:
        """A new optimizer state `Variable` (non-trainable), tracked in `variables`.

        Args:
            shape: Its shape.
            initializer: An initializer name or object. Defaults to `"zeros"`.
            dtype: Its dtype; defaults to `floatx()`.
            aggregation: How replicas combine it (kept for Keras compatibility).
            layout: Accepted for Keras compatibility; ignored.
            name: Its name; its path is `<optimizer name>/<name>`.
        """
        return self._new_variable(None, shape, initializer, dtype, aggregation, name)

    def add_variable_from_reference(self, reference_variable, name=None,
                                    initializer="zeros") -> Variable:
        """A state variable shaped like `reference_variable`, named as Keras does:
        `<reference path with / as _>_<name>` (e.g. `dense_kernel_momentum`)."""
        name = name or "var"
        if hasattr(reference_variable, "path"):
            prefix = reference_variable.path.replace("/", "_")
        else:
            prefix = str(getattr(reference_variable, "name", "variable")).replace(
                "/", "_").replace(":", "_")
        index = getattr(self, "_index", {}).get(id(reference_variable))
        variable = self._new_variable(index, reference_variable.shape, initializer,
                                      reference_variable.dtype, "none", f"{prefix}_{name}",
                                      device=reference_variable.device)
        if index is not None:  # saved under its short name, after the model's Keras path
            self._own_variables[-1] = (index, name, variable)
        return variable

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        """One state variable per trainable variable for each name in `name` (a string or a
        list), interleaved per variable as Keras creates them.

        Returns a list for a single name, else a tuple of lists (one per name).
        """
        names = [name] if isinstance(name, str) else list(name)
        initializers = initializer if isinstance(initializer, (list, tuple)) else \
            [initializer] * len(names)
        if len(names) != len(initializers):
            raise ValueError(
                "The number of provided names must match the number of provided "
                f"initializers. Received: {len(names)} names and {len(initializers)} "
                "initializers")
        created = tuple([] for _ in names)
        for variable in trainable_variables:
            for out, slot, init in zip(created, names, initializers):
                out.append(self.add_variable_from_reference(variable, slot, init))
        return created[0] if isinstance(name, str) else created

    def _new_variable(self, index, shape, initializer, dtype, aggregation, name,
                      device=None) -> Variable:
        if not hasattr(self, "_own_variables"):
            raise RuntimeError(
                f"In optimizer '{type(self).__name__}', you forgot to call "
                "`super().__init__()` as the first statement in the `__init__()` method.")
        torch_dtype = config.to_torch_dtype(dtype)
        if device is None:
            device = self._params[0].device if self._params else config.device()
        name = name or unique_name("variable")
        value = _initial_value(initializer, shape, torch_dtype, device)
        variable = wrap(value, trainable=False, name=name, path=f"{self.name}/{name}",
                        aggregation=aggregation or "none")
        self._own_variables.append((index, name, variable))
        return variable

    def slot_variables(self):
        return super().slot_variables() + list(self._own_variables)

    def _follow_params(self) -> None:
        super()._follow_params()
        for index, _, variable in self._own_variables:
            device = self._params[0 if index is None else index].device
            variable.data = variable.data.to(device)

    def _get_variable_index(self, variable) -> int:
        """The position of `variable` among those the optimizer was built with."""
        return self._variable_index(variable)

    # ---------------------------------------------------------------- assignment
    @staticmethod
    def assign(variable, value) -> None:
        """`variable = value` in place (a model or optimizer variable, or a torch tensor)."""
        target = _target(variable)
        target.copy_(torch.as_tensor(value, device=target.device))

    @staticmethod
    def assign_add(variable, value) -> None:
        """`variable += value` in place."""
        target = _target(variable)
        target.add_(torch.as_tensor(value, device=target.device))

    @staticmethod
    def assign_sub(variable, value) -> None:
        """`variable -= value` in place."""
        target = _target(variable)
        target.sub_(torch.as_tensor(value, device=target.device))

    # ---------------------------------------------------------------- per-variable step
    def update_step(self, gradient, variable, learning_rate) -> None:
        """Update one variable with this optimizer's own maths (what a subclass overriding
        `update_step` reaches through `super()`); no clipping, weight decay or counting."""
        index = self._variable_index(variable)
        slots = {name: [tensors[index]] for name, tensors in self._slots.items()}
        if isinstance(learning_rate, torch.Tensor):
            learning_rate = float(learning_rate)
        param = self._params[index]
        grad = torch.as_tensor(gradient).to(dtype=param.dtype, device=param.device)
        with torch.no_grad():
            self._update([param], [grad], slots, learning_rate, self._iterations + 1)

    def _apply_each(self, params, grads, lr) -> None:
        """Keras' per-variable step (custom `update_step`): weight decay, one `update_step`
        per variable, then the step count and the moving average."""
        self._load_pending_state()
        self._decay_(params, lr, self.weight_decay)
        self._begin_update_steps(self._iterations + 1)
        rate = torch.as_tensor(lr, dtype=config.to_torch_dtype(None), device=params[0].device)
        for param, grad in zip(params, grads):
            self.update_step(grad, param, rate)
        self._step_t.add_(1)
        self._iterations += 1
        if self.use_ema:
            self._update_ema(self._iterations)

    def _load_pending_state(self) -> None:
        """Restore state loaded before `build()` (a subclass's `build` made its slots by now)."""
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self.load_state_dict(state)

    def _begin_update_steps(self, t) -> None:
        """Advance optimizer-wide state once per step `t` (1-based), before the updates."""

    # ---------------------------------------------------------------- stateless use
    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """`apply(grads)` on the given values: returns `(new trainable values, new optimizer
        variable values)`, leaving the model's and the optimizer's own state unchanged.

        `optimizer_variables` follows `variables`; `trainable_variables` the built list.
        """
        if not self.built:
            raise ValueError(
                f"To call `stateless_apply`, {type(self).__name__} must be built (i.e. its "
                "variables must have been created). You can build it via "
                "`optimizer.build(trainable_variables)`.")
        optimizer_variables, trainable_variables = list(optimizer_variables), \
            list(trainable_variables)
        expected = len(self.variables)
        if len(optimizer_variables) != expected:
            raise ValueError(
                "Argument `optimizer_variables` must be a list of tensors corresponding 1:1 "
                f"to {type(self).__name__}().variables. Received list with length "
                f"{len(optimizer_variables)}, but expected {expected} variables.")
        if len(trainable_variables) != len(self._params):
            raise ValueError(
                "Argument `trainable_variables` must be a list of tensors corresponding 1:1 "
                "to the trainable variables list that the optimizer was built with. Received "
                f"len(trainable_variables) == {len(trainable_variables)} whereas the "
                f"optimizer was built with {len(self._params)} variables.")
        kept_params = [p.detach().clone() for p in self._params]
        kept_state = [v.detach().clone() for v in self.variables]
        try:
            with torch.no_grad():
                for param, value in zip(self._params, trainable_variables):
                    param.copy_(torch.as_tensor(value))
            self.set_weights(optimizer_variables)
            self.apply(grads)
            new_params = [p.detach().clone() for p in self._params]
            new_state = [v.detach().clone() for v in self.variables]
        finally:
            with torch.no_grad():
                for param, value in zip(self._params, kept_params):
                    param.copy_(value)
            self.set_weights(kept_state)
        return new_params, new_state

    def save_own_variables(self, store) -> None:
        """Write `variables` into `store` (a dict-like) under keys "0", "1", ..."""
        for i, value in enumerate(self.get_weights()):
            store[str(i)] = value

    def load_own_variables(self, store) -> None:
        """Restore `variables` from `store`; a count mismatch warns and loads nothing."""
        expected = len(self.variables)
        if len(store.keys()) != expected:
            message = (f"Skipping variable loading for optimizer '{self.name}', because it has "
                       f"{expected} variables whereas the saved optimizer has "
                       f"{len(store.keys())} variables. ")
            if not self.built:
                message += "This is likely because the optimizer has not been called/built yet."
            warnings.warn(message, stacklevel=2)
            return
        self.set_weights([np.asarray(store[str(i)]) for i in range(expected)])


def _target(variable) -> torch.Tensor:
    """The tensor to write in place, without autograd history."""
    return (variable.detach() if isinstance(variable, torch.Tensor) else variable.value.detach())
