"""Element-wise math, comparisons, logic and reductions of `kestrel.ops.numpy`.

Thin wrappers are built from tables (`name -> torch function`); ops with their own dtype or
shape rules are written out. Dtypes follow Keras 3 on its torch backend.
"""
from __future__ import annotations

import builtins

import torch

from kestrel import config
from kestrel.backend.dtypes import result_type, standardize_dtype
from kestrel.ops.convert import (convert_to_tensor, float_result, has_wide, has_zero_dim_array,
                                 promote, promote_elementwise, to_tensors, torch_dtype)
from kestrel.ops.dispatch import keras_op, module_all


def _name(x) -> str:
    return standardize_dtype(x.dtype)


def _is_int_or_bool(x) -> bool:
    name = _name(x)
    return name == "bool" or "int" in name


def _cast(x, dtype):
    dtype = torch_dtype(dtype)
    return x if x.dtype == dtype else x.to(dtype)


def _to_float(x, wide_int64: bool = False):
    """Integer and bool tensors cast to floatx (int64 to float64 when `wide_int64`)."""
    if not _is_int_or_bool(x):
        return x
    return _cast(x, "float64" if wide_int64 and _name(x) == "int64" else config.floatx())


def _tensor_result(*xs, with_float: bool = False) -> str:
    """Keras' result type of already-converted tensors (Python scalars count as strong)."""
    return result_type(*(x.dtype for x in xs), *((float,) if with_float else ()))


def _axes(axis):
    if axis is None:
        return None
    return tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)


def _register(name: str, fn, doc: str):
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    globals()[name] = keras_op(fn, name=name)


# ----------------------------------------------------------------------------- unary element-wise
def _unary_float(torch_fn, wide_int64=False):
    def op(x):
        (x,) = to_tensors(x)
        return torch_fn(_to_float(x, wide_int64))
    return op


_FLOAT_UNARY = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "arcsin": torch.arcsin,
    "arccos": torch.arccos, "arctan": torch.arctan, "sinh": torch.sinh, "cosh": torch.cosh,
    "tanh": torch.tanh, "arcsinh": torch.arcsinh, "arccosh": torch.arccosh,
    "arctanh": torch.arctanh, "exp": torch.exp, "exp2": torch.exp2, "expm1": torch.expm1,
    "log": torch.log, "log2": torch.log2, "log10": torch.log10, "log1p": torch.log1p,
    "sqrt": torch.sqrt, "reciprocal": torch.reciprocal, "sinc": torch.sinc,
}
_WIDE_FLOAT_UNARY = {  # these keep 64 bits for int64 input, as Keras does
    "deg2rad": torch.deg2rad, "rad2deg": torch.rad2deg,
    "cbrt": lambda x: torch.sign(x) * torch.abs(x) ** (1.0 / 3.0),
    "i0": torch.i0,
}
for _op_name, _fn in _FLOAT_UNARY.items():
    _register(_op_name, _unary_float(_fn),
              f"Element-wise `{_op_name}`; integer and bool inputs give floatx.")
for _op_name, _fn in _WIDE_FLOAT_UNARY.items():
    _register(_op_name, _unary_float(_fn, wide_int64=True),
              f"Element-wise `{_op_name}`; integer inputs give floatx (float64 for int64).")


def _rounding(torch_fn):
    def op(x):
        (x,) = to_tensors(x)
        dtype = config.floatx() if _name(x) == "int64" else _tensor_result(x, with_float=True)
        return torch_fn(_to_float(x)).to(torch_dtype(dtype))
    return op


for _op_name, _fn in {"ceil": torch.ceil, "floor": torch.floor}.items():
    _register(_op_name, _rounding(_fn), f"Element-wise `{_op_name}` as a float tensor "
              "(Keras' result type with a Python float: float64 gives float32).")


def _unary(torch_fn, bool_passthrough=False, bool_to_int=False):
    def op(x):
        (x,) = to_tensors(x)
        if x.dtype == torch.bool:
            if bool_passthrough:
                return x
            if bool_to_int:
                x = x.to(torch.int32)
        return torch_fn(x)
    return op


