"""Resampling ops of `kestrel.ops.image`: `map_coordinates` and the affine, perspective and
elastic warps, on Kestrel's batched warp (`kestrel.layers.image_preprocessing.affine`).

A transform is Keras' 8 numbers `[a0, a1, a2, b0, b1, b2, c0, c1]`: output pixel `(x, y)`
samples the input at `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`, `k = c0 x + c1 y + 1`.
"""
from __future__ import annotations

import functools
import itertools
import operator

import torch

from kestrel.layers.image_preprocessing import affine as warp
from kestrel.ops.convert import float_result, to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all
from kestrel.ops.image_basic import _images, _last, gaussian_blur

image_op = keras_op(prefix="image.")
_ORDERS = {0: "nearest", 1: "bilinear"}



# Index handling of map_coordinates: where an out-of-range index reads from, per fill mode.
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


def _check(interpolation, fill_mode, op):
    if interpolation not in warp.INTERPOLATIONS:
        raise ValueError(f"ops.image.{op}: interpolation must be one of "
                         f"{warp.INTERPOLATIONS}. Received: interpolation={interpolation!r}")
    if fill_mode not in (*warp.FILL_MODES, "mirror"):
        raise ValueError(f"ops.image.{op}: fill_mode must be one of "
                         f"{(*warp.FILL_MODES, 'mirror')}. Received: fill_mode={fill_mode!r}")


@image_op
def map_coordinates(inputs, coordinates, order, fill_mode="constant", fill_value=0):
    """Sample `inputs` at `coordinates` (one array of positions per axis of `inputs`) with
    nearest (`order=0`) or linear (`order=1`) interpolation."""
    (inputs,) = to_tensors(inputs)
    coords = [to_tensors(inputs, c)[1] for c in coordinates]
    if len(coords) != inputs.ndim:
        raise ValueError("ops.image.map_coordinates: coordinates must have one entry per axis "
                         f"of inputs. Received: {len(coords)} for inputs.shape="
                         f"{tuple(inputs.shape)}")
    if order not in _ORDERS:
        raise ValueError(f"ops.image.map_coordinates: order must be 0 or 1. Received: {order}")
    _check("bilinear", fill_mode, "map_coordinates")
    fix = _FIX_INDEX[fill_mode]
    axes = []
    for coordinate, size in zip(coords, inputs.shape):
        coordinate = coordinate if coordinate.is_floating_point() else coordinate.float()
        axes.append([(index, weight, fix(index, size), (index >= 0) & (index < size))
                     for index, weight in _nodes(coordinate, _ORDERS[order])])
    result = None
    for nodes in itertools.product(*axes):
        values = inputs[tuple(fixed for _, _, fixed, _ in nodes)]
        if fill_mode == "constant":
            inside = functools.reduce(operator.and_, [valid for *_, valid in nodes])
            values = torch.where(inside, values, fill_value)
        weights = [w for _, w, _, _ in nodes if w is not None]
        if weights:
            values = functools.reduce(operator.mul, weights) * values
        result = values if result is None else result + values
    if not inputs.is_floating_point():
        result = result.round()
    return result.to(inputs.dtype)


def _warp(images, transforms, interpolation, fill_mode, fill_value, data_format, op):
    images = _images(images, op)
    single = images.ndim == 3
    x = images.unsqueeze(0) if single else images
    dtype = x.dtype
    work = x if x.is_floating_point() else x.to(torch_dtype(float_result(x)))
    transforms = transforms.reshape(-1, 8).expand(work.shape[0], 8)
    out = warp.affine_transform(work, transforms, interpolation, fill_mode, fill_value,
                                "channels_last" if _last(data_format, op) else "channels_first")
    out = out if dtype.is_floating_point else out.round().to(dtype)
    return out.squeeze(0) if single else out


