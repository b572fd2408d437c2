"""Activation ops of `kestrel.ops.nn`: Keras' argument names and dtypes over
`kestrel.activations`' torch math.

Integer inputs give floatx (relu, relu6 and hard_tanh keep them, as in Keras).

>>> relu6([-1.0, 3.0, 9.0])
tensor([0., 3., 6.])
"""
from __future__ import annotations

import functools

import torch

from kestrel.activations import activations as act
from kestrel.ops.convert import float_result, to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all


def _tensor(x) -> torch.Tensor:
    (x,) = to_tensors(x)
    return x


def _float(x) -> torch.Tensor:
    """`x` as a tensor, integer and bool values cast to floatx."""
    x = _tensor(x)
    return x if x.is_floating_point() or x.is_complex() else x.to(torch_dtype(float_result(x)))


def _keep_int(x) -> torch.Tensor:
    """`x` as a tensor; integers stay integers, bools become int32 (clamping needs numbers)."""
    x = _tensor(x)
    return x.to(torch.int32) if x.dtype == torch.bool else x

# Parameterless activations: Keras' op name -> the `kestrel.activations` function it applies.
_FLOAT_ACTIVATIONS = {
    "sigmoid": act.sigmoid, "sparse_sigmoid": act.sparse_sigmoid, "softplus": act.softplus,
    "softsign": act.softsign, "sparse_plus": act.sparse_plus, "silu": act.silu,
    "swish": act.silu, "log_sigmoid": act.log_sigmoid, "hard_sigmoid": act.hard_sigmoid,
    "hard_silu": act.hard_silu, "hard_swish": act.hard_silu, "selu": act.selu,
    "tanh_shrink": act.tanh_shrink,
}


def _float_activation(name: str, fn):
    def op(x):
        return fn(_float(x))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Keras' `{name}` activation, element-wise; integer inputs give floatx."
    return keras_op(op)


for _name, _fn in _FLOAT_ACTIVATIONS.items():
    globals()[_name] = _float_activation(_name, _fn)


@keras_op
def relu(x):
    """`max(x, 0)` element-wise; integer inputs stay integer."""
    return torch.relu(_keep_int(x))


@keras_op
def relu6(x):
    """`min(max(x, 0), 6)`; integer inputs stay integer."""
    return torch.clamp(_keep_int(x), 0, 6)


@keras_op
def hard_tanh(x):
    """`x` clipped to [-1, 1]; integer inputs stay integer."""
    return torch.clamp(_keep_int(x), -1, 1)


@keras_op
def soft_shrink(x, threshold=0.5):
    return act.soft_shrink(_float(x), threshold)


@keras_op
def squareplus(x, b=4):
    return act.squareplus(_float(x), b)


@keras_op
def leaky_relu(x, negative_slope=0.2):
    return act.leaky_relu(_float(x), negative_slope)


@keras_op
def elu(x, alpha=1.0):
    return act.elu(_float(x), alpha)


@keras_op
def gelu(x, approximate=True):
    """Gaussian error linear unit; Keras' op defaults to the tanh approximation."""
    return act.gelu(_float(x), approximate)


@keras_op
def celu(x, alpha=1.0):
    return act.celu(_float(x), alpha)


@keras_op
def glu(x, axis=-1):
    """Gated linear unit: halves `a, b` of `axis`, `a * sigmoid(b)`."""
    x = _float(x)
    if x.ndim == 0 or x.shape[axis] % 2:
        raise ValueError("ops.glu: the size of `axis` must be even. "
                         f"Received: shape={tuple(x.shape)}, axis={axis}")
    return act.glu(x, axis)


@keras_op
def hard_shrink(x, threshold=0.5):
    return act.hard_shrink(_float(x), threshold)


@keras_op
def threshold(x, threshold, default_value):
    """`x` where `x > threshold`, else `default_value` (integer inputs stay integer)."""
    return act.threshold(_keep_int(x), threshold, default_value)


def _over_axes(fn, x, axis):
    """`fn(x, -1)` over `axis` (an int, a tuple of ints, or None for every axis)."""
    x = _float(x)
    if x.is_floating_point() and x.dtype == torch.float16 and x.device.type == "cpu":
        return _over_axes(fn, x.float(), axis).to(torch.float16)
    if axis is None:
        return fn(x.reshape(-1), -1).reshape(x.shape)
    if isinstance(axis, int):
        return fn(x, axis)
    axes = sorted(a % x.ndim for a in axis)
    moved = x.movedim(axes, list(range(x.ndim - len(axes), x.ndim)))
    flat = fn(moved.reshape(*moved.shape[:x.ndim - len(axes)], -1), -1).reshape(moved.shape)
    return flat.movedim(list(range(x.ndim - len(axes), x.ndim)), axes)


@keras_op
def softmax(x, axis=-1):
    """Softmax over `axis` (int, tuple of ints, or None for all axes)."""
    return _over_axes(act.softmax, x, axis)


@keras_op
def log_softmax(x, axis=-1):
    """Log-softmax over `axis` (int, tuple of ints, or None for all axes)."""
    return _over_axes(act.log_softmax, x, axis)


@keras_op
def sparsemax(x, axis=-1):
    """Euclidean projection of `x` onto the probability simplex along `axis`."""
    return act.sparsemax(_float(x), axis)


def _own_class_op(fn):
    """The op of an activation Keras records as a class of its own (`keras.src.activations`'
    ReLU and Mish): the activation's torch math on converted inputs, op `activations.<name>`."""

    @functools.wraps(fn.raw)
    def op(x, *args, **kwargs):
        return fn.raw(_tensor(x), *args, **kwargs)

    return keras_op(op, prefix="activations.")


for _fn in (act.relu, act.mish):
    _own_class_op(_fn)


__all__ = module_all()
