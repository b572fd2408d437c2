"""Array creation, shape manipulation, joining, indexing and sorting of `kestrel.ops.numpy`."""
from __future__ import annotations

import builtins
import functools
import math
import string

import numpy as np
import torch

from kestrel import config
from kestrel.backend.dtypes import result_type, standardize_dtype
from kestrel.ops.convert import (common_device, convert_to_tensor, dtype_of, has_wide, promote,
                                 promote_elementwise, promote_natively, to_tensors,
                                 torch_dtype)
from kestrel.layers.node import is_string_array
from kestrel.ops.dispatch import keras_op, module_all


def _floatx(dtype) -> torch.dtype:
    return torch_dtype(dtype or config.floatx())


def _shape(shape) -> tuple:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def _axes(axis) -> tuple:
    return (axis,) if isinstance(axis, int) else tuple(axis)


def _int32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.int32)


def _orderable(x: torch.Tensor) -> torch.Tensor:
    """Bool tensors as uint8, for the torch sorts and arg-reductions that refuse bool."""
    return x.to(torch.uint8) if x.dtype == torch.bool else x


def _compute(*xs, dtype=None):
    """Inputs cast to their result type, and that type; ints, bools and CPU half go as float."""
    target = dtype or result_type(*(dtype_of(x) for x in xs))
    work = target
    if work == "bool" or "int" in work or (work == "float16" and _on_cpu(*xs)):
        work = "float64" if "64" in work else "float32"
    return to_tensors(*xs, dtype=work), torch_dtype(target)


def _arg_dtype(value):
    """The dtype Keras reads off a creation argument: its own dtype, else its Python type."""
    dtype = getattr(value, "dtype", None)
    return dtype_of(value) if dtype is None else standardize_dtype(dtype)


def _on_cpu(*xs) -> bool:
    device = common_device(*xs) or config.device()
    return device.type == "cpu"


# ---------------------------------------------------------------- creation
@keras_op
def zeros(shape, dtype=None):
    """A tensor of zeros on `kestrel.config.device()` (dtype floatx unless given)."""
    return torch.zeros(_shape(shape), dtype=_floatx(dtype), device=config.device())


@keras_op
def ones(shape, dtype=None):
    return torch.ones(_shape(shape), dtype=_floatx(dtype), device=config.device())


@keras_op
def empty(shape, dtype=None):
    return torch.empty(_shape(shape), dtype=_floatx(dtype), device=config.device())


@keras_op
def full(shape, fill_value, dtype=None):
    """A tensor of `shape` filled with `fill_value` (a scalar or a broadcastable tensor)."""
    fill = convert_to_tensor(fill_value, dtype=_floatx(dtype), device=config.device())
    return fill.expand(_shape(shape)).clone()


def _like(x, dtype):
    (x,) = to_tensors(x)
    return x, x.dtype if dtype is None else torch_dtype(dtype)


@keras_op
def zeros_like(x, dtype=None):
    x, dtype = _like(x, dtype)
    return torch.zeros_like(x, dtype=dtype)


@keras_op
def ones_like(x, dtype=None):
    x, dtype = _like(x, dtype)
    return torch.ones_like(x, dtype=dtype)


@keras_op
def empty_like(x, dtype=None):
    x, dtype = _like(x, dtype)
    return torch.empty_like(x, dtype=dtype)


@keras_op
def full_like(x, fill_value, dtype=None):
    x, dtype = _like(x, dtype)
    fill = convert_to_tensor(fill_value, dtype=dtype, device=x.device)
    return fill.expand(x.shape).clone()


@keras_op
def eye(N, M=None, k=0, dtype=None):
    """A 2-D tensor with ones on the `k`-th diagonal."""
    return tri(N, M, k, dtype) - tri(N, M, k - 1, dtype) if k else torch.eye(
        N, N if M is None else M, dtype=_floatx(dtype), device=config.device())


@keras_op
def identity(n, dtype=None):
    return torch.eye(n, dtype=_floatx(dtype), device=config.device())


@keras_op
def tri(N, M=None, k=0, dtype=None):
    """Ones at and below the `k`-th diagonal of an `N x M` matrix."""
    rows = torch.arange(N, device=config.device())[:, None]
    cols = torch.arange(N if M is None else M, device=config.device())
    return (cols <= rows + (k or 0)).to(_floatx(dtype))