@image_op
def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant",
                     fill_value=0, data_format=None):
    """Warp images by `transform` `(8,)` or `(batch, 8)` (see the module doc)."""
    _check(interpolation, fill_mode, "affine_transform")
    transform = to_tensors(images, transform)[1]
    if transform.ndim not in (1, 2):
        raise ValueError("ops.image.affine_transform: transform must have rank 1 or 2. "
                         f"Received: transform.shape={tuple(transform.shape)}")
    return _warp(images, transform, interpolation, fill_mode, fill_value, data_format,
                 "affine_transform")


def _homography(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """`(batch, 8)` projective transforms mapping each `end` corner to its `start` corner."""
    rows, rhs = [], []
    for i in range(4):
        (sx, sy), (ex, ey) = start[:, i].unbind(-1), end[:, i].unbind(-1)
        one, zero = torch.ones_like(ex), torch.zeros_like(ex)
        rows += [torch.stack([ex, ey, one, zero, zero, zero, -sx * ex, -sx * ey], -1),
                 torch.stack([zero, zero, zero, ex, ey, one, -sy * ex, -sy * ey], -1)]
        rhs += [sx, sy]
    return torch.linalg.solve(torch.stack(rows, 1), torch.stack(rhs, 1))


@image_op
def perspective_transform(images, start_points, end_points, interpolation="bilinear",
                          fill_value=0, data_format=None):
    """Warp images so that the 4 `start_points` `(x, y)` land on `end_points` (each
    `(4, 2)` or `(batch, 4, 2)`); outside points take `fill_value`."""
    _check(interpolation, "constant", "perspective_transform")
    images = _images(images, "perspective_transform")
    start, end = (to_tensors(images, p)[1].double() for p in (start_points, end_points))
    if start.shape[-2:] != (4, 2) or start.shape != end.shape:
        raise ValueError("ops.image.perspective_transform: start_points and end_points must "
                         f"both be (4, 2) or (batch, 4, 2). Received: {tuple(start.shape)}, "
                         f"{tuple(end.shape)}")
    transforms = _homography(start.reshape(-1, 4, 2), end.reshape(-1, 4, 2))
    return _warp(images, transforms, interpolation, "constant", fill_value, data_format,
                 "perspective_transform")


@image_op
def elastic_transform(images, alpha=20.0, sigma=5.0, interpolation="bilinear",
                      fill_mode="reflect", fill_value=0.0, seed=None, data_format=None):
    """Random elastic distortion: each pixel moves by `alpha` times a Gaussian-blurred (`sigma`)
    random field; an int `seed` makes it reproducible."""
    _check(interpolation, fill_mode, "elastic_transform")
    images = _images(images, "elastic_transform")
    last = _last(data_format, "elastic_transform")
    x = images.unsqueeze(0) if images.ndim == 3 else images
    x = x if last else x.permute(0, 2, 3, 1)
    batch, height, width, _ = x.shape
    dtype = x.dtype if x.is_floating_point() else torch_dtype(float_result(x))
    size = int(6 * sigma) | 1
    generator = None
    if seed is not None:
        generator = torch.Generator(device=x.device)
        generator.manual_seed(int(seed))
    noise = torch.randn((2 * batch, height, width, 1), generator=generator, dtype=dtype,
                        device=x.device) * sigma
    field = gaussian_blur.raw(noise, (size, size), (sigma, sigma), "channels_last")
    dx, dy = (alpha * f.squeeze(-1) for f in field.split(batch))
    rows = torch.arange(height, dtype=dtype, device=x.device).reshape(1, -1, 1) + dy
    cols = torch.arange(width, dtype=dtype, device=x.device).reshape(1, 1, -1) + dx
    out = torch.stack([torch.stack([map_coordinates.raw(x[b, ..., c].to(dtype),
                                                        [rows[b], cols[b]],
                                                        1 if interpolation == "bilinear" else 0,
                                                        fill_mode, fill_value)
                                    for c in range(x.shape[-1])], -1)
                       for b in range(batch)])
    out = out.to(x.dtype) if x.is_floating_point() else out.round().to(x.dtype)
    out = out if last else out.permute(0, 3, 1, 2)
    return out.squeeze(0) if images.ndim == 3 else out


__all__ = module_all()
