"""Turning op arguments into torch tensors: Keras' conversion and promotion rules in one place.

Every op converts its inputs here, so that NumPy arrays, Python scalars and lists behave as in
Keras (Python `float` -> floatx, `int` -> int32, NumPy arrays keep their dtype) and mixed inputs
are promoted with `kestrel.backend.result_type`.
"""
from __future__ import annotations

import numpy as np
import torch

from kestrel import config
from kestrel.backend.dtypes import result_type, standardize_dtype

_NAMES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
          "float64": torch.float64, "uint8": torch.uint8, "uint16": torch.uint16,
          "uint32": torch.uint32, "uint64": torch.uint64, "int8": torch.int8,
          "int16": torch.int16, "int32": torch.int32, "int64": torch.int64, "bool": torch.bool,
          "complex64": torch.complex64, "complex128": torch.complex128}


def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype of a Keras dtype name (None means floatx)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = standardize_dtype(dtype)
    if name not in _NAMES:
        raise ValueError(f"dtype {name!r} has no torch equivalent. Received: dtype={dtype!r}")
    return _NAMES[name]


def dtype_of(x):
    """Keras dtype of an op argument; Python `int`/`float` stay weak (the types themselves)."""
    if isinstance(x, torch.Tensor):
        return standardize_dtype(x.dtype)
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, (int, float)) and not isinstance(x, np.generic):
        return type(x)
    if isinstance(x, (np.ndarray, np.generic)):
        if isinstance(x, np.generic) and x.dtype.kind == "f":
            return config.floatx()
        return standardize_dtype(x.dtype)
    dtype = getattr(x, "dtype", None)
    if dtype is not None:
        return standardize_dtype(dtype)
    return standardize_dtype(convert_to_tensor(x).dtype)


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None, device=None) -> torch.Tensor:
    """A torch tensor from a tensor, Variable, NumPy array, Python scalar or nested list.

    Tensors keep their device; other inputs go to `device` (default: `kestrel.config.device()`).

    >>> convert_to_tensor([1.0, 2.0]).dtype, convert_to_tensor(3).dtype
    (torch.float32, torch.int32)
    """
    if sparse:
        raise ValueError("Kestrel has no sparse tensors. Received: sparse=True")
    target = None if dtype is None else torch_dtype(dtype)
    if isinstance(x, torch.Tensor):
        tensor = x.value if hasattr(x, "assign") and hasattr(x, "value") else x
        if device is not None and tensor.device != torch.device(device):
            tensor = tensor.to(device)
        return tensor if target is None or tensor.dtype == target else tensor.to(target)
    device = device if device is not None else config.device()
    if isinstance(x, (np.ndarray, np.generic)):
        if x.dtype.kind in "USO":
            raise ValueError(f"Invalid dtype: {x.dtype.name}. Strings are not tensors in "
                             "Kestrel: keep them in NumPy arrays or lists.")
        if isinstance(x, np.generic) and target is None and x.dtype.kind == "f":
            target = torch_dtype(config.floatx())
        array = np.ascontiguousarray(x).reshape(np.shape(x))
        if array.dtype == np.float64 and target is not None and target != torch.float64:
            array = array.astype(np.float32)
        tensor = from_numpy(array) if array.dtype.kind != "V" else torch.tensor(array)
        return tensor.to(device=device, dtype=target)
    if isinstance(x, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in _leaves(x)):
        return torch.stack([convert_to_tensor(v, dtype, device=device) for v in x])
    if isinstance(x, (list, tuple)) and any(isinstance(v, np.ndarray) for v in _leaves(x)):
        leaf_dtypes = [getattr(v, "dtype", type(v)) for v in _leaves(x)]
        return convert_to_tensor(np.array(x), dtype=dtype or result_type(*leaf_dtypes),
                                 device=device)
    if target is None:
        target = torch_dtype(_python_dtype(x))
    if hasattr(x, "__array__") and not isinstance(x, (list, tuple)):
        return convert_to_tensor(np.asarray(x), dtype=dtype or None, device=device).to(target)
    return torch.tensor(x, dtype=target, device=device)


