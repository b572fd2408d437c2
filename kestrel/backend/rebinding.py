"""TensorFlow's augmented assignment for user code run on torch tensors.

TensorFlow tensors are immutable, so in Keras 2 code `a *= b` binds `a` to a new tensor
(`eij += self.b` and `a /= K.sum(a, axis=1, keepdims=True)` in custom layers, `y_pred /=
K.sum(y_pred, axis=-1, keepdims=True)` in losses). Torch writes into `a` instead, which breaks
the backward pass where autograd saved `a` (the output of `exp`, `tanh` or a softmax) and
changes every other reference to it. A user's layer `call`, `Lambda` function, loss or metric
that assigns with `op=` runs in `rebinding()`, where the augmented assignments written in
user code make new tensors, as TensorFlow's do; explicit in-place methods (`x.mul_(y)`) and
Kestrel's and torch's own code keep torch's meaning. Other code runs as it is.
"""
from __future__ import annotations

import contextlib
import dis
import functools
import sys
import threading
import types

import torch
from torch.overrides import TorchFunctionMode

_OPERATORS = ("+", "-", "*", "/", "//", "%", "**", "&", "|", "^", "<<", ">>")


def _instruction(source: str) -> tuple[int, int]:
    """(opcode, argument) of the operator instruction `source` compiles to."""
    for instruction in dis.get_instructions(compile(source, "<operator>", "exec")):
        if instruction.opname.startswith(("BINARY_", "INPLACE_")):
            return instruction.opcode, instruction.arg or 0
    raise AssertionError(source)


# the instructions of `a op= b`, as this Python compiles them, and the out-of-place torch
# methods for the in-place ones torch reports them as
_AUGMENTED = {_instruction(f"a {op}= b") for op in _OPERATORS}
_OUT_OF_PLACE = {
    "add_": torch.Tensor.add, "sub_": torch.Tensor.sub, "mul_": torch.Tensor.mul,
    "div_": torch.Tensor.div, "floor_divide_": torch.Tensor.floor_divide,
    "remainder_": torch.Tensor.remainder, "pow_": torch.Tensor.pow,
    "__iand__": torch.Tensor.__and__,
    "__ior__": torch.Tensor.__or__, "__ixor__": torch.Tensor.__xor__,
    "__ilshift__": torch.Tensor.__lshift__, "__irshift__": torch.Tensor.__rshift__,
}
_LIBRARIES = ("kestrel", "torch")


def _library(frame) -> str:
    return frame.f_globals.get("__name__", "").partition(".")[0]


def _runs_augmented_assignment(frame) -> bool:
    """Whether the code that called torch from `frame` (torch's own Python wrappers skipped,
    as `**=` goes through one) is user code running `a op= b`."""
    while frame is not None and _library(frame) == "torch":
        frame = frame.f_back
    if frame is None or _library(frame) in _LIBRARIES:
        return False
    code = frame.f_code.co_code
    return (code[frame.f_lasti], code[frame.f_lasti + 1]) in _AUGMENTED


class _RebindingMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        out_of_place = _OUT_OF_PLACE.get(getattr(func, "__name__", None))
        if out_of_place is not None and _runs_augmented_assignment(sys._getframe(1)):
            func = out_of_place
        return func(*args, **(kwargs or {}))


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _assigns_augmented(code: types.CodeType) -> bool:
    return any((i.opcode, i.arg or 0) in _AUGMENTED
               for c in _code_objects(code) for i in dis.get_instructions(c))


def _user_function(obj):
    """The Python function behind `obj` (a function or bound method) if user code wrote it."""
    function = getattr(obj, "__func__", obj)
    module = getattr(function, "__module__", None) or ""
    if not isinstance(function, types.FunctionType) or module.partition(".")[0] in _LIBRARIES:
        return None
    return function


@functools.lru_cache(maxsize=1024)
def _needs_rebinding(function: types.FunctionType, owner: type | None) -> bool:
    """Whether `function`, the other methods of its user-written `owner` classes or the user
    functions it names assign with `op=`."""
    functions = [function]
    for cls in owner.__mro__ if owner is not None else ():
        functions += [f for f in vars(cls).values() if _user_function(f) is not None]
    functions += [f for f in (function.__globals__.get(n) for n in function.__code__.co_names)
                  if _user_function(f) is not None]
    return any(_assigns_augmented(_user_function(f).__code__) for f in functions)


@functools.lru_cache(maxsize=1024)
def layer_needs_rebinding(cls: type) -> bool:
    """Whether a user wrote `cls.call` (or what it calls) with augmented assignments."""
    function = _user_function(cls.call)
    return function is not None and _needs_rebinding(function, cls)


def function_needs_rebinding(fn) -> bool:
    """Whether a user wrote the function `fn` (or what it calls) with augmented assignments."""
    function = _user_function(fn)
    return function is not None and _needs_rebinding(function, None)


_STATE = threading.local()


@contextlib.contextmanager
def rebinding():
    """Augmented assignments in user code make new tensors inside (see the module docstring)."""
    if getattr(_STATE, "active", False):
        yield
        return
    _STATE.active = True
    try:
        with _RebindingMode():
            yield
    finally:
        _STATE.active = False
