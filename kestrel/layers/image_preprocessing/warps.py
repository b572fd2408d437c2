"""RandomPerspective and RandomElasticTransform: random non-affine warps, batched."""
from __future__ import annotations

import torch

from kestrel.layers.config_order import keras_config_order
from kestrel.layers.image_preprocessing.affine import (
    INTERPOLATIONS, affine_transform, grid_warp)
from kestrel.layers.image_preprocessing.base import (
    RandomImageLayer, check_value_range, parse_factor)
from kestrel.layers.image_preprocessing.filters import depthwise
from kestrel.layers.layer import register_layer

ELASTIC_FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")


def _check_choice(layer, arg: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': {arg} must be one of "
                         f"{tuple(allowed)}. Received: {arg}={value!r}")


@register_layer()
@keras_config_order("factor", "scale", "interpolation", "fill_value", "seed")
class RandomPerspective(RandomImageLayer):
    """Moves each image's corners by random offsets and warps it to match, in training, each
    image with a probability drawn in `factor`.

    Each corner `p` moves to `p + p * d` with `d` drawn in `[-scale / 2, scale / 2]` per
    coordinate; points outside the image take `fill_value`. Dict inputs: masks move with the
    images (nearest), boxes become the bounds of their moved corners, clipped.

    Args:
        factor: a number `f` in [0, 1] draws the probability in `[0, f]` (default 1.0).
        scale: the largest corner offset, in [0, 1] (default 1.0).
        interpolation: `"bilinear"` (default) or `"nearest"`.
        fill_value, seed, data_format: as in the other augmentation layers.

    Example:
        >>> RandomPerspective(scale=0.2, seed=0)(torch.ones(2, 8, 8, 3), training=True).shape
        torch.Size([2, 8, 8, 3])
    """

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_value=0.0,
                 seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = parse_factor(self, factor, bounds=(0.0, 1.0))
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not 0 <= scale <= 1:
            raise ValueError(f"RandomPerspective '{self.name}': scale must be a number in "
                             f"[0, 1]. Received: scale={scale!r}")
        _check_choice(self, "interpolation", interpolation, INTERPOLATIONS)
        self.scale, self.interpolation, self.fill_value = scale, interpolation, fill_value

    def get_transformation(self, images, training=None):
        """`(picked, transforms)`: which images move, and each one's `(batch, 8)` map of
        output to input pixels (the homography taking the moved corners to the originals)."""
        from kestrel.ops.image_warp import _homography  # ops import the layers

        if not self._is_training(training):
            return None
        batch = images.shape[0]
        height, width = self._size(images.shape)
        picked = self.apply_mask(self.factor, images)
        offsets = self.uniform((batch, 4, 2), -0.5 * self.scale, 0.5 * self.scale, images)
        start = torch.tensor([[0.0, 0.0], [width - 1, 0.0], [0.0, height - 1],
                              [width - 1, height - 1]], dtype=images.dtype, device=images.device)
        start = start.expand(batch, 4, 2)
        end = start + start * offsets
        return picked, _homography(start.double(), end.double()).to(images.dtype)

    def transform(self, images):
        return self.transform_images(images, self.get_transformation(images, True))

    def transform_images(self, images, params, interpolation=None):
        if params is None:
            return images
        picked, transforms = params
        warped = affine_transform(images, transforms, interpolation or self.interpolation,
                                  "constant", self.fill_value, self.data_format)
        return torch.where(picked, warped, images)

    def transform_masks(self, masks, params):
        return self.transform_images(masks, params, "nearest")

    def box_matrix(self, params, size):
        """Boxes move by the homography itself (input to output), for picked images only."""
        if params is None:
            return None
        picked, transforms = params
        matrix = torch.cat([transforms, torch.ones_like(transforms[:, :1])], 1).reshape(-1, 3, 3)
        inverse = torch.linalg.inv(matrix.double()).to(transforms.dtype)
        eye = torch.eye(3, dtype=inverse.dtype, device=inverse.device)
        return torch.where(picked.reshape(-1, 1, 1), inverse, eye)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor), "scale": self.scale,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


@register_layer()
@keras_config_order(
    "factor", "scale", "interpolation", "fill_mode", "fill_value", "value_range", "seed")
class RandomElasticTransform(RandomImageLayer):
    """Distorts images by a smooth random displacement field in training, each image with a
    probability drawn in `factor`.

    One strength `s` per batch, drawn in `scale`, sets the field: Gaussian noise blurred with
    `sigma = 0.05 s min(h, w)` and scaled by `alpha = 0.1 s max(h, w)` pixels (Keras' recipe).

    Args:
        factor: a number `f` in [0, 1] draws the probability in `[0, f]` (default 1.0).
        scale: a number in [0, 1] means `(0, scale)`, or a pair (default 1.0).
        interpolation: `"bilinear"` (default) or `"nearest"`.
        fill_mode: `"reflect"` (default), `"mirror"`, `"wrap"`, `"nearest"` or `"constant"`.
        fill_value, value_range, seed, data_format: as in the other augmentation layers.

    Example:
        >>> RandomElasticTransform(seed=0)(torch.ones(2, 16, 16, 3), training=True).shape
        torch.Size([2, 16, 16, 3])
    """

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_mode="reflect",
                 fill_value=0.0, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = parse_factor(self, factor, bounds=(0.0, 1.0))
        self.scale = parse_factor(self, scale, "scale", bounds=(0.0, 1.0))
        _check_choice(self, "interpolation", interpolation, INTERPOLATIONS)
        _check_choice(self, "fill_mode", fill_mode, ELASTIC_FILL_MODES)
        self.interpolation, self.fill_mode, self.fill_value = interpolation, fill_mode, fill_value
        self.value_range = check_value_range(self, value_range)

    def transform(self, images):
        if self.scale[1] == 0 or self.factor[1] == 0:
            return images
        last = self.data_format == "channels_last"
        x = images.permute(0, 3, 1, 2) if last else images
        batch, _, height, width = x.shape
        strength = float(self.host_rng().uniform(*self.scale))
        alpha = max(height, width) * 0.1 * strength
        sigma = min(height, width) * 0.05 * strength
        size = int(6 * sigma) | 1
        grid = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
        kernel = torch.exp(-0.5 * (grid / max(sigma, 1e-12)) ** 2)
        kernel = torch.outer(kernel, kernel) / kernel.sum() ** 2
        noise = self.normal((batch, height, width, 2), x) * sigma
        field = depthwise(noise, kernel, True) * alpha
        rows, cols = torch.meshgrid(torch.arange(height, dtype=x.dtype, device=x.device),
                                    torch.arange(width, dtype=x.dtype, device=x.device),
                                    indexing="ij")
        points = torch.stack([cols, rows], -1) + field
        warped = grid_warp(x, points, self.interpolation, self.fill_mode, self.fill_value)
        warped = warped.permute(0, 2, 3, 1) if last else warped
        picked = self.apply_mask(self.factor, images)
        return torch.where(picked, warped, images).clamp(*self.value_range)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor), "scale": list(self.scale),
                "interpolation": self.interpolation, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "value_range": list(self.value_range)}