def from_numpy(array: np.ndarray) -> torch.Tensor:
    """`torch.from_numpy`, copying first what torch cannot share: a read-only array (pandas'
    `.values`) or a reversed view (negative strides)."""
    shareable = array.flags.writeable and all(step >= 0 for step in array.strides)
    return torch.from_numpy(array if shareable else array.copy())


def _leaves(x):
    for v in x:
        if isinstance(v, (list, tuple)):
            yield from _leaves(v)
        else:
            yield v


def _python_dtype(x) -> str:
    """floatx for Python floats, int32 for ints, bool for bools (also inside nested lists)."""
    kinds = set()
    items = list(_leaves(x)) if isinstance(x, (list, tuple)) else [x]
    for v in items:
        if isinstance(v, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(v, (int, np.integer)):
            kinds.add("int")
        elif isinstance(v, (float, np.floating)):
            kinds.add("float")
        elif isinstance(v, complex):
            kinds.add("complex")
        elif isinstance(v, str):
            raise ValueError("Strings are not tensors in Kestrel: keep them in NumPy arrays "
                             f"or lists. Received: {str(v)[:40]!r}")
        else:
            raise TypeError(f"Cannot convert {type(v).__name__} to a tensor.")
    for kind, name in (("complex", "complex64"), ("float", config.floatx()), ("int", "int32")):
        if kind in kinds:
            return name
    return "bool" if kinds else config.floatx()


def common_device(*xs) -> torch.device | None:
    """The device of the first torch tensor among `xs` (lists searched one level deep)."""
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
        if isinstance(x, (list, tuple)):
            for v in x:
                if isinstance(v, torch.Tensor):
                    return v.device
    return None


def to_tensors(*xs, dtype=None) -> list[torch.Tensor]:
    """Convert every argument, placing them all on the device of the first tensor given."""
    device = common_device(*xs)
    return [convert_to_tensor(x, dtype, device=device) for x in xs]


def promote(*xs, dtype=None) -> list[torch.Tensor]:
    """Convert and cast every argument to their Keras result type (or to `dtype`)."""
    target = dtype if dtype is not None else result_type(*(dtype_of(x) for x in xs))
    return to_tensors(*xs, dtype=target)


WIDE_DTYPES = frozenset({"int64", "uint64", "float64", "complex128"})


def has_wide(*xs) -> bool:
    """Whether an argument is 64-bit (Python numbers count as weak, not wide)."""
    return any(dtype_of(x) in WIDE_DTYPES for x in xs)


def promote_natively(*xs) -> list[torch.Tensor]:
    """`promote`, except that with a 64-bit argument the tensors are left for torch's own
    promotion (a 64-bit result), as Keras' torch backend does in the element-wise ops, joins
    and `where` it hands straight to torch (a bool one takes the other's dtype, as Keras casts
    for `subtract`); Keras' `result_type` would narrow to 32 bits."""
    if not has_wide(*xs):
        return promote(*xs)
    return _torch_promoted(*xs)


def _torch_promoted(*xs) -> list[torch.Tensor]:
    """The tensors as they are, for torch to promote; a bool one takes the other's dtype."""
    tensors = to_tensors(*xs)
    other = next((t.dtype for t in tensors if t.dtype != torch.bool), None)
    return [t.to(other) if t.dtype == torch.bool and other is not None else t for t in tensors]


def has_zero_dim_array(*xs) -> bool:
    """Whether a 0-d array or tensor (not a Python number) meets a dimensioned argument."""
    return any(type(x) not in (bool, int, float, complex) and getattr(x, "ndim", None) == 0
               for x in xs) and any(getattr(x, "ndim", 0) > 0 for x in xs)


def promote_elementwise(*xs) -> list[torch.Tensor]:
    """`promote_natively`, also leaving torch's promotion to a 0-d array or tensor argument:
    Keras' torch backend hands its element-wise ops straight to torch, where a 0-d operand
    does not widen a dimensioned one of the same kind (float16 tensor * float32 scalar tensor
    stays float16)."""
    if not has_zero_dim_array(*xs):
        return promote_natively(*xs)
    return _torch_promoted(*xs)


def float_result(*xs) -> str:
    """The result type, moved to floatx when it is integer or bool (for sqrt, mean, divide...)."""
    out = result_type(*(dtype_of(x) for x in xs))
    return out if out.startswith(("float", "bfloat", "complex")) else config.floatx()
