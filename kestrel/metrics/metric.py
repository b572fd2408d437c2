"""The `Metric` base class: state in torch tensors that follow the device of the inputs."""
from __future__ import annotations

import contextlib
import functools
import warnings

import torch

from kestrel import config
from kestrel.layers.naming import to_snake_case, unique_name
from kestrel.losses.loss import as_tensor
from kestrel.variables import wrap as wrap_variable

_ZEROS = (None, "zeros", "Zeros")


def _input_device(args: tuple, kwargs: dict):
    """The device of the first tensor among y_pred, y_true (or values), then keyword inputs."""
    if len(args) > 1 and type(args[1]) is torch.Tensor:
        return args[1].device
    for x in (*args[1:2], *args[:1], kwargs.get("y_pred"), kwargs.get("y_true"),
              kwargs.get("values")):
        if isinstance(x, torch.Tensor):
            return x.device
    return None


def _follow_input_device(update_state):
    """Wrap `update_state`: move the state to the inputs' device, run without autograd."""

    @functools.wraps(update_state)
    def wrapper(self, *args, **kwargs):
        device = _input_device(args, kwargs)
        if device is not None and device != self._device:
            self._move_to(device)
        if not torch.is_grad_enabled():  # the trainer updates metrics under no_grad already
            return update_state(self, *args, **kwargs)
        with torch.no_grad():
            return update_state(self, *args, **kwargs)

    wrapper._follows_device = True
    return wrapper


def initial_value(initializer, shape, dtype: torch.dtype, device) -> torch.Tensor:
    """A tensor filled by `initializer`: a number, an initializer name, or a Keras-style callable."""
    shape = tuple(shape)
    if initializer in _ZEROS:
        return torch.zeros(shape, dtype=dtype, device=device)
    if initializer in ("ones", "Ones"):
        return torch.ones(shape, dtype=dtype, device=device)
    if isinstance(initializer, (int, float)):
        return torch.full(shape, initializer, dtype=dtype, device=device)
    if isinstance(initializer, str):
        from kestrel import initializers

        initializer = initializers.get(initializer)
    if callable(initializer):
        return as_tensor(initializer(shape, dtype=config.dtype_name(dtype)), dtype, device)
    raise ValueError("Metric variables take an initializer name, a number or a callable. "
                     f"Received: initializer={initializer!r}")


