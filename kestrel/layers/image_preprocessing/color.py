"""RandomContrast and RandomBrightness: random per-image changes of pixel values."""
from __future__ import annotations

from kestrel.layers.config_order import keras_config_order
from kestrel.layers.image_preprocessing.base import (
    RandomImageLayer, check_value_range, parse_factor)
from kestrel.layers.layer import register_layer


class _ValueLayer(RandomImageLayer):
    """A layer that changes pixel values within `value_range` by a random `factor`."""

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None,
                 factor_bounds=(-1.0, 1.0), **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = parse_factor(self, factor, bounds=factor_bounds)
        self.value_range = value_range
        self._low, self._high = check_value_range(self, value_range)

    def _per_image(self, images, low, high):
        return self.uniform((images.shape[0], 1, 1, 1), low, high, images)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range)}


@register_layer()
@keras_config_order("factor", "value_range", "seed")
class RandomContrast(_ValueLayer):
    """Scales each image's deviation from its per-channel mean by a random factor in training,
    then clips to `value_range`.

    Args:
        factor: a number `f` in [0, 1] draws contrast factors in `[1, 1 + f]`; a pair
            `(lo, hi)` in `[1 - lo, 1 + hi]` (Keras 3 reads one number this way).
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        seed, data_format: as in the other augmentation layers.

    Example:
        >>> RandomContrast(0.5, seed=0)(torch.ones(2, 4, 4, 3), training=True).shape
        torch.Size([2, 4, 4, 3])
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(factor, value_range, seed, data_format, factor_bounds=(0.0, 1.0),
                         **kwargs)

    def transform(self, images):
        contrast = self._per_image(images, 1.0 - self.factor[0], 1.0 + self.factor[1])
        mean = images.mean(dim=self._spatial_axes(4), keepdim=True)
        return ((images - mean) * contrast + mean).clamp(self._low, self._high)


@register_layer()
@keras_config_order("factor", "value_range", "seed")
class RandomBrightness(_ValueLayer):
    """Adds a random per-image offset in training, then clips to `value_range`.

    Args:
        factor: a number `f` in [0, 1] draws offsets in `[-f, f] * (high - low)`; a pair
            `(lo, hi)` in `[lo, hi] * (high - low)`.
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        seed, data_format: as in the other augmentation layers.

    Example:
        >>> RandomBrightness(0.2, seed=0)(torch.ones(2, 4, 4, 3), training=True).shape
        torch.Size([2, 4, 4, 3])
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(factor, value_range, seed, data_format, **kwargs)
        self.value_range = [self._low, self._high]

    def transform(self, images):
        delta = self._per_image(images, *self.factor) * (self._high - self._low)
        return (images + delta).clamp(self._low, self._high)