_UNARY = {  # name -> (torch function, what bool input does)
    "absolute": (torch.abs, "keep"), "abs": (torch.abs, "keep"),
    "negative": (torch.negative, None), "sign": (torch.sign, None),
    "trunc": (torch.trunc, "keep"), "square": (torch.square, "int32"),
    "bitwise_invert": (torch.bitwise_not, None), "bitwise_not": (torch.bitwise_not, None),
    "conjugate": (lambda x: torch.conj(x).resolve_conj(), None),
    "conj": (lambda x: torch.conj(x).resolve_conj(), None),
    "real": (torch.real, None), "imag": (torch.imag, None),
    "angle": (torch.angle, None),
}
for _op_name, (_fn, _bool) in _UNARY.items():
    _register(_op_name, _unary(_fn, _bool == "keep", _bool == "int32"),
              f"Element-wise `{_op_name}`" + (f"; bool input: {_bool}." if _bool else "."))

_PREDICATES = {"isfinite": torch.isfinite, "isinf": torch.isinf, "isnan": torch.isnan,
               "isneginf": torch.isneginf, "isposinf": torch.isposinf, "isreal": torch.isreal,
               "signbit": torch.signbit, "logical_not": torch.logical_not}
for _op_name, _fn in _PREDICATES.items():
    _register(_op_name, _unary(_fn), f"Element-wise `{_op_name}`, as a bool tensor.")


@keras_op
def fabs(x):
    """Absolute value as a float; integer and bool inputs give floatx; complex is refused."""
    (x,) = to_tensors(x)
    if x.is_complex():
        raise TypeError(f"ops.fabs does not support complex inputs. Received: x.dtype={_name(x)}")
    return torch.abs(_to_float(x))


@keras_op
def round(x, decimals=0):
    """Round half to even to `decimals` places; integer inputs keep their dtype."""
    (x,) = to_tensors(x)
    if "int" in _name(x):
        return torch.round(x.to(torch_dtype(config.floatx())), decimals=decimals).to(x.dtype)
    return torch.round(x, decimals=decimals)


@keras_op
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """Replace NaN by `nan` and infinities by `posinf`/`neginf` (default: the dtype's extremes)."""
    (x,) = to_tensors(x)
    return torch.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


@keras_op
def clip(x, x_min, x_max):
    """Limit values to `[x_min, x_max]`; bool input gives int32."""
    x, x_min, x_max = to_tensors(x, x_min, x_max)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    return torch.clip(x, min=x_min, max=x_max)


# ---------------------------------------------------------------------------- binary element-wise
def _binary(torch_fn, bool_to_int=False, native=True):
    """`native`: promoted as torch does when an argument is 64-bit or a 0-d array (see
    `promote_elementwise`)."""
    convert = promote_elementwise if native else promote

    def op(x1, x2):
        x1, x2 = convert(x1, x2)
        if bool_to_int and x1.dtype == torch.bool:
            x1, x2 = x1.to(torch.int32), x2.to(torch.int32)
        return torch_fn(x1, x2)
    return op


def _int_division(torch_fn, bool_to_int=False, native=False):
    """Like `_binary`; integer division by zero gives 0 (as NumPy) instead of raising."""
    binary = _binary(torch_fn, bool_to_int, native)
    convert = promote_elementwise if native else promote

    def op(x1, x2):
        x1, x2 = convert(x1, x2)
        if x1.is_floating_point() or x1.is_complex() or x1.dtype == torch.bool:
            return binary(x1, x2)
        zero = x2 == 0
        return torch.where(zero, 0, torch_fn(x1, torch.where(zero, 1, x2)))
    return op


_PROMOTING_BINARY = {
    "add": torch.add, "subtract": torch.subtract, "multiply": torch.multiply,
    "power": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum,
    "fmax": torch.fmax, "fmin": torch.fmin,
    "gcd": torch.gcd, "lcm": torch.lcm,
    "equal": torch.eq, "not_equal": torch.ne, "less": torch.lt, "less_equal": torch.le,
    "greater": torch.gt, "greater_equal": torch.ge, "logical_and": torch.logical_and,
    "logical_or": torch.logical_or, "logical_xor": torch.logical_xor,
}
_RESULT_TYPE_BINARY = {"maximum", "minimum", "fmax", "fmin"}  # Keras casts these itself
for _op_name, _fn in _PROMOTING_BINARY.items():
    _register(_op_name, _binary(_fn, native=_op_name not in _RESULT_TYPE_BINARY),
              f"Element-wise `{_op_name}` with broadcasting and Keras' dtype promotion.")


