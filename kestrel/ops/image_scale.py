"""`ops.image.scale_and_translate`: separable resampling with JAX's `scale_and_translate` rules.

Pixels are half-centred: output index `j` along an axis samples the input at
`(j + 0.5 - translation) / scale - 0.5`. Each spatial axis is one matrix product with a
`(input, output)` weight matrix built from the method's kernel; when `antialias` and
`scale < 1` the kernel is stretched by `1 / scale` (a low-pass filter). Output samples that
fall outside the input are zero.

>>> scale_and_translate(torch.ones(4, 4), (2, 2), [0.5, 0.5], [0.0, 0.0], (0, 1), "linear")
tensor([[1., 1.],
        [1., 1.]])
"""
from __future__ import annotations

import math

import torch

from kestrel.ops.convert import float_result, to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all


def _triangle(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(1.0 - x, min=0.0)


def _keys_cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with `a = -0.5` (on `x >= 0`)."""
    near = (1.5 * x - 2.5) * x * x + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, 0.0))


def _lanczos(radius: float):
    def kernel(x: torch.Tensor) -> torch.Tensor:
        safe = torch.where(x > 1e-3, x, 1.0)
        value = radius * torch.sin(math.pi * safe) * torch.sin(math.pi * safe / radius) / (
            math.pi ** 2 * safe * safe)
        return torch.where(x > radius, 0.0, torch.where(x > 1e-3, value, 1.0))
    return kernel


_KERNELS = {"linear": _triangle, "cubic": _keys_cubic, "lanczos3": _lanczos(3.0),
            "lanczos5": _lanczos(5.0)}
_METHODS = {"linear": "linear", "bilinear": "linear", "trilinear": "linear",
            "triangle": "linear", "cubic": "cubic", "bicubic": "cubic", "tricubic": "cubic",
            "lanczos3": "lanczos3", "lanczos5": "lanczos5"}
_TINY_SUM = 1000.0 * torch.finfo(torch.float32).eps  # weight sums below this give zeros


def _weights(size_in: int, size_out: int, scale, shift, kernel, antialias: bool):
    """`(size_in, size_out)` resampling weights along one axis."""
    out = torch.arange(size_out, dtype=scale.dtype, device=scale.device)
    sample = (out + 0.5 - shift) / scale - 0.5
    stretch = torch.clamp(1.0 / scale, min=1.0) if antialias else 1.0
    positions = torch.arange(size_in, dtype=scale.dtype, device=scale.device)
    weights = kernel((sample - positions[:, None]).abs() / stretch)
    total = weights.sum(0, keepdim=True)
    weights = torch.where(total.abs() > _TINY_SUM, weights / torch.where(total != 0, total, 1.0),
                          0.0)
    inside = (sample >= -0.5) & (sample <= size_in - 0.5)
    return torch.where(inside, weights, 0.0)


@keras_op(prefix="image.")
def scale_and_translate(images, output_shape, scale, translation, spatial_dims, method,
                        antialias=True):
    """Resample `images` to `output_shape`: along each axis of `spatial_dims`, output
    coordinate `y` reads the input at `(y - translation) / scale` (half-centred pixels).

    Args:
        images: array of any rank.
        output_shape: the full output shape (only the `spatial_dims` sizes are used).
        scale, translation: one number per spatial dim.
        spatial_dims: the axes to resample.
        method: `"linear"` (`"bilinear"`, `"trilinear"`, `"triangle"`), `"cubic"`
            (`"bicubic"`, `"tricubic"`: Keys' kernel), `"lanczos3"` or `"lanczos5"`.
        antialias: widen the kernel when downsampling. Integer images are rounded and
            clipped to their input range.
    """
    if method not in _METHODS:
        raise ValueError("ops.image.scale_and_translate: invalid value for argument `method`. "
                         f"Expected one of {sorted(_METHODS)}. Received: method={method!r}")
    kernel = _KERNELS[_METHODS[method]]
    images, scale, translation = to_tensors(images, scale, translation)
    dims = [int(d) for d in spatial_dims]
    if not (len(dims) == scale.numel() == translation.numel()):
        raise ValueError("ops.image.scale_and_translate: `scale` and `translation` need one "
                         f"value per spatial dim. Received: spatial_dims={tuple(dims)}, "
                         f"scale.shape={tuple(scale.shape)}, "
                         f"translation.shape={tuple(translation.shape)}")
    if len(output_shape) != images.ndim:
        raise ValueError("ops.image.scale_and_translate: `output_shape` needs one size per axis"
                         f" of images. Received: output_shape={tuple(output_shape)}, "
                         f"images.shape={tuple(images.shape)}")
    math_dtype = torch_dtype(float_result(scale, translation))
    scale, translation = scale.reshape(-1).to(math_dtype), translation.reshape(-1).to(math_dtype)
    work = images if images.is_floating_point() else images.float()
    for i, axis in enumerate(dims):
        axis %= images.ndim
        weights = _weights(images.shape[axis], int(output_shape[axis]), scale[i],
                           translation[i], kernel, antialias).to(work.dtype)
        work = torch.tensordot(work, weights, dims=([axis], [0])).movedim(-1, axis)
    if images.is_floating_point():
        return work
    return torch.clamp(work.round(), images.min(), images.max()).to(images.dtype)


__all__ = module_all()
