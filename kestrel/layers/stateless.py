"""Stateless calls: a layer or model run on given variable values, its own left unchanged.

Keras 3 (JAX-style) code passes the state in and gets the new state out:
`Layer.stateless_call`, `Model.stateless_compute_loss`, `StatelessScope`, and the state tree
(`get_state_tree` / `set_state_tree`). Kestrel's variables are torch tensors registered on
their modules, so a stateless call swaps the given values into the modules' parameter and
buffer slots for the call: gradients flow to the given trainable values, and in-place updates
(BatchNormalization's moving statistics) land in fresh copies that are returned.
"""
from __future__ import annotations

import contextlib
import inspect

import numpy as np
import torch
from torch import nn

from kestrel.registry.bounds import short_repr
from kestrel.variables import _STATELESS, ParameterVariable, Variable, wrap

_VALUE_FORMATS = ("backend_tensor", "numpy_array")


class StatelessScope:
    """Inside, variables hold the values of `state_mapping`; on exit every variable is back.

    `assign`, `assign_add` and `assign_sub` inside the scope change a scratch copy, readable
    with `get_current_value(variable)` (also after the scope); a variable neither mapped nor
    assigned gives None. Unlike Keras: the values are swapped into the variables' storage, so
    a backward pass inside the scope sends gradients to the variables (`v.grad`), not to the
    mapped tensors (use `Layer.stateless_call` for that); in-place torch ops other than
    `assign*` on an unmapped variable (e.g. `v.add_(1)`) are not undone; and variables are
    always created initialized, so `initialize_variables` changes nothing.

    Args:
        state_mapping: `(variable, value)` pairs; each value takes the variable's dtype.
        collect_losses: whether `add_loss` terms added inside go to `scope.losses`.
        initialize_variables: accepted for Keras compatibility.

    Example:
    >>> import numpy as np, kestrel
    >>> v = kestrel.Variable(np.zeros(2, "float32"), name="v")
    >>> with kestrel.StatelessScope([(v, np.ones(2))]) as scope:
    ...     _ = v.assign_add(np.ones(2, "float32"))
    >>> scope.get_current_value(v).tolist(), v.numpy().tolist()
    ([2.0, 2.0], [0.0, 0.0])
    """

    def __init__(self, state_mapping=None, collect_losses: bool = False,
                 initialize_variables: bool = True):
        self.collect_losses = collect_losses
        self.initialize_variables = initialize_variables
        self.losses: list = []
        self._pairs = []
        for variable, value in state_mapping or []:
            if not isinstance(variable, Variable):
                raise ValueError("Invalid reference variable in StatelessScope: all keys in "
                                 "argument `mapping` must be Variable instances. Received "
                                 f"instead: {short_repr(variable)}")
            value = _as_value(value, variable)
            if value.shape != variable.shape:
                raise ValueError(
                    "Invalid variable value in StatelessScope: all values in argument "
                    "`mapping` must be tensors with a shape that matches the corresponding "
                    f"variable shape. For variable {variable.path}, received a value with "
                    f"shape {tuple(value.shape)}; expected {tuple(variable.shape)}.")
            self._pairs.append((variable, value))
        self._held: dict[int, tuple[Variable, torch.Tensor]] = {}  # id -> (variable, data)
        self._scratch: set[int] = set()  # ids whose current data is the scope's own copy
        self._final: dict[int, torch.Tensor] = {}

    def __enter__(self) -> "StatelessScope":
        _STATELESS.append(self)
        for variable, value in self._pairs:
            self._swap_in(variable, value)
        return self

    def __exit__(self, *exc) -> None:
        _STATELESS.remove(self)
        for key, (variable, original) in reversed(list(self._held.items())):
            self._final[key] = variable.data
            variable.data = original
        self._held.clear()

    def _swap_in(self, variable: Variable, value: torch.Tensor) -> None:
        self._held.setdefault(id(variable), (variable, variable.data))
        variable.data = value

    def track(self, variable: Variable) -> None:
        """Called by `assign*` before an update: the update goes to the scope's own copy."""
        if id(variable) not in self._scratch:
            self._scratch.add(id(variable))
            self._swap_in(variable, variable.data.clone())

    def add_loss(self, loss) -> None:
        self.losses.append(loss)

    def add_update(self, update) -> None:
        """Record `(variable, value)` as the variable's new value inside the scope."""
        variable, value = update
        self.track(variable)
        variable.data.copy_(_as_value(value, variable))

    def get_current_value(self, variable):
        """The variable's value in this scope, or None when it was neither mapped nor assigned."""
        key = id(variable)
        if key in self._final:
            return self._final[key]
        return variable.data.clone() if key in self._held else None


