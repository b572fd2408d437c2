"""RandomRotation, RandomZoom, RandomTranslation and RandomShear: random affine warps.

Each draws one transform per image and warps the whole batch at once with `affine_transform`.
"""
from __future__ import annotations

import torch

from kestrel.layers.config_order import keras_config_order
from kestrel.layers.image_preprocessing.affine import (
    FILL_MODES, INTERPOLATIONS, affine_transform, rotation_matrix)
from kestrel.layers.image_preprocessing.base import RandomImageLayer, parse_factor
from kestrel.layers.layer import register_layer


class _AffineLayer(RandomImageLayer):
    """Shared arguments: `fill_mode`, `interpolation`, `fill_value`, `seed`, `data_format`."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        for arg, value, allowed in (("fill_mode", fill_mode, FILL_MODES),
                                    ("interpolation", interpolation, INTERPOLATIONS)):
            if value not in allowed:
                raise ValueError(f"{type(self).__name__} '{self.name}': {arg} must be one of "
                                 f"{allowed}. Received: {arg}={value!r}")
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = fill_value

    def get_transformation(self, images, training=None):
        if not self._is_training(training):
            return None
        height, width = self._size(images.shape)
        return self.transforms(images, images.shape[0], height, width)

    def transform(self, images):
        return self.transform_images(images, self.get_transformation(images, True))

    def transform_images(self, images, transforms, interpolation=None):
        if transforms is None:
            return images
        return affine_transform(images, transforms, interpolation or self.interpolation,
                                self.fill_mode, self.fill_value, self.data_format)

    def transform_masks(self, masks, transforms):
        return self.transform_images(masks, transforms, "nearest")

    def box_matrix(self, transforms, size):
        """Boxes move by the inverse of the sampling map (output pixel -> input pixel)."""
        if transforms is None:
            return None
        matrix = torch.cat([transforms, torch.ones_like(transforms[:, :1])], 1)
        return torch.linalg.inv(matrix.reshape(-1, 3, 3).double()).to(transforms.dtype)

    def transforms(self, images, batch: int, height: int, width: int) -> torch.Tensor:
        """`(batch, 8)` random transforms (see `affine_transform`)."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


