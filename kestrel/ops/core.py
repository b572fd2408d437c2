"""Core ops: casts, shapes, scatter/slice updates and control flow as Python loops on tensors."""
from __future__ import annotations

import builtins

import numpy as np
import torch
from torch.utils import _pytree as pytree

from kestrel.backend.dtypes import standardize_dtype
from kestrel.layers.node import is_string_array
from kestrel.ops import convert
from kestrel.ops.convert import to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all


def _register_plain(fn):
    """Register `fn` by name but keep it plain: it answers for KerasTensors itself."""
    keras_op(fn)
    return fn


@keras_op
def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """A torch tensor from a tensor, array, scalar or nested list (Keras' dtype rules).

    Strings (a `str`, lists of them, a NumPy string array) give a NumPy string array: Kestrel's
    string tensors, which string Inputs and layers take (as Keras' TensorFlow backend gives a
    string tensor, e.g. for a raw sample fed to a FeatureSpace model).
    """
    if ragged:
        raise ValueError("ops.convert_to_tensor: Kestrel has no ragged tensors. "
                         "Received: ragged=True")
    if dtype in (None, "string") and _is_string_data(x):
        return np.asarray(x)
    return convert.convert_to_tensor(x, dtype=dtype, sparse=sparse)


def _is_string_data(x) -> bool:
    if isinstance(x, (str, bytes)):
        return True
    if isinstance(x, (list, tuple)):
        leaves = list(convert._leaves(x))
        return bool(leaves) and all(isinstance(v, (str, bytes)) for v in leaves)
    return is_string_array(x)


@_register_plain
def convert_to_numpy(x):
    """A NumPy array of `x` (detached, on the host; bfloat16 read as float32)."""
    if isinstance(x, (list, tuple)):
        return np.array([convert_to_numpy(v) for v in x])
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if isinstance(x, float) and hasattr(x, "__array__"):  # optimizer.learning_rate: float32
        return np.array(x.__array__())
    return np.array(x)


@_register_plain
def is_tensor(x) -> bool:
    """Whether `x` is a torch tensor (KerasTensors are not)."""
    return isinstance(x, torch.Tensor)


@_register_plain
def shape(x) -> tuple:
    """The shape as a tuple of ints (None for unknown sizes of KerasTensors)."""
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if hasattr(x, "shape"):
        return tuple(None if d is None else int(d) for d in x.shape)
    return tuple(convert.convert_to_tensor(x).shape)


@_register_plain
def dtype(x) -> str:
    """The Keras dtype name of `x`, e.g. `"float32"`."""
    return standardize_dtype(convert.dtype_of(x) if not hasattr(x, "dtype") else x.dtype)


@keras_op
def cast(x, dtype):
    """`x` converted to `dtype`."""
    return convert.convert_to_tensor(x, dtype=dtype)


def _limits(name: str) -> tuple:
    if name == "bool":
        return 0, 1
    info = torch.iinfo if "int" in name else torch.finfo
    limits = info(torch_dtype(name))
    return limits.min, limits.max


@keras_op
def saturate_cast(x, dtype):
    """Cast after clipping `x` to the range of `dtype` (no wrap-around)."""
    (x,) = to_tensors(x)
    out_name, in_name = standardize_dtype(dtype), standardize_dtype(x.dtype)
    (in_min, in_max), (out_min, out_max) = _limits(in_name), _limits(out_name)
    low = torch.tensor(builtins.max(in_min, out_min), dtype=x.dtype)
    if low.item() < out_min:
        low = torch.nextafter(low, torch.zeros_like(low))
    high = torch.tensor(builtins.min(in_max, out_max), dtype=x.dtype)
    if high.item() > out_max:
        high = torch.nextafter(high, torch.zeros_like(high))
    if x.dtype != torch.bool:
        x = torch.clamp(x, low.item(), high.item())
    return x.to(torch_dtype(out_name))


@keras_op
def stop_gradient(variable):
    """`variable` cut from autograd."""
    (variable,) = to_tensors(variable)
    return variable.detach()