def _binary_xy(torch_fn):
    """`_binary` under Keras' argument names for the bitwise ops, `x` and `y`."""
    binary = _binary(torch_fn)

    def op(x, y):
        return binary(x, y)
    return op


_BITWISE_BINARY = {
    "bitwise_and": torch.bitwise_and, "bitwise_or": torch.bitwise_or,
    "bitwise_xor": torch.bitwise_xor, "bitwise_left_shift": torch.bitwise_left_shift,
    "left_shift": torch.bitwise_left_shift, "bitwise_right_shift": torch.bitwise_right_shift,
    "right_shift": torch.bitwise_right_shift,
}
for _op_name, _fn in _BITWISE_BINARY.items():
    _register(_op_name, _binary_xy(_fn),
              f"Element-wise `{_op_name}` of integers or booleans, with broadcasting.")
for _op_name, _fn in {"mod": torch.remainder, "fmod": torch.fmod,
                      "floor_divide": torch.floor_divide}.items():
    _register(_op_name, _int_division(_fn, bool_to_int=_op_name != "floor_divide",
                                      native=_op_name != "floor_divide"),
              f"Element-wise `{_op_name}` with broadcasting; integer division by 0 gives 0.")


def _binary_float(torch_fn, fp16_in_float32=True):
    def op(x1, x2):
        x1, x2 = to_tensors(x1, x2)
        dtype = _tensor_result(x1, x2, with_float=True)
        compute = "float32" if fp16_in_float32 and dtype == "float16" else dtype
        return _cast(torch_fn(_cast(x1, compute), _cast(x2, compute)), dtype)
    return op


_FLOAT_BINARY = {"arctan2": torch.arctan2, "logaddexp": torch.logaddexp,
                 "logaddexp2": torch.logaddexp2}
for _op_name, _fn in _FLOAT_BINARY.items():
    _register(_op_name, _binary_float(_fn),
              f"Element-wise `{_op_name}`; integer inputs give floatx.")
_register("nextafter", _binary_float(torch.nextafter, fp16_in_float32=False),
          "The next representable value after `x1` towards `x2`, in the result dtype.")


def _binary_wide_float(torch_fn):
    def op(x1, x2):
        x1, x2 = to_tensors(x1, x2)
        dtype = _tensor_result(x1, x2)
        if dtype == "int64":
            dtype = "float64"
        elif "int" in dtype:
            dtype = config.floatx()
        return torch_fn(_cast(x1, dtype), _cast(x2, dtype))
    return op


for _op_name, _fn in {"hypot": torch.hypot, "heaviside": torch.heaviside}.items():
    _register(_op_name, _binary_wide_float(_fn),
              f"Element-wise `{_op_name}`; integer inputs give floatx (float64 for int64).")


@keras_op
def divide(x1, x2):
    """True division; integer inputs give floatx."""
    if has_wide(x1, x2) or has_zero_dim_array(x1, x2):
        return torch.divide(*to_tensors(x1, x2))
    x1, x2 = promote(x1, x2, dtype=float_result(x1, x2))
    return torch.divide(x1, x2)


true_divide = keras_op(divide.raw, name="true_divide")


@keras_op
def divide_no_nan(x1, x2):
    """`x1 / x2`, with 0 wherever `x2` is 0."""
    x1, x2 = promote(x1, x2, dtype=float_result(x1, x2))
    zero = x2 == 0
    return torch.where(zero, 0, x1 / torch.where(zero, 1, x2))


@keras_op
def ldexp(x1, x2):
    """`x1 * 2 ** x2` with an integer exponent `x2`."""
    x1, x2 = to_tensors(x1, x2)
    if _name(x2) not in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"):
        raise TypeError(f"ops.ldexp: the exponent x2 must be an integer tensor. "
                        f"Received: x2.dtype={_name(x2)}")
    return _cast(torch.ldexp(x1, x2), _tensor_result(x1, x2, with_float=True))