@register_layer()
@keras_config_order("factor", "fill_mode", "fill_value", "interpolation", "seed")
class RandomRotation(_AffineLayer):
    """Rotates each image by a random angle about its centre in training.

    Args:
        factor: fraction of a full turn; a number `f` draws angles in `[-f, f] * 360` degrees,
            a pair `(lo, hi)` in `[lo, hi] * 360` (positive: counter-clockwise).
        fill_mode: `"reflect"` (default), `"wrap"`, `"constant"` or `"nearest"`.
        interpolation: `"bilinear"` (default) or `"nearest"`.
        seed, fill_value, data_format: as in the other augmentation layers.

    Example:
        >>> RandomRotation(0.1, seed=0)(torch.ones(2, 8, 8, 3), training=True).shape
        torch.Size([2, 8, 8, 3])
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = parse_factor(self, factor)

    def transforms(self, images, batch, height, width):
        angle = self.uniform((batch,), self.factor[0] * 360.0, self.factor[1] * 360.0, images)
        return rotation_matrix(angle, height, width)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


@register_layer()
@keras_config_order("x_factor", "y_factor", "fill_mode", "interpolation", "seed", "fill_value")
class RandomShear(_AffineLayer):
    """Shears each image in training: `x += sx * y` and `y += sy * x` about the top-left corner,
    with `sx`, `sy` drawn per image and one random sign for both (as Keras).

    Args:
        x_factor, y_factor: the shear slope range: a number `f` in [0, 1] draws in `[-f, f]`,
            a pair `(lo, hi)` within [0, 1] in `[lo, hi]` (then negated for half the images).
        fill_mode, interpolation, seed, fill_value, data_format: as `RandomRotation`.

    Example:
        >>> RandomShear(0.2, seed=0)(torch.ones(2, 8, 8, 3), training=True).shape
        torch.Size([2, 8, 8, 3])
    """

    def __init__(self, x_factor=0.0, y_factor=0.0, interpolation="bilinear", fill_mode="reflect",
                 fill_value=0.0, data_format=None, seed=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.x_factor = self._shear_range(x_factor, "x_factor")
        self.y_factor = self._shear_range(y_factor, "y_factor")

    def _shear_range(self, factor, arg):
        """`(lower, upper)` as Keras keeps it (and writes it in the config): a pair sorted,
        a number `f` as `(-f, f)`, numbers as given. That `(-f, f)` reads back as `f`."""
        symmetric = isinstance(factor, (tuple, list)) and len(factor) == 2 and \
            factor[0] == -factor[1]
        parse_factor(self, abs(factor[1]) if symmetric else factor, arg, bounds=(0.0, 1.0))
        return tuple(sorted(factor)) if isinstance(factor, (tuple, list)) else (-factor, factor)

    def transforms(self, images, batch, height, width):
        sign = torch.where(self.uniform((batch,), 0.0, 1.0, images) > 0.5, -1.0, 1.0)
        shear_y = self.uniform((batch,), *self.y_factor, images) * sign
        shear_x = self.uniform((batch,), *self.x_factor, images) * sign
        ones, zeros = torch.ones_like(sign), torch.zeros_like(sign)
        return torch.stack([ones, shear_x, zeros, shear_y, ones, zeros, zeros, zeros], dim=-1)

    def get_config(self):
        return {**super().get_config(), "x_factor": self.x_factor, "y_factor": self.y_factor}


@register_layer()
@keras_config_order(
    "height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value")
class RandomZoom(_AffineLayer):
    """Zooms each image in or out by a random factor about its centre in training.

    Args:
        height_factor: a number `f` draws vertical zooms in `[-f, f]`, a pair `(lo, hi)` in
            `[lo, hi]`, within (-1, 1]; positive values zoom out (e.g. 0.3: an image 30% smaller),
            negative ones zoom in.
        width_factor: the same horizontally; None (default) keeps the aspect ratio.
        fill_mode, interpolation, seed, fill_value, data_format: as `RandomRotation`.

    Example:
        >>> RandomZoom(0.2, seed=0)(torch.ones(2, 8, 8, 3), training=True).shape
        torch.Size([2, 8, 8, 3])
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height_range = self._zoom_range(height_factor, "height_factor")
        self._width_range = None if width_factor is None \
            else self._zoom_range(width_factor, "width_factor")

    def _zoom_range(self, factor, arg):
        lower, upper = parse_factor(self, factor, arg)
        if lower <= -1.0:
            raise ValueError(f"RandomZoom '{self.name}': {arg} must lie in (-1, 1]. "
                             f"Received: {arg}={factor!r}")
        return lower, upper

    def transforms(self, images, batch, height, width):
        zoom_h = self.uniform((batch,), *(1.0 + f for f in self._height_range), images)
        zoom_w = zoom_h if self._width_range is None \
            else self.uniform((batch,), *(1.0 + f for f in self._width_range), images)
        zeros = torch.zeros_like(zoom_h)
        return torch.stack([zoom_w, zeros, (width - 1) / 2.0 * (1.0 - zoom_w), zeros, zoom_h,
                            (height - 1) / 2.0 * (1.0 - zoom_h), zeros, zeros], dim=-1)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


@register_layer()
@keras_config_order(
    "height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value")
class RandomTranslation(_AffineLayer):
    """Shifts each image by a random fraction of its height and width in training.

    Args:
        height_factor: a number `f` shifts vertically by `[-f, f] * height` pixels, a pair
            `(lo, hi)` by `[lo, hi] * height` (positive: down), within [-1, 1].
        width_factor: the same horizontally (positive: right).
        fill_mode, interpolation, seed, fill_value, data_format: as `RandomRotation`.

    Example:
        >>> RandomTranslation(0.1, 0.1, seed=0)(torch.ones(2, 8, 8, 3), training=True).shape
        torch.Size([2, 8, 8, 3])
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height_range = parse_factor(self, height_factor, "height_factor")
        self._width_range = parse_factor(self, width_factor, "width_factor")

    def transforms(self, images, batch, height, width):
        dy = self.uniform((batch,), *self._height_range, images) * height
        dx = self.uniform((batch,), *self._width_range, images) * width
        ones, zeros = torch.ones_like(dx), torch.zeros_like(dx)
        return torch.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], dim=-1)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}
