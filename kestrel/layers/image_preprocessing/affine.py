"""One batched affine warp for rotation, zoom, translation and shear, as Keras computes it.

A transform is Keras' 8 numbers `[a0, a1, a2, b0, b1, b2, c0, c1]` per image: the output pixel
`(x, y)` samples the input at `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)` with
`k = c0 x + c1 y + 1`. Sampling is bilinear or nearest; points outside the image follow
`fill_mode` (`reflect`: d c b a | a b c d | d c b a, `wrap`: a b c d | a b c d,
`nearest`: a a | a b c d | d d, `constant`: `fill_value`). The warp is one
`torch.nn.functional.grid_sample` call, whose padding modes give Keras' numbers: `border` is
`nearest`, `reflection` (about the pixel edges) is `reflect`, `zeros` on `images - fill_value`
is `constant`, and `wrap` samples a copy of the image extended by its first row and column.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")
_PADDING = {"reflect": "reflection", "nearest": "border", "constant": "zeros", "wrap": "border",
            "mirror": "reflection"}


def _sample_points(transforms: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`(batch, height, width, 2)` input points `(x, y)`, in pixels, of every output pixel:
    one batched matmul of homogeneous points."""
    matrix = torch.cat([transforms, torch.ones_like(transforms[:, :1])], dim=1).reshape(-1, 3, 3)
    y, x = torch.meshgrid(torch.arange(height, dtype=transforms.dtype, device=transforms.device),
                          torch.arange(width, dtype=transforms.dtype, device=transforms.device),
                          indexing="ij")
    pixels = torch.stack([x.flatten(), y.flatten(), torch.ones_like(x.flatten())], dim=-1)
    points = pixels @ matrix.transpose(1, 2)
    return (points[..., :2] / points[..., 2:]).reshape(-1, height, width, 2)


def grid_warp(images: torch.Tensor, points: torch.Tensor, interpolation: str = "bilinear",
              fill_mode: str = "constant", fill_value: float = 0.0) -> torch.Tensor:
    """Sample channels-first `images` at `points` `(batch, height, width, 2)` (pixel `(x, y)`,
    integers at pixel centres), in one `grid_sample` call; `fill_mode` as in the module doc,
    plus `mirror` (d c b | a b c d | c b a: reflection about the edge pixels' centres)."""
    height, width = images.shape[-2:]
    size = torch.tensor([width, height], dtype=points.dtype, device=points.device)
    align = fill_mode == "mirror"
    if fill_mode == "wrap":
        images = torch.cat([images, images[:, :, :1]], dim=2)
        images = torch.cat([images, images[:, :, :, :1]], dim=3)
        grid = (2 * torch.remainder(points, size) + 1) / (size + 1) - 1
    elif align:
        grid = 2 * points / (size - 1).clamp(min=1) - 1
    else:
        grid = (2 * points + 1) / size - 1
    shift = fill_mode == "constant" and fill_value != 0
    output = F.grid_sample(images - fill_value if shift else images,
                           grid.expand(images.shape[0], -1, -1, -1), mode=interpolation,
                           padding_mode=_PADDING[fill_mode], align_corners=align)
    return output + fill_value if shift else output


def affine_transform(images: torch.Tensor, transforms: torch.Tensor,
                     interpolation: str = "bilinear", fill_mode: str = "constant",
                     fill_value: float = 0.0, data_format: str = "channels_last") -> torch.Tensor:
    """Warp a batch of images, each by its own transform, in one batched torch op.

    Args:
        images: `(batch, height, width, channels)` (or channels-first) float tensor.
        transforms: `(batch, 8)` or `(8,)` transforms in Keras' layout (see the module doc).
        interpolation: `"bilinear"` or `"nearest"`.
        fill_mode: `"reflect"`, `"wrap"`, `"constant"`, `"nearest"` or `"mirror"`.
        fill_value: value of points outside the image with `fill_mode="constant"`.

    Example:
        >>> shift = torch.tensor([1.0, 0, -1, 0, 1, 0, 0, 0])  # content moves 1 pixel right
        >>> affine_transform(torch.arange(3.0).reshape(1, 1, 3, 1), shift).flatten().round()
        tensor([0., 0., 1.])

    Coordinates pass through grid_sample's [-1, 1] scale, which adds float noise of about
    1e-6 pixel: nearest sampling exactly half-way between two pixels may pick either.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"affine_transform: interpolation must be one of {INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation!r}")
    if fill_mode not in (*FILL_MODES, "mirror"):  # the layers offer FILL_MODES; ops add mirror
        raise ValueError(f"affine_transform: fill_mode must be one of {FILL_MODES} or 'mirror'. "
                         f"Received: fill_mode={fill_mode!r}")
    if data_format == "channels_last":
        images = images.permute(0, 3, 1, 2)
    height, width = images.shape[-2:]
    transforms = transforms.to(device=images.device, dtype=images.dtype).reshape(-1, 8)
    output = grid_warp(images, _sample_points(transforms, height, width), interpolation,
                       fill_mode, fill_value)
    return output.permute(0, 2, 3, 1) if data_format == "channels_last" else output


def rotation_matrix(angle: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`(batch, 8)` transforms that rotate images by `angle` degrees (counter-clockwise)
    about their centre, as Keras builds them."""
    radians = angle * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    zeros = torch.zeros_like(cos)
    return torch.stack([cos, -sin, cx - cx * cos + cy * sin, sin, cos, cy - cx * sin - cy * cos,
                        zeros, zeros], dim=-1)
