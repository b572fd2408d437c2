"""Array helpers of `keras.utils`: `to_categorical`, `normalize`, and the categorical encoder
that the preprocessing layers share."""
from __future__ import annotations

import numpy as np
import torch


def to_categorical(x, num_classes=None):
    """Convert a vector of class indices to a one-hot matrix (class axis last).

    NumPy or lists give a float64 NumPy array (as Keras); a torch tensor gives a float32 tensor.
    A trailing axis of size 1 is dropped first.

    Example:
        >>> to_categorical([0, 2], num_classes=3)
        array([[1., 0., 0.],
               [0., 0., 1.]])
    """
    if isinstance(x, torch.Tensor):
        if x.dim() > 1 and x.shape[-1] == 1:
            x = x.reshape(x.shape[:-1])
        depth = int(num_classes) if num_classes else int(x.max()) + 1
        return torch.nn.functional.one_hot(x.long(), depth).float()
    x = np.array(x, dtype="int64")
    shape = x.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = tuple(shape[:-1])
    x = x.reshape(-1)
    if not num_classes:
        num_classes = np.max(x) + 1
    categorical = np.zeros((x.shape[0], num_classes))
    categorical[np.arange(x.shape[0]), x] = 1
    return categorical.reshape(shape + (num_classes,))


def normalize(x, axis=-1, order=2):
    """Divide `x` by its `order`-norm along `axis` (zero norms left as 1).

    NumPy in, NumPy out; a torch tensor gives a tensor.

    Example:
        >>> normalize(np.array([[3.0, 4.0]]))
        array([[0.6, 0.8]])
    """
    if isinstance(x, torch.Tensor):
        norm = torch.linalg.vector_norm(x, ord=order, dim=axis, keepdim=True)
        return x / torch.where(norm == 0, torch.ones_like(norm), norm)
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis or -1)


def encode_categorical(inputs: torch.Tensor, output_mode: str, depth: int,
                       dtype: torch.dtype, count_weights: torch.Tensor | None = None):
    """Encode integer indices as `"int"`, `"one_hot"`, `"multi_hot"` or `"count"` outputs.

    `multi_hot` and `count` reduce the last axis of rank >= 2 inputs (rank 1 inputs reduce the
    only axis); `one_hot` drops a trailing axis of size 1 and adds a `depth` axis.
    """
    if output_mode == "int":
        return inputs.to(dtype)
    if inputs.dim() == 0:
        inputs = inputs.unsqueeze(-1)
    inputs = inputs.long()
    if output_mode == "one_hot":
        if inputs.dim() > 1 and inputs.shape[-1] == 1:
            inputs = inputs.squeeze(-1)
        return torch.nn.functional.one_hot(inputs, depth).to(dtype)
    batch_shape = inputs.shape[:-1]
    flat = inputs.reshape(-1, inputs.shape[-1])
    out = torch.zeros(flat.shape[0], depth, dtype=torch.float64 if count_weights is not None
                      else dtype, device=inputs.device)
    if output_mode == "multi_hot":
        out.scatter_(1, flat, 1)
        return out.reshape(batch_shape + (depth,))
    if output_mode == "count":
        weights = torch.ones_like(flat, dtype=out.dtype) if count_weights is None else \
            count_weights.reshape(flat.shape).to(out.dtype)
        out.scatter_add_(1, flat, weights)
        out = out.reshape(batch_shape + (depth,))
        return out.to(count_weights.dtype) if count_weights is not None else out
    raise ValueError(f"Unknown output_mode. Received: output_mode={output_mode}")