@keras_op
def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in `[start, stop)`; the dtype follows the arguments."""
    if dtype is None:
        dtype = result_type(*(_arg_dtype(v) for v in (start, stop, step) if v is not None))
    start, stop = (0, start) if stop is None else (start, stop)
    bounds = [v.item() if isinstance(v, torch.Tensor) else v for v in (start, stop, step or 1)]
    return torch.arange(*bounds, dtype=torch_dtype(dtype), device=config.device())


def _spaced(start, stop, num, endpoint, dtype, axis):
    """`num` points from `start` to `stop` (arrays broadcast), along `axis`; and the step.

    Without the endpoint the points run from `start` to `stop - step` inclusive; Python numbers
    go through `torch.linspace`, tensors through `start + (i / (num - 1)) * span`: the rounding
    of Keras' torch backend in both cases.
    """
    if num < 0:
        raise ValueError(f"ops.linspace: `num` must be non-negative. Received: num={num}")
    work = torch.float64 if dtype == torch.float64 else torch.float32
    last = stop if endpoint or num == 0 else stop - (stop - start) / num
    scalars = all(isinstance(v, (int, float)) for v in (start, last))
    if scalars:
        out = torch.linspace(start, last, num, dtype=work, device=config.device())
    start, stop, last = to_tensors(start, stop, last, dtype=work)
    start, stop, last = torch.broadcast_tensors(start, stop, last)
    div = (num - 1) if endpoint else num
    step = (stop - start) / div if div > 0 else torch.full_like(start, float("nan"))
    if not scalars:
        fractions = torch.arange(num, dtype=work, device=start.device) / builtins.max(num - 1, 1)
        out = start + fractions.reshape(-1, *[1] * start.ndim) * (last - start)
    if endpoint and num > 1:
        out[-1] = stop
    return torch.movedim(out, 0, axis), step


def _space_dtype(start, stop, dtype):
    return torch_dtype(dtype or result_type(_arg_dtype(start), _arg_dtype(stop), float))


@keras_op
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """`num` evenly spaced values from `start` to `stop` (optionally with the step)."""
    dtype = _space_dtype(start, stop, dtype)
    out, step = _spaced(start, stop, num, endpoint, dtype, axis)
    out = torch.floor(out).to(dtype) if not dtype.is_floating_point else out.to(dtype)
    if not retstep:
        return out
    scalars = not any(isinstance(v, torch.Tensor) or hasattr(v, "__len__") for v in (start, stop))
    return out, (step.item() if scalars and num > 1 else step)


@keras_op
def logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0):
    """`base ** linspace(start, stop)`."""
    dtype = _space_dtype(start, stop, dtype)
    out, _ = _spaced(start, stop, num, endpoint, dtype, axis)
    return torch.pow(torch.tensor(base, dtype=out.dtype, device=out.device), out).to(dtype)


@keras_op
def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """`num` values spaced evenly on a log scale from `start` to `stop`."""
    dtype = _space_dtype(start, stop, dtype)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    start, stop = to_tensors(start, stop, dtype=work)
    out, _ = _spaced(torch.log10(start.abs()), torch.log10(stop.abs()), num, endpoint, dtype, 0)
    out = torch.pow(10.0, out) * torch.sign(start)
    if num > 0:
        out[0] = start
    if endpoint and num > 1:
        out[-1] = stop
    return torch.movedim(out, 0, axis).to(dtype)


def _window(name: str, torch_name: str):
    def window(x):
        return getattr(torch.signal.windows, torch_name)(
            int(x), dtype=_floatx(None), device=config.device())
    window.__name__ = window.__qualname__ = name
    window.__doc__ = f"The {name} window of `x` points (floatx)."
    return keras_op(window)


bartlett = _window("bartlett", "bartlett")
blackman = _window("blackman", "blackman")
hamming = _window("hamming", "hamming")
hanning = _window("hanning", "hann")


@keras_op
def kaiser(x, beta):
    return torch.signal.windows.kaiser(int(x), beta=float(beta), dtype=_floatx(None),
                                       device=config.device())


@keras_op
def array(x, dtype=None):
    return convert_to_tensor(x, dtype=dtype)


@keras_op
def copy(x):
    return torch.clone(convert_to_tensor(x))


@keras_op
def view(x, dtype=None):
    """The same bytes read as `dtype` (floatx when None, as Keras' `standardize_dtype`)."""
    return convert_to_tensor(x).view(_floatx(dtype))


def ndim(x) -> int:
    """The number of dimensions of `x`; a KerasTensor's is known without recording a node."""
    return len(x.shape) if hasattr(x, "shape") else convert_to_tensor(x).ndim


keras_op(ndim)  # registered by name, kept plain (it answers for KerasTensors itself)


@keras_op
def size(x):
    x = convert_to_tensor(x)
    return torch.tensor(x.numel(), dtype=torch.int64, device=x.device)


# ---------------------------------------------------------------- shapes
def _strings_by(numpy_fn):
    """Let a shape-only op take a NumPy array of strings (Kestrel's string data) too, and
    give one back, as Keras' TensorFlow backend reshapes string tensors."""
    def wrap(fn):
        @functools.wraps(fn)
        def op(x, *args, **kwargs):
            return numpy_fn(x, *args, **kwargs) if is_string_array(x) else fn(x, *args, **kwargs)
        return op
    return wrap


@keras_op
@_strings_by(lambda x, newshape=None, new_shape=None:
             np.reshape(x, _shape(_new_shape(newshape, new_shape))))
def reshape(x, newshape=None, new_shape=None):
    """`x` with shape `newshape` (one entry may be -1); keras-core named it `new_shape`."""
    return torch.reshape(convert_to_tensor(x), _shape(_new_shape(newshape, new_shape)))


def _new_shape(newshape, new_shape):
    """`newshape`, or keras-core's `new_shape` keyword (`ops.reshape(x, new_shape=[1, -1])`)."""
    if newshape is None:
        if new_shape is None:
            raise TypeError("reshape() missing 1 required positional argument: 'newshape'")
        return new_shape
    if new_shape is not None:
        raise TypeError("reshape() takes the shape once: give `newshape` or keras-core's "
                        f"`new_shape`. Received: newshape={newshape}, new_shape={new_shape}")
    return newshape


def _reshape_spec(x, newshape=None, new_shape=None):
    """Symbolic `reshape` from shapes, as Keras: the -1 entry is None where the input has an
    unknown size (placeholder runs would make up a batch that need not divide evenly), and a
    known size that cannot be reshaped is Keras' ValueError; an unknown one is taken on trust.
    None (placeholder runs) for a shape given otherwise than as ints."""
    from kestrel.layers.node import KerasTensor

    newshape = _new_shape(newshape, new_shape)
    entries = [newshape] if isinstance(newshape, int) else list(newshape)
    if type(x) is not KerasTensor or not all(isinstance(d, int) and d >= -1 for d in entries) or \
            entries.count(-1) > 1:
        return None
    if None in x.shape:
        return KerasTensor([None if d == -1 else d for d in entries], x.dtype)
    size, known = math.prod(x.shape), math.prod(d for d in entries if d != -1)
    if known == 0:  # empty tensors: as the placeholder run says
        return None
    if size % known if -1 in entries else size != known:
        raise ValueError(
            "The total size of the tensor must be unchanged. Received: "
            f"input_shape={tuple(x.shape)}, newshape={tuple(entries)}")
    return KerasTensor([size // known if d == -1 else d for d in entries], x.dtype)


reshape.output_spec = _reshape_spec


@keras_op
def ravel(x):
    return torch.ravel(convert_to_tensor(x))


@keras_op
@_strings_by(lambda x, axis: np.expand_dims(x, _axes(axis)))
def expand_dims(x, axis):
    x = convert_to_tensor(x)
    rank = x.ndim + len(_axes(axis))
    for a in sorted(a % rank for a in _axes(axis)):
        x = x.unsqueeze(a)
    return x


@keras_op
@_strings_by(lambda x, axis=None: np.squeeze(x, None if axis is None else _axes(axis)))
def squeeze(x, axis=None):
    x = convert_to_tensor(x)
    if axis is None:
        return torch.squeeze(x)
    for a in _axes(axis):
        if x.shape[a] != 1:
            raise ValueError(f"ops.squeeze: cannot squeeze an axis of size {x.shape[a]}. "
                             f"Received: axis={axis}, shape={tuple(x.shape)}")
    return torch.squeeze(x, dim=_axes(axis))


def _squeeze_spec(x, axis=None):
    """Symbolic `squeeze` from shapes: unknown sizes are not squeezed (placeholder runs would
    squeeze an unknown batch of 1)."""
    from kestrel.layers.node import KerasTensor

    shape = list(x.shape)
    if axis is None:
        return KerasTensor([d for d in shape if d != 1], x.dtype)
    for a in _axes(axis):
        if shape[a] != 1:
            raise ValueError(f"ops.squeeze: cannot squeeze an axis of size {shape[a]}. "
                             f"Received: axis={axis}, shape={tuple(shape)}")
    drop = {a % len(shape) for a in _axes(axis)}
    return KerasTensor([d for i, d in enumerate(shape) if i not in drop], x.dtype)


squeeze.output_spec = _squeeze_spec


@keras_op
def transpose(x, axes=None):
    x = convert_to_tensor(x)
    return torch.permute(x, tuple(reversed(range(x.ndim))) if axes is None else tuple(axes))


@keras_op
def moveaxis(x, source, destination):
    return torch.movedim(convert_to_tensor(x), _axes(source), _axes(destination))


@keras_op
def swapaxes(x, axis1, axis2):
    return torch.swapaxes(convert_to_tensor(x), axis1, axis2)


@keras_op
def broadcast_to(x, shape):
    return torch.broadcast_to(convert_to_tensor(x), _shape(shape))


@keras_op
def flip(x, axis=None):
    x = convert_to_tensor(x)
    return torch.flip(x, tuple(range(x.ndim)) if axis is None else _axes(axis))


@keras_op
def fliplr(x):
    return torch.fliplr(convert_to_tensor(x))


@keras_op
def flipud(x):
    return torch.flipud(convert_to_tensor(x))


@keras_op
def rot90(array, k=1, axes=(0, 1)):
    """Rotate by `k` quarter turns in the plane of `axes`."""
    array = convert_to_tensor(array)
    if array.ndim < 2 or len(axes) != 2 or axes[0] % array.ndim == axes[1] % array.ndim:
        raise ValueError("ops.rot90: needs a tensor of rank >= 2 and two distinct axes. "
                         f"Received: axes={axes}, rank={array.ndim}")
    return torch.rot90(array, k, dims=tuple(axes))


@keras_op
def roll(x, shift, axis=None):
    x = convert_to_tensor(x)
    if axis is None:
        return torch.roll(x.reshape(-1), shift).reshape(x.shape)
    return torch.roll(x, shift, dims=axis)


@keras_op
def tile(x, repeats):
    if isinstance(repeats, torch.Tensor):
        repeats = repeats.tolist()
    return torch.tile(convert_to_tensor(x), _axes(repeats))


@keras_op
def repeat(x, repeats, axis=None):
    """Repeat each element `repeats` times (along `axis`, or of the flattened tensor)."""
    x = convert_to_tensor(x)
    if not isinstance(repeats, int):
        repeats = convert_to_tensor(repeats, device=x.device).long()
    return torch.repeat_interleave(x, repeats, dim=axis)


def _pad_pairs(pad_width, rank):
    if isinstance(pad_width, torch.Tensor):
        pad_width = pad_width.tolist()
    if isinstance(pad_width, int):
        return [(pad_width, pad_width)] * rank
    if all(isinstance(p, int) for p in pad_width):
        pad_width = [pad_width]
    pairs = [(p[0], p[-1]) for p in pad_width]
    return pairs * rank if len(pairs) == 1 else pairs


@keras_op
def pad(x, pad_width, mode="constant", constant_values=None):
    """Pad every axis by `(before, after)`; modes constant, reflect, symmetric, circular."""
    x = convert_to_tensor(x)
    pairs = _pad_pairs(pad_width, x.ndim)
    if len(pairs) != x.ndim:
        raise ValueError(f"ops.pad: `pad_width` needs one pair per axis of a rank-{x.ndim} "
                         f"tensor. Received: pad_width={pad_width}")
    if constant_values is not None and mode != "constant":
        raise ValueError("ops.pad: `constant_values` needs mode='constant'. "
                         f"Received: mode={mode}")
    if mode == "constant":
        flat = [p for pair in reversed(pairs) for p in pair]
        return torch.nn.functional.pad(x, flat, value=constant_values or 0)
    if mode not in ("reflect", "symmetric", "circular", "wrap", "edge"):
        raise ValueError(f"ops.pad: unsupported mode. Received: mode={mode}")
    for axis, (before, after) in enumerate(pairs):
        x = _pad_axis(x, axis, before, after, mode)
    return x


def _pad_axis(x, axis, before, after, mode):
    n = x.shape[axis]
    if mode == "edge":
        return torch.cat([x.narrow(axis, 0, 1).repeat_interleave(before, axis), x,
                          x.narrow(axis, n - 1, 1).repeat_interleave(after, axis)], axis)
    if mode in ("circular", "wrap"):
        idx = torch.arange(-before, n + after, device=x.device) % n
    else:
        period = 2 * n - 2 if mode == "reflect" else 2 * n
        idx = torch.arange(-before, n + after, device=x.device) % builtins.max(period, 1)
        idx = torch.where(idx >= n, period - idx - int(mode == "symmetric"), idx)
    return torch.index_select(x, axis, idx)


# ---------------------------------------------------------------- joining and splitting
@keras_op
def concatenate(xs, axis=0):
    """Join tensors along an existing `axis` (dtypes promoted as Keras does)."""
    return torch.cat(promote_natively(*xs), dim=axis)


@keras_op
def append(x1, x2, axis=None):
    x1, x2 = promote_natively(*to_tensors(x1, x2))
    if axis is None:
        return torch.cat([x1.reshape(-1), x2.reshape(-1)])
    return torch.cat([x1, x2], dim=axis)


@keras_op
def stack(x, axis=0):
    return torch.stack(promote_natively(*x), dim=axis)


@keras_op
def hstack(xs):
    return torch.hstack(promote_natively(*xs))


@keras_op
def vstack(xs):
    return torch.vstack(promote_natively(*xs))


@keras_op
def dstack(xs):
    return torch.dstack(promote_natively(*xs))


def _sections(indices_or_sections):
    if isinstance(indices_or_sections, torch.Tensor):
        return indices_or_sections.tolist()
    return indices_or_sections if isinstance(indices_or_sections, int) else \
        [int(i) for i in indices_or_sections]


@keras_op
def split(x, indices_or_sections, axis=0):
    """Split into equal sections (an int) or at the given indices."""
    x = convert_to_tensor(x)
    sections = _sections(indices_or_sections)
    if isinstance(sections, int) and x.shape[axis] % sections:
        raise ValueError(f"ops.split: x.shape[{axis}]={x.shape[axis]} is not divisible into "
                         f"equal sections. Received: indices_or_sections={sections}")
    return list(torch.tensor_split(x, sections, dim=axis))


@keras_op
def array_split(x, indices_or_sections, axis=0):
    return list(torch.tensor_split(convert_to_tensor(x), _sections(indices_or_sections), axis))


@keras_op
def hsplit(x, indices_or_sections):
    x = convert_to_tensor(x)
    return split.raw(x, indices_or_sections, axis=0 if x.ndim == 1 else 1)


@keras_op
def vsplit(x, indices_or_sections):
    return split.raw(x, indices_or_sections, axis=0)


@keras_op
def dsplit(x, indices_or_sections):
    return split.raw(x, indices_or_sections, axis=2)


@keras_op
def meshgrid(*x, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError(f"ops.meshgrid: indexing must be 'xy' or 'ij'. Received: "
                         f"indexing={indexing}")
    axes = [v.reshape(-1) for v in to_tensors(*x)]
    shape = [len(v) for v in axes]
    grids = [v.reshape([-1 if i == j else 1 for j in range(len(axes))]).expand(shape)
             for i, v in enumerate(axes)]
    if indexing == "xy" and len(axes) > 1:
        grids = [g.transpose(0, 1) for g in grids]
    return grids


# ---------------------------------------------------------------- indexing
@keras_op
def get_item(x, key):
    """`x[key]`; a list key holding slices, None or Ellipsis is read as a tuple key."""
    if isinstance(key, list) and any(k is None or k is Ellipsis or isinstance(k, slice)
                                     for k in key):
        key = tuple(key)
    return convert_to_tensor(x)[key]


def _get_item_spec(x, key):
    """The `KerasTensor` of `x[key]` from shapes alone (slices of unknown sizes stay None).

    Returns None for keys that need data (tensors, lists, bools): those are inferred by
    running `get_item` on placeholders.
    """
    from kestrel.layers.node import KerasTensor

    if isinstance(key, list) and any(k is None or k is Ellipsis or isinstance(k, slice)
                                     for k in key):
        key = tuple(key)
    key = key if isinstance(key, tuple) else (key,)
    if not all(k is None or k is Ellipsis or isinstance(k, slice) or
               (isinstance(k, int) and not isinstance(k, bool)) for k in key):
        return None
    consumed = builtins.sum(k is not None and k is not Ellipsis for k in key)
    if consumed > len(x.shape) or builtins.sum(k is Ellipsis for k in key) > 1:
        raise IndexError(f"get_item: too many indices for a rank-{len(x.shape)} tensor. "
                         f"Received: key={key}"[:200])
    dims, shape = list(x.shape), []
    for k in key:
        if k is None:
            shape.append(1)
        elif k is Ellipsis:
            cover = len(dims) - consumed  # the axes no later index takes
            shape, dims = shape + dims[:cover], dims[cover:]
        else:
            consumed -= 1
            size = dims.pop(0)
            if isinstance(k, slice):
                shape.append(None if size is None else len(range(*k.indices(size))))
            elif size is not None and not -size <= k < size:
                raise IndexError(f"get_item: index {k} is out of bounds for an axis of size "
                                 f"{size}.")
    return KerasTensor(shape + dims, x.dtype)


get_item.output_spec = _get_item_spec


def _fill_negative(indices, size):
    return torch.where(indices < 0, indices + size, indices)


@keras_op
def take(x, indices, axis=None):
    """Elements of `x` at `indices` along `axis` (of the flattened `x` when None)."""
    x, indices = to_tensors(x, indices)
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis %= x.ndim
    indices = _fill_negative(indices.long(), x.shape[axis])
    out = torch.index_select(x, axis, indices.reshape(-1))
    return out.reshape((*x.shape[:axis], *indices.shape, *x.shape[axis + 1:]))


@keras_op
def take_along_axis(x, indices, axis=None):
    x, indices = to_tensors(x, indices)
    if axis is None:
        x, indices, axis = x.reshape(-1), indices.reshape(-1), 0
    indices = _fill_negative(indices.long(), x.shape[axis])
    shape = list(torch.broadcast_shapes(
        tuple(1 if i == axis % x.ndim else s for i, s in enumerate(x.shape)),
        tuple(1 if i == axis % x.ndim else s for i, s in enumerate(indices.shape))))
    x = x.expand(*[s if i != axis % x.ndim else -1 for i, s in enumerate(shape)])
    shape[axis] = indices.shape[axis]
    return torch.gather(x, axis, indices.expand(shape))


@keras_op
def where(condition, x1=None, x2=None):
    """Elements of `x1` where `condition`, else of `x2`; alone, the indices where it holds."""
    if (x1 is None) != (x2 is None):
        raise ValueError("ops.where: `x1` and `x2` must both be given or both be None.")
    if x1 is None:
        (condition,) = to_tensors(condition)
        return torch.stack(torch.where(condition.bool()), dim=0)
    condition, x1, x2 = (convert_to_tensor(condition, device=common_device(condition, x1, x2)),
                         *promote_elementwise(x1, x2))
    return torch.where(condition.to(x1.device).bool(), x1, x2)


@keras_op
def select(condlist, choicelist, default=0):
    """The first choice whose condition holds, element-wise; `default` where none does."""
    if not isinstance(condlist, (list, tuple)) or not isinstance(choicelist, (list, tuple)):
        raise ValueError("ops.select: condlist and choicelist must be lists. Received: "
                         f"{type(condlist).__name__}, {type(choicelist).__name__}")
    if not condlist or len(condlist) != len(choicelist):
        raise ValueError("ops.select: condlist and choicelist must be non-empty and of the "
                         f"same length. Received: {len(condlist)} and {len(choicelist)}")
    *choices, out = promote_natively(*choicelist, default)
    conds = to_tensors(*condlist)
    for cond, choice in reversed(list(zip(conds, choices))):
        out = torch.where(cond.bool().to(choice.device), choice, out)
    return out


@keras_op
def nonzero(x):
    """The indices of non-zero elements, one row per axis (int32)."""
    return _int32(torch.nonzero(convert_to_tensor(x)).T)


@keras_op
def unravel_index(indices, shape):
    """Coordinates of flat `indices`, in the Keras result type of their dtype (int64 -> int32)."""
    (indices,) = to_tensors(indices)
    out = torch_dtype(result_type(dtype_of(indices)))
    return tuple(i.to(out) for i in torch.unravel_index(indices, _shape(shape)))


@keras_op
def diag(x, k=0):
    return torch.diag(convert_to_tensor(x), diagonal=k)


@keras_op
def diagflat(x, k=0):
    return torch.diagflat(convert_to_tensor(x), offset=k)


@keras_op
def diagonal(x, offset=0, axis1=0, axis2=1):
    return torch.diagonal(convert_to_tensor(x), offset=offset, dim1=axis1, dim2=axis2)


@keras_op
def trace(x, offset=0, axis1=0, axis2=1):
    """Sum along a diagonal; small integer and bool inputs sum as int32."""
    x = convert_to_tensor(x)
    dtype = x.dtype
    if dtype in (torch.bool, torch.int8, torch.int16, torch.uint8):
        dtype = torch.int32
    return torch.sum(torch.diagonal(x, offset, axis1, axis2), dim=-1, dtype=dtype)


@keras_op
def tril(x, k=0):
    return torch.tril(convert_to_tensor(x), diagonal=k)


@keras_op
def triu(x, k=0):
    return torch.triu(convert_to_tensor(x), diagonal=k)


@keras_op
def searchsorted(sorted_sequence, values, side="left"):
    """Insertion indices of `values` into the 1-D `sorted_sequence` (int32)."""
    sorted_sequence, values = to_tensors(sorted_sequence, values)
    if sorted_sequence.ndim != 1:
        raise ValueError("ops.searchsorted: `sorted_sequence` must be 1-D. Received: "
                         f"sorted_sequence.shape={tuple(sorted_sequence.shape)}")
    sorted_sequence, values = promote(sorted_sequence, values)
    return torch.searchsorted(sorted_sequence, values, side=side, out_int32=True)


@keras_op
def digitize(x, bins):
    x, bins = to_tensors(x, bins)
    x, bins = promote(_orderable(x), _orderable(bins))
    return _int32(torch.bucketize(x, bins, right=True))


# ---------------------------------------------------------------- sorting and arg-reductions
@keras_op
def argmax(x, axis=None, keepdims=False):
    """Index of the largest value (int32), over the flattened tensor when `axis` is None."""
    return _int32(torch.argmax(_orderable(convert_to_tensor(x)), dim=axis, keepdim=keepdims))


@keras_op
def argmin(x, axis=None, keepdims=False):
    return _int32(torch.argmin(_orderable(convert_to_tensor(x)), dim=axis, keepdim=keepdims))


def _nanarg(x, axis, keepdims, fn, fill):
    x = convert_to_tensor(x)
    if not x.is_floating_point():
        return fn.raw(x, axis, keepdims)
    nan = torch.isnan(x)
    out = fn.raw(torch.where(nan, fill, x), axis, keepdims)
    all_nan = nan.all() if axis is None else nan.all(dim=axis, keepdim=keepdims)
    return torch.where(all_nan, -1, out).to(torch.int32)


@keras_op
def nanargmax(x, axis=None, keepdims=False):
    """argmax ignoring NaNs; -1 where every value is NaN."""
    return _nanarg(x, axis, keepdims, argmax, float("-inf"))


@keras_op
def nanargmin(x, axis=None, keepdims=False):
    return _nanarg(x, axis, keepdims, argmin, float("inf"))


@keras_op
def sort(x, axis=-1):
    x = convert_to_tensor(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    return torch.sort(_orderable(x), dim=axis, stable=True).values.to(x.dtype)


@keras_op
def argsort(x, axis=-1):
    x = _orderable(convert_to_tensor(x))
    if axis is None:
        x, axis = x.reshape(-1), 0
    return _int32(torch.argsort(x, dim=axis, stable=True))


@keras_op
def argpartition(x, kth, axis=-1):
    """Indices that put the `kth` smallest value in place, smaller ones before it (int32)."""
    x = convert_to_tensor(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    if not -x.shape[axis] <= kth < x.shape[axis]:
        raise ValueError(f"ops.argpartition: kth out of bounds for axis of size "
                         f"{x.shape[axis]}. Received: kth={kth}")
    return argsort.raw(x, axis)


@keras_op
def unique(x, sorted=True, return_index=False, return_inverse=False, return_counts=False,
           axis=None, size=None, fill_value=None):
    """The unique values (sorted), with optional first indices, inverse and counts."""
    x = convert_to_tensor(x)
    values, inverse, counts = torch.unique(x, sorted=True, return_inverse=True,
                                           return_counts=True, dim=axis)
    dim = 0 if axis is None else axis % x.ndim
    flat_inverse = inverse.reshape(-1)
    index = torch.full((values.shape[dim],), flat_inverse.numel(), dtype=torch.long,
                       device=x.device).scatter_reduce(
        0, flat_inverse, torch.arange(flat_inverse.numel(), device=x.device), "amin")
    if size is not None:
        have = values.shape[dim]
        values = values.narrow(dim, 0, builtins.min(have, size))
        index, counts = index[:size], counts[:size]
        if have < size:
            extra = list(values.shape)
            extra[dim] = size - have
            fill = torch.full(extra, 0 if fill_value is None else fill_value,
                              dtype=values.dtype, device=x.device)
            values = torch.cat([values, fill], dim)
            index = torch.nn.functional.pad(index, (0, size - have), value=1)
            counts = torch.nn.functional.pad(counts, (0, size - have))
    outputs = [values]
    for wanted, extra in ((return_index, index), (return_inverse, inverse),
                          (return_counts, counts)):
        if wanted:
            outputs.append(extra)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


@keras_op
def bincount(x, weights=None, minlength=0, sparse=False):
    """Counts of each non-negative integer (weighted sums with `weights`), per row of 2-D x."""
    if sparse:
        raise ValueError("ops.bincount: Kestrel has no sparse tensors. Received: sparse=True")
    (x,) = to_tensors(x)
    dtype = torch.int32 if weights is None else torch_dtype(
        result_type(dtype_of(x), dtype_of(weights)))
    if weights is not None:
        (weights,) = to_tensors(weights, dtype=torch.float64 if dtype == torch.float64
                                else torch.float32)
        weights = weights.to(x.device)
    if x.ndim == 1:
        return torch.bincount(x, weights, minlength).to(dtype)
    length = builtins.max(minlength, int(x.max()) + 1 if x.numel() else 0)
    out = torch.zeros(x.shape[0], length, dtype=torch.float64, device=x.device)
    source = torch.ones_like(x, dtype=out.dtype) if weights is None else weights.to(out.dtype)
    return out.scatter_add_(1, x.long(), source).to(dtype)


@keras_op
def histogram(x, bins=10, range=None):
    """Counts of `x` in `bins` equal bins over `range` (default: x's min and max), and edges."""
    if not isinstance(bins, int) or bins < 0:
        raise ValueError(f"ops.histogram: `bins` must be a non-negative int. Received: "
                         f"bins={bins}")
    x = convert_to_tensor(x)
    if x.ndim > 1:
        raise ValueError(f"ops.histogram: x must be 1-D. Received: x.shape={tuple(x.shape)}")
    data = x.float() if not x.is_floating_point() else x
    low, high = range if range else (data.min().item(), data.max().item())
    if low == high:  # an empty range widens by half a unit each side, as NumPy's
        low, high = low - 0.5, high + 0.5
    counts = torch.histc(data, bins, low, high)
    edges = torch.linspace(low, high, bins + 1, dtype=data.dtype, device=x.device)
    return counts.to(data.dtype), edges


# ---------------------------------------------------------------- products
@keras_op
def matmul(x1, x2):
    """Matrix product with broadcasting; int8 @ int8 gives int32."""
    dtype = None
    if dtype_of(x1) == "int8" and dtype_of(x2) == "int8":
        dtype = "int32"
    (x1, x2), out = _compute(x1, x2, dtype=dtype)
    return torch.matmul(x1, x2).to(out)


@keras_op
def dot(x1, x2):
    (x1, x2), out = _compute(*to_tensors(x1, x2))
    if x1.ndim == 0 or x2.ndim == 0:
        return (x1 * x2).to(out)
    if x2.ndim > 2:
        return torch.tensordot(x1, x2, dims=([-1], [-2])).to(out)
    return torch.matmul(x1, x2).to(out)


@keras_op
def inner(x1, x2):
    (x1, x2), out = _compute(*to_tensors(x1, x2))
    return torch.inner(x1, x2).to(out)


@keras_op
def vdot(x1, x2):
    (x1, x2), out = _compute(x1, x2)
    return torch.vdot(x1.reshape(-1), x2.reshape(-1)).to(out)


@keras_op
def outer(x1, x2):
    x1, x2 = promote_natively(*to_tensors(x1, x2))
    return torch.outer(x1.reshape(-1), x2.reshape(-1))


@keras_op
def kron(x1, x2):
    x1, x2 = promote_natively(*to_tensors(x1, x2))
    return torch.kron(x1, x2)


@keras_op
def tensordot(x1, x2, axes=2):
    """Sum of products over `axes` (an int, or a pair of axis lists)."""
    if isinstance(axes, (list, tuple)):
        axes = tuple(_axes(a) for a in axes)
    (x1, x2), out = _compute(x1, x2)
    return torch.tensordot(x1, x2, dims=axes).to(out)


@keras_op
def cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Cross product of 3-vectors (2-vectors padded with a zero) along the last axes."""
    (x1, x2), out = _compute(x1, x2)
    if axis is not None:
        axisa = axisb = axisc = axis
    x1, x2 = torch.movedim(x1, axisa, -1), torch.movedim(x2, axisb, -1)
    both_2d = x1.shape[-1] == 2 and x2.shape[-1] == 2
    x1, x2 = (torch.nn.functional.pad(v, (0, 3 - v.shape[-1])) for v in (x1, x2))
    x1, x2 = torch.broadcast_tensors(x1, x2)
    result = torch.linalg.cross(x1, x2, dim=-1)
    return (result[..., 2] if both_2d else torch.movedim(result, -1, axisc)).to(out)


@keras_op
def einsum(subscripts, *operands, **kwargs):
    """Einstein summation; int8 operands give int32, operands of one float dtype keep it
    (float64 too, as Keras' torch einsum). Also NumPy's sublist form
    `einsum(a, [0, 1], b, [1], [0])`."""
    if not isinstance(subscripts, str):
        subscripts, operands = _sublist_subscripts((subscripts, *operands))
    dtypes = {dtype_of(o) for o in operands}
    dtype = "int32" if dtypes == {"int8"} else None
    if len(dtypes) == 1 and "float" in next(iter(dtypes)):
        dtype = dtypes.pop()
    elif has_wide(*operands):  # Keras' torch backend leaves 64-bit operands to torch.einsum
        dtype = standardize_dtype(functools.reduce(
            torch.promote_types, (t.dtype for t in promote_natively(*operands))))
    operands, out = _compute(*operands, dtype=dtype)
    return torch.einsum(subscripts, *operands).to(out)


def _sublist_subscripts(args) -> tuple:
    """`(a, [0, 1], b, [1], [0])` as `("ab,b->a", (a, b))`: operands alternate with their
    axis labels (ints or `...`); an odd trailing list labels the output."""
    def letters(labels):
        return "".join("..." if label is Ellipsis else string.ascii_letters[int(label)]
                       for label in labels)

    operands, specs = args[0::2], [letters(labels) for labels in args[1::2]]
    if len(args) % 2:
        operands, output = operands[:-1], "->" + letters(args[-1])
    else:
        output = ""
    return ",".join(specs) + output, operands


@keras_op
def trapezoid(y, x=None, dx=1.0, axis=-1):
    """Integral of `y` by the trapezoid rule (sample points `x` or spacing `dx`)."""
    y = convert_to_tensor(y)
    if not y.is_floating_point():
        y = y.to(_floatx(None))
    if x is None:
        return torch.trapezoid(y, dx=dx, dim=axis)
    (x,) = to_tensors(x)
    return torch.trapezoid(y, x.to(y.device), dim=axis)


@keras_op
def vander(x, N=None, increasing=False):
    x = convert_to_tensor(x)
    dtype = torch_dtype(result_type(dtype_of(x)))
    return torch.vander(x, N=N, increasing=increasing).to(dtype)


@keras_op
def diff(a, n=1, axis=-1):
    return torch.diff(convert_to_tensor(a), n=n, dim=axis)


@keras_op
def vectorize(pyfunc, *, excluded=None, signature=None):
    """`pyfunc` mapped over the leading (broadcast) axes of its arguments, via `torch.vmap`.

    Example: `vectorize(lambda a, b: a + b)([1, 2], 2)` gives `[3, 4]`.
    """
    if not callable(pyfunc):
        raise ValueError(f"ops.vectorize: `pyfunc` must be callable. Received: {pyfunc!r}"[:120])
    excluded = set(excluded or ())
    core = None if signature is None else _core_dims(signature)

    def wrapped(*args):
        mapped = [i for i in range(len(args)) if i not in excluded and args[i] is not None]
        tensors = to_tensors(*(args[i] for i in mapped))
        ranks = [0] * len(mapped) if core is None else [len(core[i]) for i in mapped]
        loop = torch.broadcast_shapes(*(t.shape[:t.ndim - r] for t, r in zip(tensors, ranks)))
        flat = [t.expand(*loop, *t.shape[t.ndim - r:]).reshape(-1, *t.shape[t.ndim - r:])
                for t, r in zip(tensors, ranks)]

        def call(*values):
            full_args = list(args)
            for i, v in zip(mapped, values):
                full_args[i] = v
            return pyfunc(*full_args)

        if not flat:
            return call()
        out = torch.vmap(call)(*flat)
        return out.reshape(*loop, *out.shape[1:])

    return wrapped


def _core_dims(signature: str) -> list[tuple]:
    inputs = signature.replace(" ", "").split("->")[0]
    return [tuple(d for d in group.split(",") if d) for group in inputs[1:-1].split("),(")]


__all__ = module_all()
