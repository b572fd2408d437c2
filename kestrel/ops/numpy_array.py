"""Array creation, shape manipulation, joining, indexing and sorting of `kestrel.ops.numpy`."""
from __future__ import annotations

import torch

from kestrel.ops.convert import convert_to_tensor, promote, to_tensors
from kestrel.ops.dispatch import keras_op, module_all


@keras_op
def concatenate(xs, axis=0):
    """Join tensors along an existing `axis` (dtypes promoted as Keras does)."""
    return torch.cat(promote(*xs), dim=axis)


@keras_op
def get_item(x, key):
    """`x[key]`; a list key holding slices, None or Ellipsis is read as a tuple key."""
    if isinstance(key, list) and any(k is None or k is Ellipsis or isinstance(k, slice)
                                     for k in key):
        key = tuple(key)
    return convert_to_tensor(x)[key]


__all__ = module_all()
