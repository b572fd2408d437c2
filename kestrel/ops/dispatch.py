"""One decorator makes a plain torch function a Keras op, usable eagerly and symbolically.

    @keras_op
    def mean(x, axis=None, keepdims=False): ...

On tensors, arrays and Python values the function runs as written. When any argument (or any
item of a list/tuple argument) is a `KerasTensor`, the call is recorded instead: a `FunctionOp`
node in the functional graph, whose output shape and dtype come from running the same function
on placeholders. Every op is written once; there is no class per op.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys

from kestrel.layers import graph_closures
from kestrel.layers.node import KerasTensor

OPS: dict[str, object] = {}  # qualified name ("mean", "image.resize") -> op
_BY_MODULE: dict[str, list[str]] = {}


def _symbolic(args, kwargs) -> bool:
    for value in (*args, *kwargs.values()):
        kind = type(value)
        if kind is KerasTensor:
            return True
        if (kind is list or kind is tuple) and any(type(v) is KerasTensor for v in value):
            return True
    return False


def _bind_constants(fn, args, kwargs):
    """Split a symbolic call as Keras splits it between op class and node: the tensors (and
    positional `x*`/`key` arguments) stay call arguments; other constants (`axis`, `shape`,
    `dtype`, ...) are bound to the op, which Keras saves as its class config."""
    signature = _signature(fn)
    try:
        binding = signature.bind(*args, **kwargs)
    except TypeError:
        return args, {}, kwargs  # the op itself reports the bad call
    call_args, bound, call_kwargs = [], {}, {}
    positional = True
    for name, value in binding.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            call_args.extend(value)
            continue
        if kind is inspect.Parameter.VAR_KEYWORD:
            call_kwargs.update(value)
            continue
        symbolic = _symbolic((value,), {})
        if positional and kind is not inspect.Parameter.KEYWORD_ONLY and (
                symbolic or _DATA_ARGUMENT.fullmatch(name)):
            call_args.append(value)
            continue
        positional = False
        (call_kwargs if symbolic else bound)[name] = value
    return tuple(call_args), bound, call_kwargs


_DATA_ARGUMENT = re.compile(r"x\d?|xs|key")  # the operands Keras passes to its op's call


@functools.cache
def _signature(fn) -> inspect.Signature:
    return inspect.signature(fn)


def keras_op(fn=None, *, name: str | None = None, prefix: str = ""):
    """Register `fn` as the op `prefix + name` and give it the symbolic path."""
    if fn is None:
        return functools.partial(keras_op, name=name, prefix=prefix)
    op_name = prefix + (name or fn.__name__)

    @functools.wraps(fn)
    def op(*args, **kwargs):
        if _symbolic(args, kwargs):
            values = graph_closures.values_for(args, kwargs)
            if values is not None:  # graph tensors read inside a call (Keras 2)
                return fn(*values[0], **values[1])
            from kestrel.ops.operation import FunctionOp

            args, bound, kwargs = _bind_constants(fn, args, kwargs)
            # straight to the symbolic path: the first operand may be a tensor (`v + x`)
            return FunctionOp(op_name, bound=bound)._symbolic_call(args, kwargs)
        return fn(*args, **kwargs)

    op.raw = fn  # the function itself, for ops that call each other on tensors
    op.op_name = op_name
    OPS[op_name] = op
    _BY_MODULE.setdefault(fn.__module__, []).append(name or fn.__name__)
    return op


def exported(module_name: str) -> list[str]:
    """The public names a family module registered (its `__all__`)."""
    return list(_BY_MODULE.get(module_name, []))


def get_op(name: str):
    """The op registered under `name`, importing the op families on first use."""
    if name not in OPS:
        module = "kestrel.backend.keras2" if name.startswith("backend.") else "kestrel.ops"
        importlib.import_module(module)  # registers the family's ops
    if name not in OPS:
        raise ValueError(f"Unknown Kestrel op. Received: function={name!r}")
    return OPS[name]


def module_all() -> list[str]:
    return exported(sys._getframe(1).f_globals["__name__"])
