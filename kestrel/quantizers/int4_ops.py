"""int4 helpers of `keras.quantizers`: nibble packing and grouped zero-point quantization."""
from __future__ import annotations

import math

import torch

from kestrel import config
from kestrel.quantizers.quantizers import _EPSILON, _tensor

_PACK_DTYPES = {"int8": torch.int8, "uint8": torch.uint8}


def _check_pack_dtype(dtype: str) -> torch.dtype:
    if dtype not in _PACK_DTYPES:
        raise ValueError(f"Expected dtype to be 'int8' or 'uint8', but got '{str(dtype)[:50]}'.")
    return _PACK_DTYPES[dtype]


def pack_int4(arr, axis=0, dtype="int8"):
    """Pack int4 values (int8 in [-8, 7]) two per byte along `axis`: the first of each pair
    in the low nibble. An odd length is padded with a zero.

    Returns `(packed, packed_shape, original_length)`.

    Example:
        >>> packed, shape, n = pack_int4(torch.tensor([[-3, 7], [2, -8], [1, 0]], dtype=torch.int8))
        >>> packed.tolist(), shape, n
        ([[45, -121], [1, 0]], (2, 2), 3)
    """
    torch_dtype = _check_pack_dtype(dtype)
    arr = _tensor(arr)
    if arr.dtype != torch_dtype:
        raise TypeError(f"Expected {dtype} tensor for packing, got "
                        f"{str(arr.dtype).replace('torch.', '')}.")
    axis = axis + arr.dim() if axis < 0 else axis
    front = arr.movedim(axis, 0)
    length = front.shape[0]
    if length % 2:
        front = torch.cat([front, front.new_zeros((1, *front.shape[1:]))])
    low = front[0::2].to(torch.int16) & 0x0F
    high = front[1::2].to(torch.int16) & 0x0F
    packed = (low | (high << 4)).to(torch.uint8)
    packed = packed.view(torch.int8) if torch_dtype is torch.int8 else packed
    packed = packed.movedim(0, axis)
    return packed, tuple(packed.shape), length


def unpack_int4(packed, orig_len, axis=0, dtype="int8"):
    """`pack_int4`'s inverse: nibbles back to int8 values in [-8, 7] (uint8: [0, 15]) with
    the padding removed.

    Example:
        >>> unpack_int4(torch.tensor([[45, -121], [1, 0]], dtype=torch.int8), 3).tolist()
        [[-3, 7], [2, -8], [1, 0]]
    """
    torch_dtype = _check_pack_dtype(dtype)
    packed = _tensor(packed)
    if packed.dtype not in (torch.int8, torch.uint8):
        raise TypeError(f"Expected int8 or uint8 tensor for unpacking, got {packed.dtype}")
    axis = axis + packed.dim() if axis < 0 else axis
    front = packed.movedim(axis, 0).to(torch.int16) & 0xFF
    low, high = front & 0x0F, (front >> 4) & 0x0F
    if torch_dtype is torch.int8:
        low, high = (low ^ 8) - 8, (high ^ 8) - 8
    stacked = torch.stack([low, high], dim=1).reshape(-1, *front.shape[1:])
    return stacked[:orig_len].to(torch_dtype).movedim(0, axis)


def abs_max_quantize_grouped_with_zero_point(inputs, block_size, value_range=(-8, 7),
                                             dtype="int8", epsilon=_EPSILON, to_numpy=False):
    """Asymmetric quantization of a 2D `(input_dim, output_dim)` tensor in groups of
    `block_size` rows: `q = clip(round(x / scale) + zero_point)`.

    Returns `(quantized, scale, zero_point)`; scale and the int8 zero point have shape
    `(ceil(input_dim / block_size), output_dim)`. As Keras, `to_numpy=True` pads a single
    short group with zeros before taking its range, the default path widens an empty range.

    Example:
        >>> q, s, z = abs_max_quantize_grouped_with_zero_point(torch.randn(6, 3), 4)
        >>> q.shape, s.shape, z.dtype
        (torch.Size([6, 3]), torch.Size([2, 3]), torch.int8)
    """
    inputs = _tensor(inputs)
    input_dim, output_dim = inputs.shape
    qmin, qmax = value_range
    groups = math.ceil(input_dim / block_size)
    padded = torch.cat([inputs, inputs.new_zeros(groups * block_size - input_dim, output_dim)])
    grouped = padded.reshape(groups, block_size, output_dim)
    stats = grouped if (to_numpy or groups > 1) else inputs.unsqueeze(0)
    low, high = stats.amin(dim=1), stats.amax(dim=1)
    if not to_numpy:  # Keras' tensor path widens an empty range to [min - 1, max + 1]
        same = low == high
        low, high = torch.where(same, low - 1, low), torch.where(same, high + 1, high)
    scale = (high - low + epsilon) / (qmax - qmin)
    if not to_numpy:
        scale = torch.where(scale <= 0, torch.full_like(scale, 1e-8), scale)
    zero = torch.clamp(torch.round(-low / scale) + qmin, qmin, qmax)
    q = torch.clamp(torch.round(grouped / scale[:, None]) + zero[:, None], qmin, qmax)
    q = q.reshape(-1, output_dim)[:input_dim].to(config.to_torch_dtype(dtype))
    return q, scale.to(inputs.dtype), zero.to(torch.int8)

