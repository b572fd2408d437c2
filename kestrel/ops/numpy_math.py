"""Element-wise math, comparisons, logic and reductions of `kestrel.ops.numpy`."""
from __future__ import annotations

import torch

from kestrel.ops.convert import float_result, promote, to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all


@keras_op
def add(x1, x2):
    """`x1 + x2` element-wise, with broadcasting and Keras' dtype promotion."""
    x1, x2 = promote(x1, x2)
    return torch.add(x1, x2)


@keras_op
def subtract(x1, x2):
    x1, x2 = promote(x1, x2)
    return torch.subtract(x1, x2)


@keras_op
def multiply(x1, x2):
    x1, x2 = promote(x1, x2)
    return torch.multiply(x1, x2)


@keras_op
def divide(x1, x2):
    """True division; integer inputs give floatx."""
    x1, x2 = promote(x1, x2, dtype=float_result(x1, x2))
    return torch.divide(x1, x2)


@keras_op
def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (all axes when None); integer inputs give floatx."""
    (x,) = to_tensors(x)
    out_dtype = torch_dtype(float_result(x))
    dims = () if axis is None else axis
    return torch.mean(x.to(out_dtype), dim=dims, keepdim=keepdims)


__all__ = module_all()
