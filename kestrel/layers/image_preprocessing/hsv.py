"""RandomHue and RandomSaturation: random per-image shifts in HSV space."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.layers.config_order import keras_config_order
from kestrel.layers.image_preprocessing.base import rescale
from kestrel.layers.image_preprocessing.pointwise import ColorLayer
from kestrel.layers.layer import register_layer


class _HSVLayer(ColorLayer):
    """Changes one HSV channel (`channel`) of RGB images by a per-image amount."""

    channel = 0

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(factor, value_range, seed, data_format, **kwargs)

    def _hsv_map(self, images, amount):
        from kestrel.ops.image_basic import hsv_to_rgb, rgb_to_hsv  # ops import the layers

        axis = -1 if self.data_format == "channels_last" else -3
        planes = list(rgb_to_hsv.raw(images, data_format=self.data_format).unbind(axis))
        planes[self.channel] = self.change(planes[self.channel], amount.reshape(-1, 1, 1))
        return hsv_to_rgb.raw(torch.stack(planes, axis), data_format=self.data_format)

    def change(self, plane, amount):
        """The new hue or saturation `plane` `(batch, h, w)` given per-image `amount`s."""
        raise NotImplementedError


@register_layer()
@keras_config_order("factor", "value_range", "seed")
class RandomHue(_HSVLayer):
    """Rotates each image's hue by a random amount in training.

    Args:
        factor: a number `f` in [0, 1] draws hue shifts of `±[0, f] / 2` of a full turn, a
            pair `(lo, hi)` of `±[lo, hi] / 2` (the sign drawn per image, as Keras).
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        data_format, seed: as in the other augmentation layers.

    Example:
        >>> RandomHue((1.0, 1.0), value_range=(0, 1))(torch.tensor([[[[1.0, 0.0, 0.0]]]]),
        ...                                           training=True)
        tensor([[[[0., 1., 1.]]]])
    """

    def transform(self, images):
        sign = torch.where(self.uniform((images.shape[0],), 0.0, 1.0, images) > 0.5, -1.0, 1.0)
        amount = sign * self.uniform((images.shape[0],), *self.factor, images) * 0.5
        images = rescale(images, self.value_range, (0, 1))
        images = self._hsv_map(images, amount).clamp(0, 1)
        return rescale(images, (0, 1), self.value_range)

    def change(self, plane, amount):
        plane = plane + amount
        plane = torch.where(plane > 1.0, plane - 1.0, plane)
        return torch.where(plane < 0.0, plane + 1.0, plane)


@register_layer()
@keras_config_order("factor", "value_range", "seed")
class RandomSaturation(_HSVLayer):
    """Scales each image's saturation by a random factor in training.

    A draw `u` from `factor` scales saturation by `u / (1 - u)` (0.5: unchanged, 0:
    grayscale, near 1: fully saturated), as Keras 3 computes it.

    Args:
        factor: a number `f` draws `u` in `[-f, f]`, a pair `(lo, hi)` in `[lo, hi]`, within
            [-1, 1] (Keras reads the factor this way).
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        data_format, seed: as in the other augmentation layers.

    Example:
        >>> RandomSaturation((0.0, 0.0))(torch.tensor([[[[200.0, 0.0, 0.0]]]]), training=True)
        tensor([[[[200., 200., 200.]]]])
    """

    channel = 1
    factor_bounds = (-1.0, 1.0)

    def transform(self, images):
        draw = self.uniform((images.shape[0],), *self.factor, images)
        return self._hsv_map(images, draw / (1 - draw + config.epsilon()))

    def change(self, plane, amount):
        return (plane * amount).clamp(*self.value_range)
