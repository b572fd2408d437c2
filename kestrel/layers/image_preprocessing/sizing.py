"""Resizing, CenterCrop and RandomCrop: layers that change the images' height and width."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel.layers.config_order import keras_config_order
from kestrel.layers.image_preprocessing.base import ImageLayer, RandomImageLayer
from kestrel.layers.image_preprocessing.data import affine_rows
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import register_layer

# Keras' interpolation names -> torch's `interpolate` modes (Keras' torch backend mapping).
RESIZE_MODES = {"bilinear": "bilinear", "nearest": "nearest-exact", "bicubic": "bicubic",
                "area": "area"}


def aspect_crop_box(height: int, width: int, target_height: int, target_width: int):
    """(top, left, crop height, crop width): the largest centred window of the target aspect."""
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    return (int(float(height - crop_height) / 2), int(float(width - crop_width) / 2),
            crop_height, crop_width)


def resize_images(images: torch.Tensor, size, interpolation: str = "bilinear",
                  antialias: bool = False, crop_to_aspect_ratio: bool = False,
                  pad_to_aspect_ratio: bool = False, fill_value: float = 0.0,
                  data_format: str = "channels_last") -> torch.Tensor:
    """Resize a batch of images to `size` as Keras' torch backend does (`F.interpolate`).

    Integer images are resized in float32, rounded and cast back.

    Example:
        >>> resize_images(torch.ones(2, 4, 6, 3), (2, 3)).shape
        torch.Size([2, 2, 3, 3])
    """
    out_dtype = images.dtype
    if not images.is_floating_point():
        images = images.float()
    if data_format == "channels_last":
        images = images.permute(0, 3, 1, 2)
    height, width = images.shape[-2:]
    if crop_to_aspect_ratio:
        top, left, crop_h, crop_w = aspect_crop_box(height, width, *size)
        images = images[:, :, top:top + crop_h, left:left + crop_w]
    elif pad_to_aspect_ratio:
        pad_h = max(height, int(float(width * size[0]) / size[1]))
        pad_w = max(width, int(float(height * size[1]) / size[0]))
        top, left = int(float(pad_h - height) / 2), int(float(pad_w - width) / 2)
        images = F.pad(images, (left, left, top, top), value=fill_value)
    mode = RESIZE_MODES[interpolation]
    if mode == "area":
        resized = F.interpolate(images, size=tuple(size), mode="area")
    else:
        resized = F.interpolate(
            images, size=tuple(size), mode=mode,
            align_corners=False if mode in ("bilinear", "bicubic") else None,
            antialias=antialias and mode in ("bilinear", "bicubic"))
    if data_format == "channels_last":
        resized = resized.permute(0, 2, 3, 1)
    if out_dtype.is_floating_point:
        return resized.to(out_dtype)
    limits = torch.iinfo(out_dtype)
    return resized.round().clamp(limits.min, limits.max).to(out_dtype)


def _check_size(layer, **sizes) -> tuple[int, ...]:
    """The sizes as positive Python ints (NumPy's accepted), or a ValueError."""
    return tuple(positive_int(value, arg, f"{type(layer).__name__} '{layer.name}'")
                 for arg, value in sizes.items())


def window_matrix(top, left, crop_h, crop_w, height, width) -> torch.Tensor:
    """`(1, 3, 3)` map of box coordinates when the window at (`top`, `left`) of size
    (`crop_h`, `crop_w`) (negative offsets: padding) is resized to (`height`, `width`)."""
    sx, sy = width / crop_w, height / crop_h
    return affine_rows(sx=sx, sy=sy, tx=-left * sx, ty=-top * sy)


class _SizedLayer(ImageLayer):
    """A layer whose output images are `height x width`."""

    def output_size(self, size):
        return self.height, self.width

    def _with_size(self, shape):
        shape = list(shape)
        h, w = self._spatial_axes(len(shape))
        shape[h], shape[w] = self.height, self.width
        return tuple(shape)

    def compute_output_shape(self, input_shape):
        return self._with_size(input_shape)


@register_layer()
class Resizing(_SizedLayer):
    """Resizes images to `(height, width)`.

    Args:
        height, width: the output size.
        interpolation: `"bilinear"` (default), `"nearest"`, `"bicubic"` or `"area"`.
        crop_to_aspect_ratio: first crop the largest centred window of the target aspect ratio.
        pad_to_aspect_ratio: first pad (with `fill_value`) to the target aspect ratio.
        fill_mode: only `"constant"`.
        fill_value: padding value for `pad_to_aspect_ratio`.
        antialias: antialias when downsampling (bilinear and bicubic).
        data_format: `"channels_last"` or `"channels_first"`.

    Integer images stay integer (rounded); float images keep their dtype. Bounding boxes move
    with Keras' numbers; box rows all -1 or all 0 (padding) become zeros with label -1.

    Example:
        >>> Resizing(2, 3)(torch.ones(1, 4, 6, 3)).shape
        torch.Size([1, 2, 3, 3])
    """

    padding_rows = (-1.0, 0.0)  # Keras: all -1 and all 0 rows are padding, made zeros
    padding_fill = 0.0

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        height, width = _check_size(self, height=height, width=width)
        if interpolation not in RESIZE_MODES:
            raise ValueError(
                f"Resizing '{self.name}': interpolation must be one of {tuple(RESIZE_MODES)}. "
                f"Received: interpolation={interpolation!r}")
        if fill_mode != "constant":
            raise ValueError(f"Resizing '{self.name}': only fill_mode='constant' is supported. "
                             f"Received: fill_mode={fill_mode!r}")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(
                f"Resizing '{self.name}': only one of crop_to_aspect_ratio and "
                "pad_to_aspect_ratio can be True. Received: both True")
        self.height, self.width = height, width
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.antialias = bool(antialias)

    def _as_batch(self, images):
        self._spatial_axes(images.dim())
        single = images.dim() == 3
        return (images.unsqueeze(0) if single else images), single

    def transform_images(self, images, params, interpolation=None):
        return resize_images(images, (self.height, self.width),
                             interpolation or self.interpolation,
                             self.antialias and interpolation is None, self.crop_to_aspect_ratio,
                             self.pad_to_aspect_ratio, self.fill_value, self.data_format)

    def transform_masks(self, masks, params):
        return self.transform_images(masks, params, "nearest")

    def box_matrix(self, params, size):
        """Keras' box maps, in float32 as Keras: the aspect-ratio crop and pad use continuous
        ratios and whole-pixel offsets `(new - target) // 2` (within a pixel of the images)."""
        height, width = (torch.tensor(float(n)) for n in size)
        if self.pad_to_aspect_ratio:
            ratio = torch.minimum(self.height / height, self.width / width)
            return affine_rows(sx=ratio, sy=ratio, tx=(self.width - width * ratio) // 2,
                               ty=(self.height - height * ratio) // 2)
        if self.crop_to_aspect_ratio:
            wider = width / height > self.width / self.height
            new_w = self.height * (width / height) if wider else torch.tensor(float(self.width))
            new_h = torch.tensor(float(self.height)) if wider else self.width / (width / height)
            return affine_rows(sx=new_w / width, sy=new_h / height,
                               tx=-((new_w - self.width) // 2), ty=-((new_h - self.height) // 2))
        return window_matrix(0, 0, height, width, self.height, self.width)

    def _output_dtype(self, input_dtype) -> str:
        return self._symbolic_input_dtype(input_dtype)  # integer images keep their dtype

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


@register_layer()
class CenterCrop(_SizedLayer):
    """Crops the central `height x width` window; smaller images are first cropped to the
    target aspect ratio and resized (bilinear), as Keras does.

    Example:
        >>> CenterCrop(2, 2)(torch.ones(1, 4, 6, 3)).shape
        torch.Size([1, 2, 2, 3])
    """

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height, self.width = _check_size(self, height=height, width=width)

    def transform_images(self, images, params, interpolation="bilinear"):
        return center_crop(images, self.height, self.width, self.data_format,
                           interpolation=interpolation)

    def transform_masks(self, masks, params):
        return self.transform_images(masks, params, "nearest")

    def box_matrix(self, params, size):
        height, width = size
        if height < self.height or width < self.width:
            return window_matrix(*aspect_crop_box(height, width, self.height, self.width),
                                 self.height, self.width)
        return window_matrix((height - self.height) // 2, (width - self.width) // 2,
                             self.height, self.width, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


def center_crop(images: torch.Tensor, height: int, width: int, data_format: str,
                top: int | None = None, left: int | None = None,
                interpolation: str = "bilinear") -> torch.Tensor:
    """The `height x width` window at (`top`, `left`) (default: centred) of a batch; when the
    images are smaller, the largest centred window of that aspect ratio, resized."""
    h_axis, w_axis = (1, 2) if data_format == "channels_last" else (2, 3)
    in_h, in_w = images.shape[h_axis], images.shape[w_axis]
    if in_h < height or in_w < width:
        return resize_images(images, (height, width), interpolation, crop_to_aspect_ratio=True,
                             data_format=data_format)
    top = (in_h - height) // 2 if top is None else top
    left = (in_w - width) // 2 if left is None else left
    return images.narrow(h_axis, top, height).narrow(w_axis, left, width)


@register_layer()
@keras_config_order("height", "width", "seed")
class RandomCrop(_SizedLayer, RandomImageLayer):
    """Crops a random `height x width` window (one position per batch, as Keras) in training.

    At inference, and in training for images smaller than the target, it returns the largest
    centred window of the target aspect ratio, resized to `height x width` (bilinear).

    Args:
        height, width: the output size.
        seed: int for reproducible crops.
        data_format: `"channels_last"` or `"channels_first"`.

    Example:
        >>> RandomCrop(2, 2, seed=1)(torch.ones(1, 4, 6, 3), training=True).shape
        torch.Size([1, 2, 2, 3])
    """
    _keras_converts_inputs = False  # see node_arguments

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        from kestrel.random.seed_generator import make_default_seed  # (import cycle)

        # as Keras, an unseeded RandomCrop fixes its seed now (from Python's `random`), before
        # its SeedGenerator takes another
        fixed_seed = make_default_seed() if seed is None else seed
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.seed = fixed_seed
        self.height, self.width = _check_size(self, height=height, width=width)

    call = ImageLayer.call  # resizes at inference too

    def get_transformation(self, images, training=None):
        """`(top, left)` of the window, "resize" (smaller images, or inference), or None."""
        in_h, in_w = self._size(images.shape)
        if self._is_training(training) and in_h > self.height and in_w > self.width:
            # Keras' draws: one scalar per axis, truncated (an equal side takes the centre)
            top = int(self.uniform((), 0.0, float(in_h - self.height + 1), images))
            left = int(self.uniform((), 0.0, float(in_w - self.width + 1), images))
            return min(top, in_h - self.height), min(left, in_w - self.width)
        return None if (in_h, in_w) == (self.height, self.width) else "resize"

    def transform_images(self, images, params, interpolation="bilinear"):
        if params is None:
            return images
        if params == "resize":
            return resize_images(images, (self.height, self.width), interpolation,
                                 crop_to_aspect_ratio=True, data_format=self.data_format)
        return center_crop(images, self.height, self.width, self.data_format, *params)

    def transform_masks(self, masks, params):
        return self.transform_images(masks, params, "nearest")

    def box_matrix(self, params, size):
        if params is None:
            return None
        if params == "resize":
            return window_matrix(*aspect_crop_box(*size, self.height, self.width),
                                 self.height, self.width)
        return window_matrix(*params, self.height, self.width, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
