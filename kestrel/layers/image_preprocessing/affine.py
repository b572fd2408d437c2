"""One batched affine warp for rotation, zoom, translation and shear, as Keras computes it.

A transform is Keras' 8 numbers `[a0, a1, a2, b0, b1, b2, c0, c1]` per image: the output pixel
`(x, y)` samples the input at `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)` with
`k = c0 x + c1 y + 1`. Sampling is bilinear or nearest; points outside the image follow
`fill_mode` (`reflect`: d c b a | a b c d | d c b a, `mirror`: d c b | a b c d | c b a,
`wrap`: a b c d | a b c d, `nearest`: a a | a b c d | d d, `constant`: `fill_value`).
"""
from __future__ import annotations

import math

import torch

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def _mirror(index: torch.Tensor, size: int) -> torch.Tensor:
    period = size - 1
    if period == 0:
        return torch.zeros_like(index)
    return ((index + period) % (2 * period) - period).abs()


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    return torch.div(_mirror(2 * index + 1, 2 * size + 1) - 1, 2, rounding_mode="floor")


_FIX_INDEX = {
    "constant": lambda index, size: index.clamp(0, size - 1),
    "nearest": lambda index, size: index.clamp(0, size - 1),
    "wrap": lambda index, size: index % size,
    "mirror": _mirror,
    "reflect": _reflect,
}


def _nodes(coordinate: torch.Tensor, interpolation: str):
    """(integer index, weight) pairs that interpolate at `coordinate` along one axis."""
    if interpolation == "nearest":
        return [(torch.round(coordinate).long(), None)]
    lower = torch.floor(coordinate)
    upper_weight = coordinate - lower
    lower = lower.long()
    return [(lower, 1 - upper_weight), (lower + 1, upper_weight)]


def affine_transform(images: torch.Tensor, transforms: torch.Tensor,
                     interpolation: str = "bilinear", fill_mode: str = "constant",
                     fill_value: float = 0.0, data_format: str = "channels_last") -> torch.Tensor:
    """Warp a batch of images, each by its own transform, in one set of batched torch ops.

    Args:
        images: `(batch, height, width, channels)` (or channels-first) float tensor.
        transforms: `(batch, 8)` or `(8,)` transforms in Keras' layout (see the module doc).
        interpolation: `"bilinear"` or `"nearest"`.
        fill_mode: `"reflect"`, `"wrap"`, `"constant"`, `"nearest"` or `"mirror"`.
        fill_value: value of points outside the image with `fill_mode="constant"`.

    Example:
        >>> shift = torch.tensor([1.0, 0, -1, 0, 1, 0, 0, 0])  # content moves 1 pixel right
        >>> affine_transform(torch.arange(3.0).reshape(1, 1, 3, 1), shift).flatten()
        tensor([0., 0., 1.])
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"affine_transform: interpolation must be one of {INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation!r}")
    if fill_mode not in _FIX_INDEX:
        raise ValueError(f"affine_transform: fill_mode must be one of {tuple(_FIX_INDEX)}. "
                         f"Received: fill_mode={fill_mode!r}")
    if data_format == "channels_first":
        images = images.permute(0, 2, 3, 1)
    batch, height, width, _ = images.shape
    transforms = transforms.to(device=images.device, dtype=images.dtype).reshape(-1, 8)
    a0, a1, a2, b0, b1, b2, c0, c1 = (t.reshape(-1, 1, 1) for t in transforms.unbind(-1))
    y = torch.arange(height, device=images.device, dtype=images.dtype).reshape(1, -1, 1)
    x = torch.arange(width, device=images.device, dtype=images.dtype).reshape(1, 1, -1)
    k = c0 * x + c1 * y + 1
    x_in = ((a0 * x + a1 * y + a2) / k).expand(batch, height, width)
    y_in = ((b0 * x + b1 * y + b2) / k).expand(batch, height, width)
    fix = _FIX_INDEX[fill_mode]
    rows = torch.arange(batch, device=images.device).reshape(-1, 1, 1)
    output = None
    for yi, wy in _nodes(y_in, interpolation):
        for xi, wx in _nodes(x_in, interpolation):
            values = images[rows, fix(yi, height), fix(xi, width)]
            if fill_mode == "constant":
                inside = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
                values = torch.where(inside.unsqueeze(-1), values, fill_value)
            if wy is not None:
                values = values * (wy * wx).unsqueeze(-1)
            output = values if output is None else output + values
    return output.permute(0, 3, 1, 2) if data_format == "channels_first" else output


def rotation_matrix(angle: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`(batch, 8)` transforms that rotate images by `angle` degrees (counter-clockwise)
    about their centre, as Keras builds them."""
    radians = angle * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    zeros = torch.zeros_like(cos)
    return torch.stack([cos, -sin, cx - cx * cos + cy * sin, sin, cos, cy - cx * sin - cy * cos,
                        zeros, zeros], dim=-1)