@keras_op
def unstack(x, num=None, axis=0):
    """The slices of `x` along `axis`, as a list."""
    (x,) = to_tensors(x)
    if num is not None and num != x.shape[axis]:
        raise ValueError(f"ops.unstack: num must equal the size of axis {axis}. "
                         f"Received: num={num}, size={x.shape[axis]}")
    return list(torch.unbind(x, dim=axis))


@keras_op
def scatter(indices, values, shape):
    """Zeros of `shape` with `values` added at `indices` (duplicates sum)."""
    indices, values = to_tensors(indices, values)
    shape = tuple(int(d) for d in shape)
    out = torch.zeros(shape, dtype=values.dtype, device=values.device)
    depth = indices.shape[-1]
    index = tuple(indices.reshape(-1, depth).long().T)
    return out.index_put_(index, values.reshape(-1, *shape[depth:]), accumulate=True)


_REDUCTIONS = {"max": torch.maximum, "min": torch.minimum, "mul": torch.multiply}


@keras_op
def scatter_update(inputs, indices, updates, reduction=None):
    """`inputs` with `updates` written (or combined by `reduction`) at `indices`."""
    inputs, indices = to_tensors(inputs, indices)
    (updates,) = to_tensors(updates, dtype=inputs.dtype)
    index = tuple(indices.long().T)
    out = inputs.clone()
    if reduction is None:
        out[index] = updates
    elif reduction == "add":
        out.index_put_(index, updates, accumulate=True)
    elif reduction in _REDUCTIONS:
        combine = _REDUCTIONS[reduction]
        for row, update in zip(indices.long(), updates):
            at = tuple(row.tolist())
            out[at] = combine(out[at], update)
    else:
        raise ValueError("ops.scatter_update: reduction must be None, 'add', 'max', 'min' or "
                         f"'mul'. Received: reduction={reduction!r}")
    return out


def _starts(start_indices) -> list[int]:
    if isinstance(start_indices, torch.Tensor):
        return [int(v) for v in start_indices.tolist()]
    return [int(v) for v in start_indices]


@keras_op
def slice(inputs, start_indices, shape):
    """The block of `inputs` of `shape` starting at `start_indices`."""
    (inputs,) = to_tensors(inputs)
    sizes = _starts(shape)
    return inputs[tuple(builtins.slice(s, s + n) for s, n in zip(_starts(start_indices), sizes))]


@keras_op
def slice_update(inputs, start_indices, updates):
    """`inputs` with the block at `start_indices` replaced by `updates`."""
    (inputs,) = to_tensors(inputs)
    (updates,) = to_tensors(updates, dtype=inputs.dtype)
    out = inputs.clone()
    region = tuple(builtins.slice(s, s + n) for s, n in zip(_starts(start_indices), updates.shape))
    out[region] = updates
    return out


# ------------------------------------------------------------------ control flow
@keras_op
def cond(pred, true_fn, false_fn):
    """`true_fn()` if `pred` else `false_fn()`."""
    return true_fn() if bool(pred) else false_fn()


@keras_op
def switch(index, branches, *operands):
    """`branches[index](*operands)`, with `index` clamped to the valid range."""
    chosen = builtins.min(builtins.max(int(index), 0), len(branches) - 1)
    return branches[chosen](*operands)


@keras_op
def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """Run `loop_vars = body(*loop_vars)` while `cond(*loop_vars)`; a tuple/list gives a tuple."""
    many = isinstance(loop_vars, (tuple, list))
    values = tuple(pytree.tree_map(convert.convert_to_tensor, tuple(loop_vars) if many
                                   else (loop_vars,)))
    step = 0
    while (maximum_iterations is None or step < maximum_iterations) and bool(cond(*values)):
        values = body(*values)
        values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
        step += 1
    return values if many else values[0]


@keras_op
def fori_loop(lower, upper, body_fun, init_val):
    """`init_val` passed through `body_fun(i, value)` for i in range(lower, upper)."""
    value = init_val
    for i in range(int(lower), int(upper)):
        value = body_fun(i, value)
    return value


def _stack(trees: list, like=None):
    """Stack a list of same-structured trees of tensors leaf-wise."""
    leaves = [pytree.tree_flatten(t)[0] for t in trees]
    spec = pytree.tree_flatten(trees[0])[1]
    return pytree.tree_unflatten([torch.stack([convert.convert_to_tensor(v) for v in group])
                                  for group in zip(*leaves)], spec)


