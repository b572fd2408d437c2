"""Image files and arrays: load_img, save_img, img_to_array, array_to_img, smart_resize (Pillow)."""
from __future__ import annotations

import importlib
import io
import pathlib
import warnings

import numpy as np
import torch

from kestrel import config

_RESAMPLING = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")


def require_pil(caller: str, module: str = "Image"):
    """Import `PIL.<module>` or raise an ImportError naming `caller`."""
    try:
        return importlib.import_module(f"PIL.{module}")
    except ImportError:
        raise ImportError(f"{caller} requires Pillow (`pip install pillow`).") from None


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A 3D array as a PIL image (RGBA, RGB, or L/I for one channel).

    Args:
        x: array of shape (h, w, c) (or (c, h, w) with `data_format="channels_first"`).
        scale: rescale the values to [0, 255] first.
        dtype: float dtype used for the conversion (default `floatx()`).

    Example:
        >>> array_to_img(np.zeros((2, 3, 3))).size
        (3, 2)
    """
    image = require_pil("array_to_img")
    data_format = config.standardize_data_format(data_format)
    x = np.asarray(x, dtype=dtype or config.floatx())
    if x.ndim != 3:
        raise ValueError(f"array_to_img: expected a rank-3 image array. Received: shape={x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        if np.max(x) != 0:
            x = x / np.max(x)
        x = x * 255
    channels = x.shape[2]
    if channels in (3, 4):
        return image.fromarray(x.astype("uint8"), "RGBA" if channels == 4 else "RGB")
    if channels == 1:
        if np.max(x) > 255:
            return image.fromarray(x[:, :, 0].astype("int32"), "I")
        return image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"array_to_img: unsupported number of channels. Received: {channels}")


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image as a 3D float array ((h, w, c) or (c, h, w)).

    Example:
        >>> img_to_array(array_to_img(np.zeros((2, 3, 1)))).shape
        (2, 3, 1)
    """
    data_format = config.standardize_data_format(data_format)
    x = np.asarray(img, dtype=dtype or config.floatx())
    if x.ndim == 2:
        x = x[:, :, None]
    elif x.ndim != 3:
        raise ValueError(f"img_to_array: unsupported image shape. Received: shape={x.shape}")
    return x.transpose(2, 0, 1) if data_format == "channels_first" else x


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Save an image array to `path` (format from the suffix unless `file_format` is given)."""
    data_format = config.standardize_data_format(data_format)
    if file_format is None and isinstance(path, (str, pathlib.Path)):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("save_img: JPEG does not support RGBA images; converting to RGB.")
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """Load an image file as a PIL image, optionally converted and resized.

    Args:
        path: file path (str, bytes, pathlib.Path) or an `io.BytesIO`.
        color_mode: `"rgb"`, `"rgba"` or `"grayscale"`.
        target_size: `(height, width)` or None for the file's size.
        interpolation: PIL resampling: nearest, bilinear, bicubic, hamming, box, lanczos.
        keep_aspect_ratio: centre-crop to the target aspect ratio before resizing.
    """
    image = require_pil("load_img")
    if isinstance(path, io.BytesIO):
        img = image.open(path)
    elif isinstance(path, (pathlib.Path, bytes, str)):
        with open(path, "rb") as f:
            img = image.open(io.BytesIO(f.read()))
    else:
        raise TypeError(f"load_img: `path` must be path-like or io.BytesIO. "
                        f"Received: type={type(path).__name__}")
    modes = {"grayscale": ("L", ("L", "I;16", "I")), "rgba": ("RGBA", ("RGBA",)),
             "rgb": ("RGB", ("RGB",))}
    if color_mode not in modes:
        raise ValueError('load_img: `color_mode` must be "grayscale", "rgb", or "rgba". '
                         f"Received: color_mode={color_mode!r}")
    target_mode, accepted = modes[color_mode]
    if img.mode not in accepted:
        img = img.convert(target_mode)
    if target_size is None or img.size == (target_size[1], target_size[0]):
        return img
    if interpolation not in _RESAMPLING:
        raise ValueError(f"load_img: `interpolation` must be one of {_RESAMPLING}. "
                         f"Received: interpolation={interpolation!r}")
    resample = getattr(image.Resampling, interpolation.upper())
    size = (target_size[1], target_size[0])
    box = None
    if keep_aspect_ratio:
        width, height = img.size
        crop_h = min(height, (width * size[1]) // size[0])
        crop_w = min(width, (height * size[0]) // size[1])
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        box = [left, top, left + crop_w, top + crop_h]
    return img.resize(size, resample, box=box)


def smart_resize(x, size, interpolation="bilinear", data_format="channels_last"):
    """Resize image(s) to `size` without distortion: centre-crop to its aspect ratio, then resize.

    Accepts one image (rank 3) or a batch (rank 4), as a NumPy array or a tensor; NumPy in,
    NumPy out.

    Example:
        >>> smart_resize(np.ones((10, 20, 3)), (5, 5)).shape
        (5, 5, 3)
    """
    from kestrel.layers.image_preprocessing.sizing import resize_images

    if len(size) != 2:
        raise ValueError(f"smart_resize: `size` must be 2 integers. Received: size={size}")
    images = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if images.ndim not in (3, 4):
        raise ValueError("smart_resize: expected an image of shape (height, width, channels) "
                         f"or a batch of them. Received: shape={tuple(images.shape)}")
    single = images.ndim == 3
    out = resize_images(images[None] if single else images, tuple(size),
                        interpolation=interpolation, crop_to_aspect_ratio=True,
                        data_format=data_format)
    out = out[0] if single else out
    return out if isinstance(x, torch.Tensor) else out.numpy()
