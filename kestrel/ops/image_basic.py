"""Colour, size, padding, patch and filter ops of `kestrel.ops.image` (op names `image.*`).

Images are `(batch, height, width, channels)` or one unbatched `(height, width, channels)`
image (channels-first with `data_format="channels_first"`; None means the global format).

>>> resize(torch.ones(2, 4, 6, 3), (2, 3)).shape
torch.Size([2, 2, 3, 3])
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kestrel import config
from kestrel.layers.image_preprocessing.sizing import RESIZE_MODES, resize_images
from kestrel.ops.convert import float_result, to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all
from kestrel.ops.nn_conv import conv

image_op = keras_op(prefix="image.")


def _images(images, op: str, ranks=(3, 4)) -> torch.Tensor:
    (images,) = to_tensors(images)
    if images.ndim not in ranks:
        raise ValueError(f"ops.image.{op}: images must have rank {' or '.join(map(str, ranks))}"
                         f". Received: images.shape={tuple(images.shape)}")
    return images


def _last(data_format, op: str) -> bool:
    try:
        return config.standardize_data_format(data_format) == "channels_last"
    except ValueError:
        raise ValueError(f"ops.image.{op}: data_format must be 'channels_last' or "
                         f"'channels_first'. Received: data_format={data_format!r}") from None


def _batched(images: torch.Tensor, last: bool):
    """`(channels-first batch, undo)`: `undo` restores the caller's layout and rank."""
    single = images.ndim == 3
    x = images.unsqueeze(0) if single else images
    x = x.permute(0, 3, 1, 2) if last else x

    def undo(out: torch.Tensor) -> torch.Tensor:
        out = out.permute(0, 2, 3, 1) if last else out
        return out.squeeze(0) if single else out

    return x, undo


@image_op
def rgb_to_grayscale(images, data_format=None):
    """Luma `0.2989 R + 0.587 G + 0.114 B` as a single channel (1-channel input is copied)."""
    images = _images(images, "rgb_to_grayscale")
    axis = -1 if _last(data_format, "rgb_to_grayscale") else -3
    if images.shape[axis] not in (1, 3):
        raise ValueError("ops.image.rgb_to_grayscale: expected 3 (RGB) or 1 channel. "
                         f"Received: images.shape={tuple(images.shape)}")
    if images.shape[axis] == 1:
        return images.clone()
    r, g, b = images.unbind(axis)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(images.dtype).unsqueeze(axis)


def _float_images(images, data_format, op):
    images = _images(images, op)
    if not images.is_floating_point():
        raise ValueError(f"ops.image.{op}: images must have a float dtype. "
                         f"Received: images.dtype={str(images.dtype).split('.')[-1]}")
    return images, -1 if _last(data_format, op) else -3


@image_op
def rgb_to_hsv(images, data_format=None):
    """RGB in [0, 1] to hue, saturation, value in [0, 1]."""
    images, axis = _float_images(images, data_format, "rgb_to_hsv")
    images = torch.where(images.abs() < torch.finfo(images.dtype).eps, 0.0, images)
    r, g, b = images.unbind(axis)
    value = torch.maximum(torch.maximum(r, g), b)
    spread = value - torch.minimum(torch.minimum(r, g), b)
    saturation = torch.where(value > 0, spread / torch.where(value > 0, value, 1.0), 0.0)
    norm = 1.0 / (6.0 * torch.where(spread > 0, spread, 1.0))
    hue = torch.where(value == g, norm * (b - r) + 2.0 / 6.0, norm * (r - g) + 4.0 / 6.0)
    hue = torch.where(value == r, norm * (g - b), hue)
    hue = torch.where(spread > 0, hue, 0.0) + (hue < 0.0).to(hue.dtype)
    return torch.stack([hue, saturation, value], dim=axis)


@image_op
def hsv_to_rgb(images, data_format=None):
    """Hue, saturation, value in [0, 1] to RGB; inverse of `rgb_to_hsv`."""
    images, axis = _float_images(images, data_format, "hsv_to_rgb")
    hue, saturation, value = images.unbind(axis)
    sector = torch.remainder(hue, 1.0) * 6.0
    weights = [torch.clamp((sector - 3.0).abs() - 1.0, 0.0, 1.0),
               torch.clamp(2.0 - (sector - 2.0).abs(), 0.0, 1.0),
               torch.clamp(2.0 - (sector - 4.0).abs(), 0.0, 1.0)]
    return torch.stack([value * (1.0 - saturation + saturation * w) for w in weights], dim=axis)


