"""Keras' dtype names and its type-promotion rules (`result_type`), shared by every op.

Promotion follows Keras 3's lattice (the one JAX uses): bool < weak int < u/int types < weak float
< bfloat16/float16 < float32 < float64 < complex. Python `int`/`float` are "weak": they take the
other operand's type. On torch, results that would be 64-bit resolve to 32-bit, as Keras does.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from kestrel import config

INT_TYPES = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64")
FLOAT_TYPES = ("bfloat16", "float16", "float32", "float64")
COMPLEX_TYPES = ("complex64", "complex128")
ALLOWED_DTYPES = ("bool", *INT_TYPES, *FLOAT_TYPES, *COMPLEX_TYPES, "string",
                  "float8_e4m3fn", "float8_e5m2")

_PYTHON_TYPES = {bool: "bool", int: "int32", float: "float32", str: "string",
                 complex: "complex64", "int": "int32"}

# Each type and the types directly above it; "int"/"float" are the weak Python types.
_LATTICE = {
    "bool": ("int",), "int": ("uint8", "int8", "complex64"),
    "uint8": ("int16", "uint16"), "uint16": ("int32", "uint32"), "uint32": ("int64", "uint64"),
    "uint64": ("float",), "int8": ("int16",), "int16": ("int32",), "int32": ("int64",),
    "int64": ("float",), "float": ("bfloat16", "float16"), "bfloat16": ("float32",),
    "float16": ("float32",), "float32": ("float64", "complex64"), "float64": ("complex128",),
    "complex64": ("complex128",), "complex128": (),
}
_TO_32_BIT = {"int64": "int32", "uint64": "uint32", "float64": "float32",
              "complex128": "complex64"}


def _upper_bounds() -> dict[str, frozenset]:
    bounds = {}
    for node in _LATTICE:
        seen, todo = {node}, [node]
        while todo:
            for above in _LATTICE[todo.pop()]:
                if above not in seen:
                    seen.add(above)
                    todo.append(above)
        bounds[node] = frozenset(seen)
    return bounds


_BOUNDS = _upper_bounds()


def standardize_dtype(dtype) -> str:
    """The Keras name of a dtype given as a string, Python type, NumPy or torch dtype."""
    if dtype is None:
        return config.floatx()
    dtype = _PYTHON_TYPES.get(dtype, dtype)
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).split(".")[-1]
    elif hasattr(dtype, "name"):
        dtype = dtype.name
    elif isinstance(dtype, type):
        dtype = np.dtype(dtype).name
    if dtype == "str" or (isinstance(dtype, str) and dtype.startswith(("str", "<U", "bytes"))):
        dtype = "string"
    aliases = {"float": "float32", "double": "float64", "half": "float16", "long": "int64"}
    dtype = aliases.get(dtype, dtype)
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"Invalid dtype: {dtype}")
    return dtype


def is_float_dtype(dtype) -> bool:
    return standardize_dtype(dtype).startswith(("float", "bfloat"))


def is_int_dtype(dtype) -> bool:
    return standardize_dtype(dtype).startswith(("int", "uint"))


@functools.lru_cache(maxsize=1024)
def _least_upper_bound(nodes: frozenset) -> str:
    common = frozenset.intersection(*(_BOUNDS[n] for n in nodes))
    least = (common & nodes) or {c for c in common if common <= _BOUNDS[c]}
    if len(least) != 1:
        raise ValueError(
            f"Input dtypes {tuple(sorted(nodes))} have no available implicit dtype promotion "
            "path. Try explicitly casting inputs to the desired output type.")
    return next(iter(least))


def _weak_name(dtype: str) -> str:
    for kind in ("complex", "float", "int"):
        if kind in dtype:
            return "float" if dtype == "bfloat16" else kind
    return dtype


def result_type(*dtypes) -> str:
    """The dtype Keras gives the result of combining `dtypes` (`int` and `float` are weak).

    >>> result_type("int32", "float32"), result_type("bfloat16", int)
    ('float32', 'bfloat16')
    """
    if not dtypes:
        return config.floatx()
    if any(d in ("float8_e4m3fn", "float8_e5m2") for d in dtypes):
        raise ValueError("There is no implicit conversions from float8 dtypes to others. "
                         f"You must cast it internally. Received: {dtypes}")
    weak = [d is int or d is float for d in dtypes]
    names = [standardize_dtype(d) for d in dtypes]
    if len(names) == 1:
        out, out_weak = names[0], weak[0]
    elif len(set(names)) == 1 and not all(weak):
        out, out_weak = names[0], False
    elif all(weak):
        out, out_weak = _least_upper_bound(frozenset(names)), True
    else:
        nodes = frozenset(_weak_name(n) if w and n != "bool" else n for n, w in zip(names, weak))
        out = _least_upper_bound(nodes)
        out_weak = out in ("int", "float", "complex")
    if out_weak and out != "bool":
        bits = config.floatx()[-2:]
        kind = "uint" if out.startswith("u") else "int" if out.startswith("int") else "float"
        out = f"{kind}{bits}"
    return _TO_32_BIT.get(out, out)
