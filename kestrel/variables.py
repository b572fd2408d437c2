"""`Variable`: Keras' Variable API on a torch tensor.

A trainable variable is a `ParameterVariable`, an `nn.Parameter`; a non-trainable one is a plain
`Variable`, which layers register as a buffer. Like `nn.Parameter`, both disable
`__torch_function__`: ops on a variable cost what ops on a Parameter cost and return plain
tensors. `.dtype` and `.shape` stay torch's (a `torch.dtype`, a `torch.Size`, which is a tuple
of ints), so torch code that reads them keeps working; the values a layer stores in a
torch-friendly layout (conv and recurrent kernels) are seen in that layout here, while
`get_weights()` speaks Keras' layout.
"""
from __future__ import annotations

import contextlib
import copy
import operator

import numpy as np
import torch
from torch import nn

from kestrel import config
from kestrel.registry.bounds import short_repr

_DISCARDING = [0]  # depth of the `discarding_assignments` scopes now open
_STATELESS: list = []  # the `StatelessScope`s now open, innermost last
_SYNCHRONIZATIONS = (None, "none", "on_read", "on_write", "auto")
_AGGREGATIONS = (None, "none", "mean", "sum", "only_first_replica")


@contextlib.contextmanager
def discarding_assignments():
    """Inside, `assign*` check their argument but change nothing: symbolic calls run `call`
    on placeholders to learn shapes, and a `self.count.assign_add(1)` there must not count."""
    _DISCARDING[0] += 1
    try:
        yield
    finally:
        _DISCARDING[0] -= 1


def assignments_discarded() -> bool:
    """Whether a `discarding_assignments` scope is open (a symbolic call's placeholder run)."""
    return bool(_DISCARDING[0])