@image_op
def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    """Resize images to `size` `(height, width)` with torch's `interpolate`, as Keras' torch
    backend does (`"nearest"` is torch's `"nearest-exact"`); integer images are rounded back.

    `crop_to_aspect_ratio` crops the largest centred window of the target aspect first;
    `pad_to_aspect_ratio` pads with `fill_value` instead.
    """
    if interpolation not in RESIZE_MODES:
        raise ValueError(f"ops.image.resize: interpolation must be one of {tuple(RESIZE_MODES)}"
                         f". Received: interpolation={interpolation!r}")
    if fill_mode != "constant":
        raise ValueError("ops.image.resize: only fill_mode='constant' is supported. "
                         f"Received: fill_mode={fill_mode!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("ops.image.resize: only one of crop_to_aspect_ratio and "
                         "pad_to_aspect_ratio can be True.")
    if len(size) != 2:
        raise ValueError(f"ops.image.resize: size must be (height, width). Received: size={size}")
    images = _images(images, "resize")
    last = _last(data_format, "resize")
    x = images.unsqueeze(0) if images.ndim == 3 else images
    out = resize_images(x, tuple(size), interpolation, antialias, crop_to_aspect_ratio,
                        pad_to_aspect_ratio, fill_value,
                        "channels_last" if last else "channels_first")
    return out.squeeze(0) if images.ndim == 3 else out


def _resolve(before, after, target, names, op):
    """The three values, checking that exactly two of them are given."""
    given = sum(v is not None for v in (before, after, target))
    if given != 2:
        raise ValueError(f"ops.image.{op}: exactly two of {', '.join(names)} must be set. "
                         f"Received: {names[0]}={before}, {names[1]}={after}, "
                         f"{names[2]}={target}")
    return before, after, target


@image_op
def pad_images(images, top_padding=None, left_padding=None, bottom_padding=None,
               right_padding=None, target_height=None, target_width=None, data_format=None):
    """Zero-pad images; each side's padding may be inferred from the target size."""
    images = _images(images, "pad_images")
    last = _last(data_format, "pad_images")
    height, width = images.shape[-3:-1] if last else images.shape[-2:]
    top, bottom, th = _resolve(top_padding, bottom_padding, target_height,
                               ("top_padding", "bottom_padding", "target_height"), "pad_images")
    left, right, tw = _resolve(left_padding, right_padding, target_width,
                               ("left_padding", "right_padding", "target_width"), "pad_images")
    top = th - bottom - height if top is None else top
    bottom = th - top - height if bottom is None else bottom
    left = tw - right - width if left is None else left
    right = tw - left - width if right is None else right
    for name, value in (("top_padding", top), ("bottom_padding", bottom),
                        ("left_padding", left), ("right_padding", right)):
        if value < 0:
            raise ValueError(f"ops.image.pad_images: {name} must be >= 0. "
                             f"Received: {name}={value}")
    pads = (0, 0, left, right, top, bottom) if last else (left, right, top, bottom)
    return F.pad(images, pads)


@image_op
def crop_images(images, top_cropping=None, left_cropping=None, bottom_cropping=None,
                right_cropping=None, target_height=None, target_width=None, data_format=None):
    """Crop images; each side's cropping may be inferred from the target size."""
    images = _images(images, "crop_images")
    last = _last(data_format, "crop_images")
    height, width = images.shape[-3:-1] if last else images.shape[-2:]
    top, bottom, th = _resolve(top_cropping, bottom_cropping, target_height,
                               ("top_cropping", "bottom_cropping", "target_height"),
                               "crop_images")
    left, right, tw = _resolve(left_cropping, right_cropping, target_width,
                               ("left_cropping", "right_cropping", "target_width"),
                               "crop_images")
    top = height - th - bottom if top is None else top
    th = height - bottom - top if th is None else th
    left = width - tw - right if left is None else left
    tw = width - right - left if tw is None else tw
    for name, value in (("top_cropping", top), ("target_height", th),
                        ("left_cropping", left), ("target_width", tw)):
        if value < 0:
            raise ValueError(f"ops.image.crop_images: {name} must be >= 0. "
                             f"Received: {name}={value}")
    rows, cols = slice(top, top + th), slice(left, left + tw)
    return images[..., rows, cols, :] if last else images[..., rows, cols]