@keras_op
def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """Loop `carry, y = f(carry, x)` over the leading axis of `xs`; return (carry, stacked ys)."""
    if not callable(f):
        raise TypeError(f"ops.scan: f must be callable. Received: f={type(f).__name__}")
    if not isinstance(unroll, bool) and (not isinstance(unroll, int) or unroll < 1):
        raise ValueError(f"ops.scan: unroll must be a positive integer or a boolean. "
                         f"Received: unroll={unroll!r}")
    if xs is None and length is None:
        raise ValueError("ops.scan: got no `xs` to scan over and `length` not provided.")
    leaves, spec = pytree.tree_flatten(xs) if xs is not None else ([], None)
    leaves = [convert.convert_to_tensor(v) for v in leaves]
    steps = int(length) if length is not None else leaves[0].shape[0]
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    init_leaves, init_spec = pytree.tree_flatten(init)
    carry = pytree.tree_unflatten([convert.convert_to_tensor(v) for v in init_leaves], init_spec)
    ys = []
    for i in order:
        x = pytree.tree_unflatten([v[i] for v in leaves], spec) if xs is not None else None
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys or pytree.tree_flatten(ys[0])[0] == []:
        return carry, ys[0] if ys else None
    return carry, _stack(ys)


@keras_op
def map(f, xs):
    """`f` applied to each slice of `xs` along its leading axis, results stacked."""
    return scan.raw(lambda carry, x: (carry, f(x)), (), xs)[1]


@keras_op
def vectorized_map(function, elements):
    """`function` mapped over the leading axis of `elements` with `torch.vmap`."""
    return torch.vmap(function)(elements)


@keras_op
def associative_scan(f, elems, reverse=False, axis=0):
    """Inclusive scan of `elems` along `axis` with the associative `f` (log-depth)."""
    leaves, spec = pytree.tree_flatten(elems)
    leaves = [convert.convert_to_tensor(v) for v in leaves]
    size = leaves[0].shape[axis]
    if builtins.any(v.shape[axis] != size for v in leaves):
        raise ValueError("ops.associative_scan: every element must have the same size along "
                         f"axis {axis}. Received: sizes={[v.shape[axis] for v in leaves]}")
    if reverse:
        leaves = [v.flip(axis) for v in leaves]
    out, offset = leaves, 1

    def pack(vs):
        return pytree.tree_unflatten(list(vs), spec)

    while offset < size:
        head = [v.narrow(axis, 0, offset) for v in out]
        left = pack(v.narrow(axis, 0, size - offset) for v in out)
        right = pack(v.narrow(axis, offset, size - offset) for v in out)
        tail = pytree.tree_flatten(f(right, left) if reverse else f(left, right))[0]
        out = [torch.cat([h, t], dim=axis) for h, t in zip(head, tail)]
        offset *= 2
    if reverse:
        out = [v.flip(axis) for v in out]
    return pack(out)


# ------------------------------------------------------------------ gradients
class _CustomGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, forward_fn, kwargs, *args):
        output, ctx.grad_fn = forward_fn(*args, **kwargs)
        ctx.save_for_backward(*[a for a in args if isinstance(a, torch.Tensor)])
        return output

    @staticmethod
    def backward(ctx, upstream):
        grads = ctx.grad_fn(*ctx.saved_tensors, upstream=upstream)
        return (None, None, *(grads if isinstance(grads, tuple) else (grads,)))


@_register_plain
def custom_gradient(f):
    """Decorate `f(*args) -> (output, grad_fn)`; `grad_fn(*args, upstream=g)` gives the grads.

        @custom_gradient
        def log1pexp(x):
            e = torch.exp(x)
            return torch.log(1 + e), lambda x, upstream: upstream * (1 - 1 / (1 + e))
    """
    def wrapped(*args, **kwargs):
        return _CustomGradient.apply(f, kwargs, *args)

    wrapped.__name__ = getattr(f, "__name__", "custom_gradient")
    wrapped.__doc__ = f.__doc__
    return wrapped


__all__ = module_all()