class Variable(torch.Tensor):
    """A Keras Variable that torch sees as a tensor (trainable ones as an `nn.Parameter`).

    Args:
        initializer: the initial value (array, tensor, number), or an initializer (name or
            object) called with `shape` and `dtype`.
        shape: the shape, required with an initializer.
        dtype: the dtype; defaults to the value's dtype, or `floatx()` with an initializer.
        trainable: whether training updates it (then it is an `nn.Parameter`).
        aggregation: how replicas combine it (kept for Keras compatibility).
        synchronization: when replicas sync it (`"auto"`, `"none"`, `"on_read"`,
            `"on_write"`; kept for Keras compatibility).
        name: its name; generated (`variable`, `variable_1`, ...) when omitted.

    Example:
    >>> import numpy as np, kestrel
    >>> v = kestrel.Variable(np.zeros((2,), "float32"), name="counter")
    >>> v.assign_add(np.ones(2, "float32")).numpy()
    array([1., 1.], dtype=float32)
    >>> v.path
    'counter'
    """

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __new__(cls, initializer, shape=None, dtype=None, trainable: bool = True,
                autocast: bool = True, aggregation: str | None = "none",
                synchronization: str | None = "auto", name: str | None = None, **kwargs):
        from kestrel.layers import naming

        name = name or naming.unique_name("variable")
        if not isinstance(name, str) or "/" in name:
            raise ValueError("Argument `name` must be a string and cannot contain character "
                             f"`/`. Received: name={name}")
        if synchronization not in _SYNCHRONIZATIONS:
            raise ValueError("Invalid value for argument `synchronization`. Expected one of "
                             "`None`, `'none'`, `'on_read'`, `'on_write'`, `'auto'`. "
                             f"Received: synchronization={short_repr(synchronization)}")
        if aggregation not in _AGGREGATIONS:
            raise ValueError("Invalid value for argument `aggregation`. Expected one of `None`, "
                             "`'none'`, `'mean'`, `'sum'`, `'only_first_replica'`. "
                             f"Received: aggregation={short_repr(aggregation)}")
        if isinstance(dtype, str) and dtype.startswith("mixed_"):  # a policy, not a dtype
            raise ValueError(f"Invalid dtype: {dtype}")
        from kestrel.backend.scopes import current_path

        value = _initial_value(initializer, shape, dtype)
        parent = current_path()
        variable = wrap(value, trainable=trainable, name=name,
                        path=f"{parent}/{name}" if parent else name,
                        aggregation=aggregation or "none")
        variable._synchronization = synchronization or "none"
        return variable

    def __init__(self, *args, **kwargs):  # the work is done in __new__
        pass

    # ------------------------------------------------------------------ Keras API
    @property
    def value(self) -> torch.Tensor:
        """The tensor itself: torch's view of the variable (`v.value.grad` after backward)."""
        return self

    @property
    def name(self) -> str:
        return self._keras_name

    @property
    def path(self) -> str:
        """`"<outer scopes>/<layer name>/<name>"` for a layer's weight; a standalone variable's
        name under the name scopes open when it was created."""
        return self._keras_path

    @property
    def synchronization(self) -> str:
        """How replicas synchronize it (`"auto"` unless given; Kestrel does not use it)."""
        return self.__dict__.get("_synchronization", "auto")

    @property
    def regularizer(self):
        """A callable giving this variable's penalty, or None (`add_weight(regularizer=)`)."""
        return self.__dict__.get("_regularizer")

    @regularizer.setter
    def regularizer(self, value) -> None:
        self._regularizer = _callable_or_none("regularizer", "keras.regularizers.Regularizer",
                                              value)

    @property
    def constraint(self):
        """A callable applied after each optimizer update, or None (`add_weight(constraint=)`)."""
        return self.__dict__.get("_constraint")

    @constraint.setter
    def constraint(self, value) -> None:
        self._constraint = _callable_or_none("constraint", "keras.constraints.Constraint", value)

    @property
    def overwrite_with_gradient(self) -> bool:
        """Whether an optimizer should replace the value with its gradient (float8 scales)."""
        return self.__dict__.get("_overwrite_with_gradient", False)

    @overwrite_with_gradient.setter
    def overwrite_with_gradient(self, value) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"`overwrite_with_gradient` must be a boolean. Received: "
                            f"{short_repr(value)}")
        self._overwrite_with_gradient = value

    @property
    def trainable(self) -> bool:
        return False

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if value:
            raise ValueError(
                f"Variable '{self.path}' is non-trainable (a torch buffer) and cannot become "
                "trainable; create it with `trainable=True`. Received: trainable=True")

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """A NumPy copy of the value (bfloat16 is returned as float32); `force` is accepted
        as `Tensor.numpy` takes it (a copy is always detached and on the host)."""
        tensor = self.detach()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.cpu().numpy().copy()

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    def assign(self, value) -> "Variable":
        """Set the value in place (no autograd history); the shapes must match."""
        value = self._as_tensor(value)
        if tuple(value.shape) != tuple(self.size()):
            raise ValueError(self._shape_error("assign", value))
        if _DISCARDING[0]:
            return self
        if _STATELESS:
            _STATELESS[-1].track(self)
        with torch.no_grad():
            self.copy_(value)
        return self

    def assign_add(self, value) -> "Variable":
        """`self += value` in place (no autograd history); `value` broadcasts to the shape."""
        return self._update(value, "assign_add", 1)

    def assign_sub(self, value) -> "Variable":
        """`self -= value` in place (no autograd history); `value` broadcasts to the shape."""
        return self._update(value, "assign_sub", -1)

    def _update(self, value, method: str, sign: int) -> "Variable":
        if not (isinstance(value, (int, float)) and (self.is_floating_point()
                                                     or isinstance(value, int))):
            value = self._as_tensor(value)
            if torch.broadcast_shapes(value.shape, self.size()) != self.size():
                raise ValueError(self._shape_error(method, value))
        if _DISCARDING[0]:
            return self
        if _STATELESS:
            _STATELESS[-1].track(self)
        with torch.no_grad():
            self.add_(value, alpha=sign)
        return self

    def _as_tensor(self, value) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(np.asarray(value))
        return value.to(device=self.device, dtype=self.dtype)

    def _shape_error(self, method: str, value: torch.Tensor) -> str:
        return (f"The shape of the value given to `variable.{method}(value)` must match the "
                f"variable's: variable.shape={tuple(self.size())} (path={self.path}). "
                f"Received: value.shape={tuple(value.shape)}")

    def __repr__(self, *, tensor_contents=None) -> str:
        return (f"<Variable path={self.path}, shape={tuple(self.size())}, "
                f"dtype={config.dtype_name(self.dtype)}, value={self.numpy()}>")

    # ------------------------------------------------------------------ copying, pickling
    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = _rebuild(type(self), self.data.clone(memory_format=torch.preserve_format),
                          self.requires_grad, copy.deepcopy(self.__dict__, memo))
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol):
        return _rebuild, (type(self), self.data, self.requires_grad, dict(self.__dict__))


