"""Symbolic tensors and the call nodes that link layers into a graph.

Calling a layer on a `KerasTensor` records a `Node` (which layer, on which symbolic tensors,
with which other arguments) and returns new `KerasTensor`s carrying the inferred shape. A
functional model is the set of nodes between its inputs and outputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kestrel import config, tree
from kestrel.layers.naming import unique_name


def is_string_dtype(dtype) -> bool:
    """Keras' `"string"` dtype (torch has none: string data stays a NumPy array)."""
    return isinstance(dtype, str) and dtype in ("string", "str")


def is_string_array(value) -> bool:
    """A NumPy array of Python/NumPy strings (`str`, `bytes`, or objects holding them)."""
    if not isinstance(value, np.ndarray):
        return False
    if value.dtype.kind in "US":
        return True
    return value.dtype == object and value.size > 0 and isinstance(value.flat[0], (str, bytes))


class KerasTensor:
    """A symbolic tensor: a shape (None for unknown sizes) and a dtype, no data."""

    # `_keras_mask` (a bool KerasTensor) is set only where a layer computes a mask, as in Keras
    __slots__ = ("shape", "dtype", "_keras_history", "_name", "_keras_mask", "_serial",
                 "__weakref__")
    created = 0  # how many were made: `_serial` orders them (see graph_closures)

    def __init__(self, shape, dtype="float32", name: str | None = None):
        self._serial = KerasTensor.created
        KerasTensor.created += 1
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = "string" if is_string_dtype(dtype) else \
            config.dtype_name(config.to_torch_dtype(dtype))
        self._keras_history: tuple | None = None  # (layer, node_index, tensor_index)
        self._name = name

    @property
    def name(self) -> str:
        """`keras_tensor`, `keras_tensor_1`, ... as Keras names symbolic tensors (a layer's
        outputs take theirs when recorded; a placeholder only if its name is read)."""
        if self._name is None:
            self._name = unique_name("keras_tensor")
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = value

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def _keras_shape(self) -> tuple:
        """The shape, under the private name Keras 2 scripts read (`x._keras_shape[-1]`)."""
        return self.shape

    @property
    def node(self) -> "Node":
        layer, node_index, _ = self._keras_history
        return layer._inbound_nodes[node_index]

    def __repr__(self) -> str:
        return (f"<KerasTensor shape={self.shape}, dtype={self.dtype}, sparse=False, "
                f"ragged=False, name={self.name}>")  # Keras' fields; Kestrel's are always dense

    def __len__(self):
        raise TypeError("A symbolic KerasTensor has no length; use .shape instead.")

    def __bool__(self):
        raise TypeError(
            "A symbolic KerasTensor cannot be used as a Python bool. Use layers to express "
            "conditional computation, or subclass Model and write `call`."
        )

    def __getitem__(self, key):
        return _call_op("get_item", self, key)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """A torch tensor (a `Variable`, say) on the left of an operator: the op is recorded,
        as `variable + keras_tensor` is in Keras."""
        op = _TORCH_OPERATORS.get(getattr(func, "__name__", None))
        if op is None or kwargs:
            return NotImplemented
        return _call_op(op, *args)

    def reshape(self, newshape):
        """`ops.reshape(self, newshape)` recorded in the graph."""
        return _call_op("reshape", self, newshape)

    def squeeze(self, axis=None):
        """`ops.squeeze(self, axis)` recorded in the graph."""
        return _call_op("squeeze", self, axis)


def _call_op(name: str, *args):
    from kestrel.ops.dispatch import get_op

    return get_op(name)(*args)


def _dunder(name: str, reflected: bool = False, unary: bool = False):
    if unary:
        return lambda self: _call_op(name, self)
    if reflected:
        return lambda self, other: _call_op(name, other, self)
    return lambda self, other: _call_op(name, self, other)


# Python operators on symbolic tensors record the matching `kestrel.ops` call.
for _method, _op in {"add": "add", "sub": "subtract", "mul": "multiply",
                     "truediv": "true_divide", "floordiv": "floor_divide", "mod": "mod",
                     "pow": "power", "matmul": "matmul", "and": "logical_and",
                     "or": "logical_or", "xor": "logical_xor"}.items():
    setattr(KerasTensor, f"__{_method}__", _dunder(_op))
    setattr(KerasTensor, f"__r{_method}__", _dunder(_op, reflected=True))
for _method, _op in {"lt": "less", "le": "less_equal", "gt": "greater",
                     "ge": "greater_equal"}.items():
    setattr(KerasTensor, f"__{_method}__", _dunder(_op))
for _method, _op in {"neg": "negative", "abs": "absolute", "invert": "logical_not"}.items():
    setattr(KerasTensor, f"__{_method}__", _dunder(_op, unary=True))
KerasTensor.__round__ = lambda self, ndigits=None: _call_op("round", self, ndigits or 0)
# torch's names for its operator methods, as `__torch_function__` receives them
_TORCH_OPERATORS = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "true_divide",
                    "floor_divide": "floor_divide", "remainder": "mod", "pow": "power",
                    "matmul": "matmul", "lt": "less", "le": "less_equal", "gt": "greater",
                    "ge": "greater_equal"}


class Node:
    """One call of a layer: the arguments it got and the tensors it produced."""

    def __init__(self, layer, call_args: tuple, call_kwargs: dict, outputs):
        self.layer = layer
        # copies of the structures, as Keras keeps: a caller may change the list it passed
        # or got back (`x = backbone(inputs); x[-1] = head(x[-1])`) without changing the graph
        call_args, call_kwargs, outputs = tree.map_structure(
            lambda leaf: leaf, (call_args, call_kwargs, outputs))
        self.call_args = call_args
        self.call_kwargs = call_kwargs
        # in Keras' order (dict arguments by sorted key): the graph's layer order follows it
        self.input_tensors = [t for t in tree.flatten((call_args, call_kwargs))
                              if isinstance(t, KerasTensor)]
        self.outputs = outputs
        self.output_tensors = [t for t in flatten(outputs) if isinstance(t, KerasTensor)]

    @property
    def parent_nodes(self) -> list["Node"]:
        return [t.node for t in self.input_tensors if t._keras_history is not None]

    @property
    def is_input(self) -> bool:
        return not self.input_tensors


def flatten(structure) -> list:
    """Flatten nested lists/tuples/dicts into a list of leaves (dicts in key order)."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in flatten(structure[key])]
    return [structure]


def map_structure(fn, structure):
    """Apply `fn` to every leaf of a nested list/tuple/dict, keeping the nesting."""
    if isinstance(structure, list):
        return [map_structure(fn, s) for s in structure]
    if isinstance(structure, tuple):
        return tuple(map_structure(fn, s) for s in structure)
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    return fn(structure)


def is_symbolic(structure) -> bool:
    """True when any leaf of the (shallowly nested) structure is a KerasTensor."""
    if isinstance(structure, KerasTensor):
        return True
    if isinstance(structure, (list, tuple)):
        return any(is_symbolic(s) for s in structure)
    if isinstance(structure, dict):
        return any(is_symbolic(s) for s in structure.values())
    return False


def shape_of(structure) -> Any:
    """The Keras shape (tuples, batch first) of every tensor in a structure."""
    def one(t):
        if isinstance(t, KerasTensor):
            return t.shape
        if isinstance(t, (torch.Tensor, np.ndarray)):
            return tuple(t.shape)
        return t
    return map_structure(one, structure)