def _close_args(x1, x2):
    x1, x2 = to_tensors(x1, x2)
    dtype = _tensor_result(x1, x2)
    return _cast(x1, dtype), _cast(x2, dtype), "float" in dtype


@keras_op
def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Element-wise `|x1 - x2| <= atol + rtol * |x2|` (exact equality for integers)."""
    x1, x2, is_float = _close_args(x1, x2)
    if is_float:
        return torch.isclose(x1, x2, rtol=rtol, atol=atol, equal_nan=equal_nan)
    return torch.eq(x1, x2)


@keras_op
def allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Whether `isclose` holds everywhere, as a bool scalar tensor."""
    return torch.all(isclose.raw(x1, x2, rtol=rtol, atol=atol, equal_nan=equal_nan))


@keras_op
def isin(x1, x2, assume_unique=False, invert=False):
    """Whether each element of `x1` occurs in `x2`."""
    x1, x2 = to_tensors(x1, x2)
    if _tensor_result(x1, x2) == "bool":
        x1, x2 = x1.to(torch.int32), x2.to(torch.int32)
    if x1.dtype == torch.bool:
        x1 = x1.to(x2.dtype)
    if x2.dtype == torch.bool:
        x2 = x2.to(x1.dtype)
    return torch.isin(x1, x2, assume_unique=assume_unique, invert=invert)


@keras_op
def correlate(x1, x2, mode="valid"):
    """Cross-correlation of two 1-D sequences (`mode`: "valid", "same" or "full")."""
    if mode not in ("valid", "same", "full"):
        raise ValueError(f"ops.correlate: mode must be 'valid', 'same' or 'full'. "
                         f"Received: mode={mode!r}")
    x1, x2 = to_tensors(x1, x2)
    dtype = _tensor_result(x1, x2)
    dtype = {"int64": "float64"}.get(dtype, dtype if dtype in (
        "bfloat16", "float16", "float64") else "float32")
    x1, x2 = _cast(x1, dtype), _cast(x2, dtype)
    n1, n2 = x1.shape[-1], x2.shape[-1]
    batch = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    x1 = x1.expand(*batch, n1).reshape(1, -1, n1)
    x2 = x2.expand(*batch, n2).reshape(-1, 1, n2)
    full = torch.nn.functional.conv1d(x1, x2, groups=x1.shape[1], padding=n2 - 1)
    full = full.reshape(*batch, -1)
    length = {"valid": builtins.max(n1, n2) - builtins.min(n1, n2) + 1, "same": n1,
              "full": full.shape[-1]}[mode]
    start = (full.shape[-1] - length) // 2
    return torch.squeeze(full[..., start:start + length])


# ---------------------------------------------------------------------------------- reductions
def _sum_dtype(x) -> str:
    name = _name(x)
    return "int32" if name in ("bool", "uint8", "int8", "int16") else name


@keras_op
def sum(x, axis=None, keepdims=False):
    """Sum over `axis` (all axes when None); small integer and bool inputs give int32."""
    x = convert_to_tensor(x) if not isinstance(x, (list, tuple)) else torch.stack(to_tensors(*x))
    if axis in ((), []):
        return x
    out = torch.sum(x, dim=_axes(axis), keepdim=keepdims)
    return _cast(out, _sum_dtype(x))


@keras_op
def prod(x, axis=None, keepdims=False, dtype=None):
    """Product over `axis`; small integer and bool inputs give int32."""
    (x,) = to_tensors(x)
    if dtype is None:
        dtype = result_type(x.dtype)
        dtype = "int32" if dtype in ("bool", "int8", "int16", "uint8") else dtype
    dtype = standardize_dtype(dtype)
    compute = torch_dtype("float32" if dtype == "float16" and x.device.type == "cpu" else dtype)
    if axis is None:
        return _cast(torch.prod(x, dtype=compute), dtype)
    for a in sorted((a % x.ndim for a in _axes(axis)), reverse=True):
        x = _cast(torch.prod(x, dim=a, keepdim=keepdims, dtype=compute), dtype)
    return x