def _patches(images, size, strides, dilation_rate, padding, data_format, rank, op):
    images = _images(images, op, (rank + 1, rank + 2))
    size = (size,) * rank if isinstance(size, int) else tuple(size)
    if len(size) != rank:
        raise TypeError(f"ops.image.{op}: size must be an int or {rank} ints. "
                        f"Received: size={size}")
    last = _last(data_format, op)
    channels = images.shape[-1] if last else images.shape[-rank - 1]
    depth = math.prod(size) * channels
    eye = torch.eye(depth, dtype=images.dtype, device=images.device)
    single = images.ndim == rank + 1
    out = conv.raw(images.unsqueeze(0) if single else images, eye.reshape(*size, channels, depth),
                   strides or size, padding, "channels_last" if last else "channels_first",
                   dilation_rate)
    return out.squeeze(0) if single else out


@image_op
def extract_patches(images, size, strides=None, dilation_rate=1, padding="valid",
                    data_format=None):
    """Patches of `size` `(h, w)` flattened into channels `(h * w * channels)`; a 3-tuple
    `size` extracts volume patches as `extract_patches_3d`."""
    if not isinstance(size, int) and len(size) == 3:
        return extract_patches_3d.raw(images, size, strides, dilation_rate, padding,
                                      data_format)
    return _patches(images, size, strides, dilation_rate, padding, data_format, 2,
                    "extract_patches")


@image_op
def extract_patches_3d(volumes, size, strides=None, dilation_rate=1, padding="valid",
                       data_format=None):
    """Patches of `size` `(d, h, w)` of volumes, flattened into channels."""
    return _patches(volumes, size, strides, dilation_rate, padding, data_format, 3,
                    "extract_patches_3d")


def _gaussian(size: int, sigma, dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _depthwise(x: torch.Tensor, kernel: torch.Tensor, padding) -> torch.Tensor:
    channels = x.shape[1]
    weight = kernel.expand(channels, 1, *kernel.shape)
    return F.conv2d(x, weight, padding=padding, groups=channels)


@image_op
def gaussian_blur(images, kernel_size=(3, 3), sigma=(1.0, 1.0), data_format=None):
    """Blur each channel with a Gaussian `kernel_size` `(h, w)` window (zero padding, same
    size out)."""
    images = _images(images, "gaussian_blur")
    x, undo = _batched(images, _last(data_format, "gaussian_blur"))
    (kh, kw), (sh, sw) = kernel_size, sigma
    kernel = torch.outer(_gaussian(kh, sh, x.dtype, x.device), _gaussian(kw, sw, x.dtype, x.device))
    return undo(_depthwise(x, kernel, (kh // 2, kw // 2)))


@image_op
def sobel_edges(images, data_format=None):
    """Sobel gradients: `(..., channels, 2)` holding the vertical then horizontal edge maps."""
    images = _images(images, "sobel_edges", (4,))
    last = _last(data_format, "sobel_edges")
    x = images.permute(0, 3, 1, 2) if last else images
    dx = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=x.dtype, device=x.device)
    edges = torch.stack([_depthwise(x, dx.T, 1), _depthwise(x, dx, 1)], dim=-1)
    return edges.permute(0, 2, 3, 1, 4) if last else edges


@image_op
def ssim(image1, image2, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03,
         data_format=None):
    """Structural similarity per image (Gaussian window, valid padding, channel mean)."""
    image1, image2 = to_tensors(image1, image2)
    original = image1.dtype
    dtype = torch_dtype(float_result(image1))
    last = _last(data_format, "ssim")
    a, undo = _batched(_images(image1, "ssim").to(dtype), last)
    b, _ = _batched(_images(image2, "ssim").to(dtype), last)
    window = _gaussian(filter_size, filter_sigma, dtype, a.device)
    kernel = torch.outer(window, window)

    def blur(v):
        return _depthwise(v, kernel, 0)

    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mu1, mu2 = blur(a), blur(b)
    var1, var2 = blur(a * a) - mu1 * mu1, blur(b * b) - mu2 * mu2
    cov = blur(a * b) - mu1 * mu2
    score = ((2 * mu1 * mu2 + c1) * (2 * cov + c2)
             / ((mu1 * mu1 + mu2 * mu2 + c1) * (var1 + var2 + c2)))
    result = score.mean(dim=(1, 2, 3))
    return (result.squeeze(0) if image1.ndim == 3 else result).to(original)


__all__ = module_all()
