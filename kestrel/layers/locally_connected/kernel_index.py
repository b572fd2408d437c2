"""Where each weight of a locally-connected layer lives in Keras 2's three kernel layouts.

A locally-connected layer computes, for every output position `p`, `patch_p @ W_p` with its
own `W_p` of shape `(patch_size, filters)`. Kestrel always computes from this "local" kernel
`(positions, patch_size, filters)`, which is Keras 2's `implementation=1` layout. The other two
layouts are read through a gather table built once here (NumPy, at build time):

- `implementation=2`: a dense kernel over every (input element, output element) pair,
  `(*in_spatial, channels, *out_spatial, filters)` (channels-last) or
  `(channels, *in_spatial, filters, *out_spatial)` (channels-first); only the connected pairs
  are used.
- `implementation=3`: the connected pairs only, as a vector ordered by
  `(output flat index, input flat index)`, both flattened in the data format's order.

Patches are flattened `(*kernel, channels)` (channels-last) or `(channels, *kernel)`
(channels-first); with `padding="same"` a window starts `kernel // 2` before `stride * p`, and
positions outside the input get the index `size` (a zero appended to the weights).
"""
from __future__ import annotations

import numpy as np


def output_length(length: int, kernel: int, stride: int, padding: str) -> int:
    """The number of window positions along one dimension."""
    if padding == "same":
        return -(-length // stride)
    return (length - kernel) // stride + 1


def window_offset(kernel: tuple, padding: str) -> tuple:
    """How far before `stride * p` each window starts (Keras 2's `conv_connected_inputs`)."""
    return tuple(k // 2 for k in kernel) if padding == "same" else (0,) * len(kernel)


def _grids(in_spatial, channels, kernel, strides, padding, filters, channels_last):
    """Broadcast arrays (out position, patch element, filter) of input coordinates."""
    rank = len(in_spatial)
    out_spatial = tuple(output_length(n, k, s, padding)
                        for n, k, s in zip(in_spatial, kernel, strides))
    offsets = window_offset(kernel, padding)
    out = np.stack(np.unravel_index(np.arange(int(np.prod(out_spatial))), out_spatial))
    patch_shape = (*kernel, channels) if channels_last else (channels, *kernel)
    patch = np.stack(np.unravel_index(np.arange(int(np.prod(patch_shape))), patch_shape))
    taps = patch[:rank] if channels_last else patch[1:]
    channel = patch[rank] if channels_last else patch[0]
    inputs = [(out[d] * strides[d] - offsets[d])[:, None] + taps[d][None, :]
              for d in range(rank)]
    valid = np.all([(i >= 0) & (i < n) for i, n in zip(inputs, in_spatial)], axis=0)
    inputs = [np.clip(i, 0, n - 1) for i, n in zip(inputs, in_spatial)]
    shape = (out.shape[1], patch.shape[1], filters)
    expand = lambda a: np.broadcast_to(a[..., None], shape)  # noqa: E731
    grid = {
        "in": [expand(i) for i in inputs], "channel": expand(np.broadcast_to(channel, valid.shape)),
        "out": [np.broadcast_to(o[:, None, None], shape) for o in out],
        "filter": np.broadcast_to(np.arange(filters), shape), "valid": expand(valid),
    }
    return grid, out_spatial


def kernel_shape(implementation: int, in_spatial, channels, kernel, strides, padding, filters,
                 channels_last) -> tuple:
    """The Keras 2 shape of the kernel for `implementation` (1, 2 or 3)."""
    out_spatial = tuple(output_length(n, k, s, padding)
                        for n, k, s in zip(in_spatial, kernel, strides))
    if implementation == 1:
        return (int(np.prod(out_spatial)), int(np.prod(kernel)) * channels, filters)
    if implementation == 2:
        if channels_last:
            return (*in_spatial, channels, *out_spatial, filters)
        return (channels, *in_spatial, filters, *out_spatial)
    grid, _ = _grids(in_spatial, channels, kernel, strides, padding, filters, channels_last)
    return (int(grid["valid"].sum()),)


def gather_index(implementation: int, in_spatial, channels, kernel, strides, padding, filters,
                 channels_last) -> np.ndarray | None:
    """`(positions, patch_size, filters)` int64 indices into the flat kernel of
    `implementation` (None for 1, whose kernel is already local); `size` marks padding."""
    if implementation == 1:
        return None
    grid, out_spatial = _grids(in_spatial, channels, kernel, strides, padding, filters,
                               channels_last)
    valid = grid["valid"]
    if channels_last:
        inputs, outputs = (*grid["in"], grid["channel"]), (*grid["out"], grid["filter"])
        in_dims, out_dims = (*in_spatial, channels), (*out_spatial, filters)
    else:
        inputs, outputs = (grid["channel"], *grid["in"]), (grid["filter"], *grid["out"])
        in_dims, out_dims = (channels, *in_spatial), (filters, *out_spatial)
    if implementation == 2:
        flat = np.ravel_multi_index((*inputs, *outputs), (*in_dims, *out_dims))
        size = int(np.prod(in_dims) * np.prod(out_dims))
    else:
        pair = np.ravel_multi_index((*outputs, *inputs), (*out_dims, *in_dims))
        ordered = np.sort(pair[valid])
        flat = np.searchsorted(ordered, pair)
        size = ordered.size
    return np.where(valid, flat, size).astype(np.int64)