@keras_op
def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (all axes when None); integer inputs give float32."""
    x = convert_to_tensor(x) if not isinstance(x, (list, tuple)) else torch.stack(to_tensors(*x))
    if axis in ((), []):
        return x
    compute = result_type(x.dtype, "float32")
    out_dtype = compute if _is_int_or_bool(x) else _name(x)
    return _cast(torch.mean(_cast(x, compute), dim=_axes(axis), keepdim=keepdims), out_dtype)


@keras_op
def var(x, axis=None, keepdims=False):
    """Population variance over `axis`; integer inputs give floatx."""
    (x,) = to_tensors(x)
    out_dtype = result_type(x.dtype, float)
    if axis in ((), []):
        return torch.zeros_like(x, dtype=torch_dtype(out_dtype))
    x = _cast(x, result_type(x.dtype, "float32"))
    return _cast(torch.var(x, dim=_axes(axis), keepdim=keepdims, correction=0), out_dtype)


@keras_op
def std(x, axis=None, keepdims=False):
    """Population standard deviation over `axis`; integer inputs give float32."""
    (x,) = to_tensors(x)
    if _is_int_or_bool(x):
        x = x.to(torch.float32)
    return torch.std(x, dim=_axes(axis), keepdim=keepdims, correction=0)


@keras_op
def average(x, axis=None, weights=None):
    """Weighted mean over `axis`; 1-D `weights` run along `axis`, else broadcast against `x`."""
    (x,) = to_tensors(x)
    dtypes = [x.dtype, float]
    if weights is not None:
        (weights,) = to_tensors(weights)
        dtypes.append(weights.dtype)
    dtype = result_type(*dtypes)
    x = _cast(x, dtype)
    if axis in ((), []):
        return x
    if weights is None:
        return torch.mean(x, dim=axis)
    weights = _cast(weights, dtype)
    if weights.shape != x.shape and (axis is None or weights.shape != (x.shape[axis],)):
        raise ValueError("ops.average: `weights` must have the shape of `x`, or be 1-D with "
                         "the length of `x` along `axis` (which must then be given). Received: "
                         f"x.shape={tuple(x.shape)}, weights.shape={tuple(weights.shape)}, "
                         f"axis={axis}")
    if weights.ndim == 1 and x.ndim > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        weights = weights.reshape(shape)
    weights = torch.broadcast_to(weights, x.shape)
    return torch.sum(x * weights, dim=axis) / torch.sum(weights, dim=axis)


def _extreme(torch_axes, combine):
    def op(x, axis=None, keepdims=False, initial=None):
        (x,) = to_tensors(x)
        if 0 in x.shape:
            if initial is None:
                raise ValueError(f"ops.{combine.__name__[:3]}: cannot reduce an empty tensor "
                                 f"without `initial`. Received: x.shape={tuple(x.shape)}")
            return torch.full((1,) * x.ndim if keepdims else (), initial, device=x.device)
        if axis in ((), []):
            out = x
        else:
            dims = tuple(range(x.ndim)) if axis is None else _axes(axis)
            out = torch_axes(x, dim=dims, keepdim=keepdims)
        if initial is not None:
            out = combine(out, torch.full_like(out, initial))
        return out
    return op


_register("max", _extreme(torch.amax, torch.maximum),
          "Maximum over `axis` (all axes when None), at least `initial` when given.")
_register("min", _extreme(torch.amin, torch.minimum),
          "Minimum over `axis` (all axes when None), at most `initial` when given.")


def _amax_like(torch_fn):
    def op(x, axis=None, keepdims=False):
        (x,) = to_tensors(x)
        if axis in ((), []):
            return x
        dims = tuple(range(x.ndim)) if axis is None else _axes(axis)
        return torch_fn(x, dim=dims, keepdim=keepdims)
    return op


for _op_name, _fn in {"amax": torch.amax, "amin": torch.amin}.items():
    _register(_op_name, _amax_like(_fn), f"`{_op_name}` over `axis` (all axes when None).")


def _logical_reduce(torch_fn):
    def op(x, axis=None, keepdims=False):
        (x,) = to_tensors(x)
        if axis in ((), []):
            return x.to(torch.bool)
        dims = tuple(range(x.ndim)) if axis is None else _axes(axis)
        return torch_fn(x, dim=dims, keepdim=keepdims).to(torch.bool)
    return op


_register("all", _logical_reduce(torch.all), "Whether all elements along `axis` are truthy.")
_register("any", _logical_reduce(torch.any), "Whether any element along `axis` is truthy.")


@keras_op
def ptp(x, axis=None, keepdims=False):
    """Range (max - min) over `axis`."""
    (x,) = to_tensors(x)
    if axis is None:
        return x.max() - x.min()
    if axis in ((), []):
        return torch.zeros_like(x)
    dims = _axes(axis)
    return torch.amax(x, dim=dims, keepdim=keepdims) - torch.amin(x, dim=dims, keepdim=keepdims)


@keras_op
def count_nonzero(x, axis=None):
    """Number of non-zero elements along `axis`, as int32."""
    (x,) = to_tensors(x)
    if axis in ((), []):
        return torch.ne(x, 0).to(torch.int32)
    return torch.count_nonzero(x, dim=_axes(axis)).to(torch.int32)


def _cumulative(torch_fn):
    def op(x, axis=None, dtype=None):
        (x,) = to_tensors(x)
        if axis is None:
            x, axis = x.flatten(), 0
        dtype = result_type(dtype or x.dtype)
        dtype = "int32" if dtype == "bool" else dtype
        if dtype == "float16" and x.device.type == "cpu":
            return torch_fn(x, dim=axis, dtype=torch.float32).to(torch.float16)
        return torch_fn(x, dim=axis, dtype=torch_dtype(dtype))
    return op


_register("cumsum", _cumulative(torch.cumsum), "Cumulative sum along `axis` (flattened if None).")
_register("cumprod", _cumulative(torch.cumprod),
          "Cumulative product along `axis` (flattened if None).")


def _quantile(x, q, axis, method, keepdims, torch_fn):
    x, q = to_tensors(x, q)
    out_dtype = result_type(x.dtype, float)
    x = _cast(x, result_type(x.dtype, "float32"))
    q = q.to(x.dtype)
    ndim, axes = x.ndim, _axes(axis)
    if axes is None:
        y = x.reshape(-1)
    else:
        axes = sorted(a % ndim for a in axes)
        rest = [d for d in range(ndim) if d not in axes]
        y = x.permute(rest + axes).reshape(*(x.shape[d] for d in rest), -1)
    y = torch_fn(y, q, dim=-1, interpolation=method)
    if keepdims:
        for a in (range(ndim) if axes is None else axes):
            y = y.unsqueeze(a + (1 if q.ndim > 0 else 0) if axes is not None else -1)
    return _cast(y, out_dtype)


@keras_op
def quantile(x, q, axis=None, method="linear", keepdims=False):
    """The `q`-th quantiles (0 <= q <= 1) over `axis`; `method` as in `torch.quantile`."""
    return _quantile(x, q, axis, method, keepdims, torch.quantile)


@keras_op
def percentile(x, q, axis=None, method="linear", keepdims=False):
    """The `q`-th percentiles (0 <= q <= 100) over `axis`."""
    q = convert_to_tensor(q, config.floatx()) / 100.0
    return _quantile(x, q, axis, method, keepdims, torch.quantile)


@keras_op
def median(x, axis=None, keepdims=False):
    """Median over `axis` (the mean of the two middle values for even counts)."""
    return _quantile(x, 0.5, axis, "linear", keepdims, torch.quantile)


# -------------------------------------------------------------------------- NaN-ignoring reductions
@keras_op
def nanquantile(x, q, axis=None, method="linear", keepdims=False):
    """`quantile` ignoring NaNs."""
    return _quantile(x, q, axis, method, keepdims, torch.nanquantile)


@keras_op
def nanpercentile(x, q, axis=None, method="linear", keepdims=False):
    """`percentile` ignoring NaNs."""
    q = convert_to_tensor(q, config.floatx()) / 100.0
    return _quantile(x, q, axis, method, keepdims, torch.nanquantile)


@keras_op
def nanmedian(x, axis=None, keepdims=False):
    """`median` ignoring NaNs."""
    if axis in ((), []):
        return convert_to_tensor(x)
    return _quantile(x, 0.5, axis, "linear", keepdims, torch.nanquantile)


@keras_op
def nansum(x, axis=None, keepdims=False):
    """`sum` treating NaNs as zero."""
    x = convert_to_tensor(x) if not isinstance(x, (list, tuple)) else torch.stack(to_tensors(*x))
    if axis in ((), []):
        return _cast(torch.nan_to_num(x, nan=0), _sum_dtype(x))
    return _cast(torch.nansum(x, dim=_axes(axis), keepdim=keepdims), _sum_dtype(x))


@keras_op
def nanprod(x, axis=None, keepdims=False):
    """`prod` treating NaNs as one."""
    (x,) = to_tensors(x)
    if axis in ((), []):
        return torch.nan_to_num(x, nan=1)
    if x.is_floating_point():
        x = torch.where(torch.isnan(x), torch.ones((), dtype=x.dtype, device=x.device), x)
    return prod.raw(x, axis=axis, keepdims=keepdims)


@keras_op
def nanmean(x, axis=None, keepdims=False):
    """`mean` ignoring NaNs; integer inputs give floatx."""
    (x,) = to_tensors(x)
    if axis in ((), []):
        return x
    x = _cast(x, result_type(x.dtype, float))
    return torch.nanmean(x, dim=_axes(axis), keepdim=keepdims)


@keras_op
def nanvar(x, axis=None, keepdims=False):
    """`var` ignoring NaNs."""
    (x,) = to_tensors(x)
    x = _cast(x, result_type(x.dtype, float))
    if axis in ((), []):
        return torch.where(torch.isnan(x), x, torch.zeros((), dtype=x.dtype, device=x.device))
    dims = _axes(axis)
    valid = ~torch.isnan(x)
    centered = torch.where(valid, x - torch.nanmean(x, dim=dims, keepdim=True), 0)
    squares = centered.abs().square() if centered.is_complex() else centered.square()
    return squares.sum(dim=dims, keepdim=keepdims) / valid.sum(dim=dims, keepdim=keepdims)


@keras_op
def nanstd(x, axis=None, keepdims=False):
    """`std` ignoring NaNs."""
    return torch.sqrt(nanvar.raw(x, axis=axis, keepdims=keepdims))


def _nan_extreme(torch_fn, fill):
    def op(x, axis=None, keepdims=False):
        (x,) = to_tensors(x)
        dims = () if axis is None else _axes(axis)
        if not x.is_floating_point():
            return torch_fn(x, dim=dims, keepdim=keepdims)
        if axis in ((), []):
            return x
        nan = torch.isnan(x)
        out = torch_fn(torch.where(nan, fill, x), dim=dims, keepdim=keepdims)
        all_nan = nan.all() if axis is None else nan.all(dim=dims, keepdim=keepdims)
        return torch.where(all_nan, torch.nan, out)
    return op


_register("nanmax", _nan_extreme(torch.amax, float("-inf")), "`max` ignoring NaNs.")
_register("nanmin", _nan_extreme(torch.amin, float("inf")), "`min` ignoring NaNs.")


@keras_op
def nancumsum(x, axis=None, dtype=None):
    """`cumsum` after `nan_to_num` (NaN as 0, infinities as the dtype's extremes)."""
    return cumsum.raw(nan_to_num.raw(x), axis=axis, dtype=dtype)


@keras_op
def nancumprod(x, axis=None, dtype=None):
    """`cumprod` after `nan_to_num(nan=1.0)`."""
    return cumprod.raw(nan_to_num.raw(x, nan=1.0), axis=axis, dtype=dtype)


# ----------------------------------------------------------------------------- matrix statistics
@keras_op
def corrcoef(x):
    """Pearson correlation coefficients of the rows of `x`."""
    (x,) = to_tensors(x)
    return torch.corrcoef(_to_float(x, wide_int64=True))


@keras_op
def slogdet(x):
    """`(sign, log|det|)` of square matrices in the last two axes."""
    (x,) = to_tensors(x)
    return tuple(torch.linalg.slogdet(x))


__all__ = module_all()