class Metric:
    """Base class of stateful metrics.

    Subclasses create their state in `__init__` with `add_variable`, accumulate it in place in
    `update_state` (e.g. `self.total.assign_add(x)`), and compute `result()` from it. The state lives
    on the device of the latest inputs: `update_state` moves every tensor attribute there when
    the device changes, and runs without autograd. Nothing here synchronizes with the host.

    Args:
        name: Name of the metric; defaults to the class name in snake case, numbered per
            session as Keras does (`auc`, `auc_1`, ... until `clear_session()`).
        dtype: Dtype of the state and the result; defaults to `floatx()`.

    Example:
    >>> import torch, kestrel
    >>> m = kestrel.metrics.Mean()
    >>> m.update_state(torch.tensor([1.0, 2.0, 3.0]))
    >>> float(m.result())
    2.0
    """

    _kestrel_metric = True  # layers index the attributes holding one (Layer.__setattr__)

    def __init__(self, name=None, dtype=None):
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self._torch_dtype = config.to_torch_dtype(dtype)
        self._device = config.device()
        self._variables: list[torch.Tensor] = []
        self._initializers: list = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        update_state = cls.__dict__.get("update_state")
        if update_state is not None and not getattr(update_state, "_follows_device", False):
            cls.update_state = _follow_input_device(update_state)

    @property
    def dtype(self) -> str:
        return config.dtype_name(self._torch_dtype)

    @property
    def variables(self) -> list[torch.Tensor]:
        """The state tensors, in creation order."""
        return list(self._variables)

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="sum", name=None):
        """Create a state `Variable` on the metric's device and track it in `variables`.

        Args:
            shape: Shape of the tensor.
            initializer: a number, an initializer name ("zeros"), or a callable
                `(shape, dtype) -> array`.
            dtype: Its dtype; defaults to the metric's dtype.
            aggregation: How replicas combine it; Kestrel's metric state always sums.
            name: Its name; its path is `<metric name>/<name>`.
        """
        dtype = self._torch_dtype if dtype is None else config.to_torch_dtype(dtype)
        name = name or f"variable_{len(self._variables)}"
        value = wrap_variable(initial_value(initializer, shape, dtype, self._device),
                              trainable=False, name=name, path=f"{self.name}/{name}",
                              aggregation=aggregation)
        self._variables.append(value)
        self._initializers.append(initializer)
        return value

    def add_weight(self, *args, **kwargs):
        """Keras 3's `add_weight(shape=(), initializer=None, dtype=None, name=None)`: a
        scalar unless `shape` is given, zeros unless an initializer is. Keras 2's order, the
        name first (`add_weight("tp", shape=(), aggregation=..., synchronization=...,
        initializer=..., dtype=...)`), is read when the first argument is a string."""
        if args and isinstance(args[0], str):
            names = ("name", "shape", "aggregation", "synchronization", "initializer", "dtype")
        else:
            names = ("shape", "initializer", "dtype", "name")
        if len(args) > len(names):
            raise TypeError(f"Metric '{self.name}': add_weight takes at most {len(names)} "
                            f"positional arguments ({', '.join(names)}), got {len(args)}")
        for key, value in zip(names, args):
            if key in kwargs:
                raise TypeError(f"Metric '{self.name}': add_weight got `{key}` twice")
            kwargs[key] = value
        kwargs.pop("synchronization", None)  # Kestrel's metric state is read on one device
        shape = kwargs.pop("shape", ())
        initializer = kwargs.pop("initializer", None)
        return self.add_variable(shape, "zeros" if initializer is None else initializer,
                                 **kwargs)

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state().")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result().")

    def reset_state(self) -> None:
        """Refill every state tensor with its initial value, in place."""
        with torch.no_grad():
            for value, initializer in zip(self._variables, self._initializers):
                if initializer in _ZEROS:
                    value.zero_()
                else:
                    value.copy_(initial_value(initializer, value.shape, value.dtype,
                                              value.device))

    def reset_states(self) -> None:
        """tf.keras 2's name of `reset_state` (deprecated there since 2.5)."""
        warnings.warn("`Metric.reset_states()` is deprecated; use `reset_state()`.",
                      DeprecationWarning, stacklevel=2)
        self.reset_state()

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        result = self.result()
        if isinstance(result, torch.Tensor):  # tf.keras 2's mark: `add_metric(result)` reads it
            result._metric_obj = self
        return result

    # ------------------------------------------------------------------ stateless (Keras 3)
    def stateless_update_state(self, metric_variables, *args, **kwargs) -> list[torch.Tensor]:
        """`update_state` on the given state values; returns the new values (the metric's own
        state is left unchanged).

        Example: `state = m.stateless_update_state(m.variables, y_true, y_pred)`.
        """
        with self._state_swapped_in(metric_variables):
            self.update_state(*args, **kwargs)
            return [v.detach().clone() for v in self._variables]

    def stateless_result(self, metric_variables):
        """`result()` computed from the given state values instead of the metric's own."""
        with self._state_swapped_in(metric_variables):
            result = self.result()
            if isinstance(result, dict):
                return {k: _detached_copy(v) for k, v in result.items()}
            return _detached_copy(result)

    def stateless_reset_state(self) -> list[torch.Tensor]:
        """The initial state values, as `reset_state()` would set them (the state is kept)."""
        with self._state_swapped_in(self._variables):
            self.reset_state()
            return [v.detach().clone() for v in self._variables]

    @contextlib.contextmanager
    def _state_swapped_in(self, values):
        """Inside, the state tensors hold `values`; the previous values come back after."""
        values = list(values)
        if len(values) != len(self._variables):
            raise ValueError(
                "Argument `metric_variables` must be a list of tensors corresponding 1:1 to "
                f"{type(self).__name__}().variables. Received list with length {len(values)}, "
                f"but expected {len(self._variables)} variables.")
        kept = [v.detach().clone() for v in self._variables]
        with torch.no_grad():
            for variable, value in zip(self._variables, values):
                variable.copy_(as_tensor(value, variable.dtype, variable.device))
        try:
            yield
        finally:
            with torch.no_grad():
                for variable, value in zip(self._variables, kept):
                    variable.copy_(value)

    def _move_to(self, device: torch.device) -> None:
        """Move the state and every other tensor attribute to `device`, keeping their identity."""
        tensors = {id(t): t for t in (*self._variables, *vars(self).values())
                   if isinstance(t, torch.Tensor)}
        for tensor in tensors.values():
            tensor.data = tensor.data.to(device)
        self._device = device

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _detached_copy(value):
    return value.detach().clone() if isinstance(value, torch.Tensor) else value