def _reflected(name: str, numpy_op):
    """`array <op> variable` for a NumPy `array` on the left computes in NumPy, as with a Keras
    Variable (torch's own reflected operator refuses arrays); other operands go to torch."""
    torch_op = getattr(torch.Tensor, name)

    def op(self, other):
        if isinstance(other, np.ndarray):
            return numpy_op(other, self.numpy())
        return torch_op(self, other)

    op.__name__ = name
    return op


for _name, _op in (("__radd__", operator.add), ("__rsub__", operator.sub),
                   ("__rmul__", operator.mul), ("__rtruediv__", operator.truediv),
                   ("__rfloordiv__", operator.floordiv), ("__rmod__", operator.mod),
                   ("__rpow__", operator.pow), ("__rmatmul__", operator.matmul)):
    setattr(Variable, _name, _reflected(_name, _op))
del _name, _op


class ParameterVariable(Variable, nn.Parameter):
    """A trainable `Variable`: an `nn.Parameter`, which `Module` registers as a parameter."""

    @property
    def trainable(self) -> bool:
        return self.requires_grad

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.requires_grad_(bool(value))


def _callable_or_none(attribute: str, example: str, value):
    """`value` when it is callable or None, else Keras' ValueError for `attribute`."""
    if value is not None and not callable(value):
        raise ValueError(f"Invalid value for attribute `{attribute}`. Expected a callable (such "
                         f"as a `{example}` instance) or `None`. "
                         f"Received: {attribute}={short_repr(value)}")
    return value


def wrap(tensor: torch.Tensor, *, trainable: bool, name: str, path: str,
         requires_grad: bool | None = None, aggregation: str = "none") -> Variable:
    """`tensor`'s data as a `ParameterVariable` (trainable) or a `Variable` named `name`."""
    cls = ParameterVariable if trainable else Variable
    grad = bool(trainable if requires_grad is None else requires_grad)
    return _rebuild(cls, tensor.detach(), grad and trainable,
                    {"_keras_name": name, "_keras_path": path, "aggregation": aggregation})


def _rebuild(cls, data: torch.Tensor, requires_grad: bool, state: dict) -> Variable:
    variable = torch.Tensor._make_subclass(cls, data, requires_grad)
    variable.__dict__.update(state)
    return variable


def _fits_int32(array: np.ndarray) -> bool:
    return array.size == 0 or (int(array.min()) >= -2**31 and int(array.max()) < 2**31)


def _initial_value(initializer, shape, dtype) -> torch.Tensor:
    """The first value of a standalone variable, on Kestrel's default device."""
    from kestrel import initializers

    if isinstance(initializer, str) or callable(initializer):
        if shape is None:
            raise ValueError("When creating a Variable from an initializer, the `shape` "
                             f"argument should be specified. Received: initializer="
                             f"{type(initializer).__name__} and shape=None")
        torch_dtype = config.to_torch_dtype(dtype or config.floatx())
        value = initializers.get(initializer)(tuple(int(d) for d in shape), dtype=torch_dtype)
        if not isinstance(value, torch.Tensor):  # a plain function may return an array
            value = torch.as_tensor(np.asarray(value), dtype=torch_dtype)
    else:
        if isinstance(initializer, torch.Tensor):
            value = initializer.detach().clone()
        else:
            array = np.asarray(initializer)
            if dtype is None and array.dtype == np.float64 \
                    and not isinstance(initializer, np.ndarray):
                array = array.astype(config.floatx())  # Python floats take floatx, as Keras
            elif dtype is None and array.dtype == np.int64 and _fits_int32(array) \
                    and not isinstance(initializer, (np.ndarray, np.generic)):
                array = array.astype(np.int32)  # and Python ints int32 (a step counter)
            value = torch.as_tensor(np.array(array))  # a copy; views like x[..., ::-1] too
        if dtype is not None:
            value = value.to(config.to_torch_dtype(dtype))
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ValueError(f"Variable: the initial value has shape {tuple(value.shape)}, "
                             f"but `shape` says otherwise. Received: shape={tuple(shape)}")
    return value.to(config.device())