def get_stateless_scope() -> StatelessScope | None:
    """The innermost open `StatelessScope`, or None."""
    return _STATELESS[-1] if _STATELESS else None


def in_stateless_scope() -> bool:
    return bool(_STATELESS)


def _as_value(value, variable: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(np.asarray(value))
    return value.detach().to(device=variable.device, dtype=variable.dtype)


# ---------------------------------------------------------------------- stateless calls
def check_values(owner, what: str, values, expected: list) -> None:
    """Keras' error when `values` does not correspond 1:1 to `owner.<what>`."""
    if len(values) != len(expected):
        raise ValueError(
            f"Argument `{what}` must be a list of tensors corresponding 1:1 to "
            f"{type(owner).__name__}().{what}. Received list with length {len(values)}, "
            f"but expected {len(expected)} variables.")


@contextlib.contextmanager
def substituted(layer: nn.Module, replacements: dict[int, torch.Tensor]):
    """Inside, every parameter or buffer slot of `layer`'s modules that holds a tensor whose
    `id` is a key of `replacements` holds the replacement instead (shared weights included)."""
    swapped = []
    try:
        for module in layer.modules():
            for slots in (module._parameters, module._buffers):
                for key, tensor in slots.items():
                    if tensor is not None and id(tensor) in replacements:
                        swapped.append((slots, key, tensor))
                        slots[key] = replacements[id(tensor)]
        yield
    finally:
        for slots, key, tensor in reversed(swapped):
            slots[key] = tensor


def _stand_ins(layer, trainable_values, non_trainable_values):
    """(replacements by id, fresh non-trainable Variables) for a stateless run of `layer`."""
    replacements, fresh = {}, []
    for variable, value in zip(layer.trainable_variables, trainable_values):
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(np.asarray(value))
        stand_in = value.to(device=variable.device, dtype=variable.dtype) \
            .as_subclass(ParameterVariable)  # an alias: gradients reach `value`
        stand_in.__dict__.update(variable.__dict__)
        replacements[id(variable)] = stand_in
    for variable, value in zip(layer.non_trainable_variables, non_trainable_values):
        stand_in = wrap(_as_value(value, variable).clone(),
                        trainable=isinstance(variable, nn.Parameter), name=variable.name,
                        path=variable.path, requires_grad=False)
        replacements[id(variable)] = stand_in
        fresh.append(stand_in)
    return replacements, fresh


def stateless_call(layer, trainable_variables, non_trainable_variables, *args,
                   return_losses: bool = False, **kwargs):
    """`layer(*args, **kwargs)` on the given variable values; returns `(outputs,
    non_trainable_variables)`, plus the losses with `return_losses`.

    Values are in each variable's own layout (as `layer.trainable_variables` holds them).
    """
    if not layer.built:
        raise ValueError(f"To call stateless_call, {type(layer).__name__} must be built (i.e. "
                         "its variables must have been already created). You can build it by "
                         "calling it on some data.")
    check_values(layer, "trainable_variables", trainable_variables, layer.trainable_variables)
    check_values(layer, "non_trainable_variables", non_trainable_variables,
                 layer.non_trainable_variables)
    replacements, fresh = _stand_ins(layer, trainable_variables, non_trainable_variables)
    with substituted(layer, replacements):
        outputs = layer(*args, **kwargs)
        losses = layer.losses if return_losses else None
    new_state = [v.detach() for v in fresh]
    return (outputs, new_state, losses) if return_losses else (outputs, new_state)


def stateless_compute_loss(model, trainable_variables, non_trainable_variables,
                           metrics_variables, x=None, y=None, y_pred=None, sample_weight=None,
                           training: bool = True):
    """`model.compute_loss(...)` on the given state; returns `(loss, (trainable_variables,
    non_trainable_variables, metrics_variables))` with the updated state, as Keras does."""
    check_values(model, "trainable_variables", trainable_variables, model.trainable_variables)
    check_values(model, "non_trainable_variables", non_trainable_variables,
                 model.non_trainable_variables)
    metric_state = model.metrics_variables
    check_values(model, "metrics_variables", metrics_variables, metric_state)
    replacements, fresh = _stand_ins(model, trainable_variables, non_trainable_variables)
    with substituted(model, replacements), \
            StatelessScope(list(zip(metric_state, metrics_variables))) as scope:
        if "training" in inspect.signature(model.compute_loss).parameters:
            loss = model.compute_loss(x, y, y_pred, sample_weight, training=training)
        else:  # an override written before Keras 3.3 added `training`
            loss = model.compute_loss(x, y, y_pred, sample_weight)
    new_metrics = [scope.get_current_value(v) for v in metric_state]
    return loss, (list(trainable_variables), [v.detach() for v in fresh], new_metrics)


# ---------------------------------------------------------------------- state trees
def get_state_tree(model, value_format: str = "backend_tensor") -> dict:
    """The model's state nested by variable path: `trainable_variables`,
    `non_trainable_variables`, `optimizer_variables`, `metrics_variables`.

    Weights are given in Keras' layout (as `get_weights()`).
    """
    from kestrel.saving.keras_weights import optimizer_state

    if value_format not in _VALUE_FORMATS:
        raise ValueError("Invalid `value_format` argument. Expected one of {'numpy_array', "
                         f"'backend_tensor'}}. Received: value_format={short_repr(value_format)}")
    as_numpy = value_format == "numpy_array"

    def leaf(value):
        if as_numpy:
            return np.asarray(value.detach().float().cpu() if value.dtype is torch.bfloat16
                              else value.detach().cpu())
        return torch.as_tensor(value)

    weights = _weight_values(model)
    return {
        "trainable_variables": _nested(
            [(v.path, leaf(weights[id(v)]())) for v in model.trainable_variables]),
        "non_trainable_variables": _nested(
            [(v.path, leaf(weights[id(v)]())) for v in model.non_trainable_variables]),
        "optimizer_variables": _nested(
            [(name, leaf(torch.as_tensor(value))) for name, value in optimizer_state(model)]),
        "metrics_variables": _nested([(v.path, leaf(v)) for v in model.metrics_variables]),
    }


def set_state_tree(model, state_tree: dict) -> None:
    """Assign the values of a tree from `get_state_tree` (or Keras'); paths the model does not
    have are ignored, as Keras does."""
    from kestrel.layers.weights import assign_keras_value
    from kestrel.saving.keras_weights import optimizer_state, restore_optimizer_state

    entries = {id(getattr(o, a)): (o, a) for o, a in model._weight_entries()}
    for kind, subtree in state_tree.items():
        flat = _flatten(subtree)
        if kind in ("trainable_variables", "non_trainable_variables"):
            for variable in getattr(model, kind):
                if variable.path in flat:
                    assign_keras_value(*entries[id(variable)], flat[variable.path])
        elif kind == "optimizer_variables":
            state = optimizer_state(model)
            if state and any(name in flat for name, _ in state):
                restore_optimizer_state(model, [np.asarray(flat.get(name, value))
                                                for name, value in state])
        elif kind == "metrics_variables":
            for variable in model.metrics_variables:
                if variable.path in flat:
                    with torch.no_grad():
                        variable.copy_(_as_value(flat[variable.path], variable))
        else:
            raise ValueError(f"Unknown variable name: {short_repr(kind)}")


def _weight_values(model) -> dict:
    """`id(variable) -> function returning its Keras-layout value` for the model's weights."""
    from kestrel.layers.weights import keras_value

    return {id(getattr(o, a)): (lambda o=o, a=a: keras_value(o, a))
            for o, a in model._weight_entries()}


def _nested(pairs: list) -> dict:
    seen, tree = set(), {}
    for path, value in pairs:
        if path in seen:
            raise ValueError(f"The following variable path is found twice in the model: "
                             f"'{path}'. `get_state_tree()` can only be called when all "
                             "variable paths are unique. Make sure to give unique names to "
                             "your layers (and other objects).")
        seen.add(path)
        *parents, last = path.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
