"""Pointwise colour augmentations: each maps every pixel through a per-image function.

RandomGrayscale, RandomInvert, RandomPosterization, RandomColorDegeneration, Solarization,
AutoContrast and Equalization, with Keras 3's arguments and numbers.
"""
from __future__ import annotations

import torch

from kestrel.layers.config_order import keras_config_order
from kestrel.layers.image_preprocessing.base import (
    ImageLayer, RandomImageLayer, check_value_range, parse_factor, rescale)
from kestrel.layers.layer import register_layer


def grayscale(images: torch.Tensor, data_format: str) -> torch.Tensor:
    """Luma `0.2989 R + 0.587 G + 0.114 B` of RGB images, as one channel."""
    r, g, b = images.unbind(-1 if data_format == "channels_last" else -3)
    luma = 0.2989 * r + 0.587 * g + 0.114 * b
    return luma.unsqueeze(-1 if data_format == "channels_last" else -3)


class ColorLayer(RandomImageLayer):
    """A random colour layer with a `factor` range and a `value_range`.

    Subclasses set `factor_bounds` (the range a factor must lie in).
    """

    factor_bounds = (0.0, 1.0)

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = parse_factor(self, factor, bounds=self.factor_bounds)
        self.value_range = check_value_range(self, value_range)

    def per_image(self, images, low, high):
        """One uniform draw in `[low, high)` per image, shaped `(batch, 1, 1, 1)`."""
        return self.uniform((images.shape[0], 1, 1, 1), low, high, images)

    def grayscale(self, images):
        return grayscale(images, self.data_format)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range)}


@register_layer()
class RandomGrayscale(RandomImageLayer):
    """Turns each RGB image to grayscale (kept as 3 equal channels) with probability `factor`.

    Args:
        factor: probability in [0, 1] (default 0.5).
        data_format, seed: as in the other augmentation layers.

    Example:
        >>> RandomGrayscale(1.0)(torch.rand(2, 4, 4, 3), training=True).std(-1).max() < 1e-6
        tensor(True)
    """

    def __init__(self, factor=0.5, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not 0 <= factor <= 1:
            raise ValueError(f"RandomGrayscale '{self.name}': factor must be a number in "
                             f"[0, 1]. Received: factor={factor!r}")
        self.factor = factor

    def transform(self, images):
        picked = self.uniform((images.shape[0], 1, 1, 1), 0.0, 1.0, images) < self.factor
        gray = grayscale(images, self.data_format)
        return torch.where(picked, gray, images)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register_layer()
@keras_config_order("factor", "value_range", "seed")
class RandomInvert(ColorLayer):
    """Replaces each image by `value_range[1] - image` with a probability drawn in `factor`.

    Args:
        factor: a number `f` in [0, 1] draws the probability in `[0, f]` (default 1.0: an
            image is inverted with probability 1/2); `(1.0, 1.0)` inverts every image.
        value_range, seed, data_format: as in the other colour layers.

    Example:
        >>> RandomInvert((1.0, 1.0))(torch.zeros(1, 2, 2, 3), training=True).max()
        tensor(255.)
    """

    def __init__(self, factor=1.0, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(factor, value_range, seed, data_format, **kwargs)

    def transform(self, images):
        return torch.where(self.apply_mask(self.factor, images), self.value_range[1] - images,
                           images)


@register_layer()
@keras_config_order("factor", "value_range", "seed")
class RandomPosterization(ColorLayer):
    """Keeps only the `bits` highest bits of each 8-bit colour value, `bits` drawn per image.

    Args:
        factor: bits in [1, 8]: a number `f` draws in `[1, f)`, a pair `(lo, hi)` in
            `[lo, hi)` (Keras' integer draw), equal ends fix the bits.
        value_range, data_format, seed: as in the other colour layers.

    Example:
        >>> RandomPosterization((1, 1))(torch.full((1, 1, 1, 3), 200.0), training=True)
        tensor([[[[128., 128., 128.]]]])
    """

    factor_bounds = (1, 8)

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(factor, value_range, seed, data_format, **kwargs)
        self.factor = tuple(int(f) for f in self.factor)

    def transform(self, images):
        low, high = self.factor
        shape = (images.shape[0], 1, 1, 1)
        bits = self.randint(shape, low, high, images) if low != high \
            else torch.full(shape, low, device=images.device)
        shift = (8 - bits).to(torch.uint8)
        pixels = rescale(images, self.value_range, (0, 255)).to(torch.uint8)
        pixels = torch.bitwise_left_shift(torch.bitwise_right_shift(pixels, shift), shift)
        return rescale(pixels.to(images.dtype), (0, 255), self.value_range)


@register_layer()
@keras_config_order("factor", "value_range", "seed")
class RandomColorDegeneration(ColorLayer):
    """Blends each RGB image toward its grayscale version by a random per-image amount.

    Args:
        factor: blend amount: a number `f` draws in `[-f, f]`, a pair in `[lo, hi]`, within
            [-1, 1] (0: unchanged, 1: grayscale); the result is clipped to `value_range`.
        value_range, data_format, seed: as in the other colour layers.

    Example:
        >>> RandomColorDegeneration((1.0, 1.0))(torch.rand(1, 2, 2, 3), training=True).shape
        torch.Size([1, 2, 2, 3])
    """

    factor_bounds = (-1.0, 1.0)

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(factor, value_range, seed, data_format, **kwargs)

    def transform(self, images):
        amount = self.per_image(images, *self.factor)
        images = images + amount * (self.grayscale(images) - images)
        return images.clamp(*self.value_range)


@register_layer()
@keras_config_order("value_range", "addition_factor", "threshold_factor", "seed")
class Solarization(RandomImageLayer):
    """Adds a random per-image offset, then inverts every value above a random threshold.

    On the 0-255 scale: `x = clip(x + a, 0, 255)`, then `255 - x` where `x >= t`, with
    `a` in `[lo, hi * 255]` of `addition_factor` and `t` likewise of `threshold_factor`.

    Args:
        addition_factor: a number `f` in [0, 1] means `(0, f)`, or a pair (default 0).
        threshold_factor: as `addition_factor` (default 0: every value is inverted).
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        seed, data_format: as in the other augmentation layers.

    Example:
        >>> Solarization()(torch.tensor([[[[0.0, 55.0, 255.0]]]]), training=True)
        tensor([[[[255., 200.,   0.]]]])
    """

    def __init__(self, addition_factor=0.0, threshold_factor=0.0, value_range=(0, 255),
                 seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.addition_factor = parse_factor(self, addition_factor, "addition_factor", (0, 1))
        self.threshold_factor = parse_factor(self, threshold_factor, "threshold_factor", (0, 1))
        self.value_range = check_value_range(self, value_range)

    def transform(self, images):
        shape = (images.shape[0], 1, 1, 1)
        additions = self.uniform(shape, self.addition_factor[0],
                                 self.addition_factor[1] * 255, images)
        thresholds = self.uniform(shape, self.threshold_factor[0],
                                  self.threshold_factor[1] * 255, images)
        results = (rescale(images, self.value_range, (0, 255)) + additions).clamp(0, 255)
        results = torch.where(results < thresholds, results, 255 - results)
        return rescale(results, (0, 255), self.value_range)

    def get_config(self):
        return {**super().get_config(), "value_range": list(self.value_range),
                "addition_factor": list(self.addition_factor),
                "threshold_factor": list(self.threshold_factor)}


@register_layer()
class AutoContrast(ImageLayer):
    """Stretches each image's channels to fill `value_range` (in training and inference).

    A constant channel is left unchanged.

    Args:
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        data_format: `"channels_last"` or `"channels_first"`.

    Example:
        >>> AutoContrast()(torch.tensor([[[[10.0], [20.0]]]])).flatten()
        tensor([  0., 255.])
    """

    def __init__(self, value_range=(0, 255), **kwargs):
        super().__init__(**kwargs)
        self.value_range = check_value_range(self, value_range)

    def transform(self, images):
        scaled = rescale(images, self.value_range, (0, 255))
        axes = self._spatial_axes(4)
        low, high = scaled.amin(dim=axes, keepdim=True), scaled.amax(dim=axes, keepdim=True)
        stretched = ((scaled - low) * (255.0 / (high - low))).clamp(0.0, 255.0)
        return torch.where(high > low, rescale(stretched, (0, 255), self.value_range), images)

    def get_config(self):
        return {**super().get_config(), "value_range": list(self.value_range)}


@register_layer()
class Equalization(ImageLayer):
    """Histogram equalization of each channel in training (identity at inference).

    As Keras, one histogram of `bins` bins per channel covers the whole batch; a channel with
    a single occupied bin is left unchanged.

    Args:
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        bins: number of histogram bins (default 256).
        data_format: `"channels_last"` or `"channels_first"`.

    Example:
        >>> Equalization()(torch.tensor([[[[0.0], [10.0], [20.0]]]]), training=True).flatten()
        tensor([  0., 128., 255.])
    """

    def __init__(self, value_range=(0, 255), bins=256, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
            raise ValueError(f"Equalization '{self.name}': bins must be an integer >= 2. "
                             f"Received: bins={bins!r}")
        self.bins = bins
        self.value_range = check_value_range(self, value_range)

    def get_transformation(self, images, training=None):
        return True if self._is_training(training) else None

    def transform_images(self, images, params):
        return images if params is None else self.transform(images)

    def _scale(self, values, source, target):
        scale = (target[1] - target[0]) / (source[1] - source[0])
        return values * scale + (target[0] - source[0] * scale)

    def transform(self, images):
        axis = -1 if self.data_format == "channels_last" else -3
        channels = images.movedim(axis, 0)
        values = self._scale(channels.reshape(channels.shape[0], -1), self.value_range,
                             (0, 255))
        top = self.bins - 1
        index = (values * top / 255).to(torch.int32).clamp(0, top).long()
        hist = torch.zeros(values.shape[0], self.bins, dtype=torch.int64,
                           device=values.device).scatter_add_(1, index, torch.ones_like(index))
        cdf = hist.cumsum(1)
        cdf_min = cdf.masked_fill(cdf == 0, cdf.max() + 1).amin(1, keepdim=True)
        denominator = cdf[:, -1:] - cdf_min
        denominator = torch.where(denominator == 0, 1, denominator)
        table = ((cdf - cdf_min) * 255 / denominator).round().clamp(0, 255).to(values.dtype)
        lookup = (values / 255.0 * top).clamp(0, top).to(torch.int32).long()
        equalized = torch.where((hist > 0).sum(1, keepdim=True) <= 1, values,
                                table.gather(1, lookup))
        equalized = self._scale(equalized, (0, 255), self.value_range)
        return equalized.reshape(channels.shape).movedim(0, axis)

    def get_config(self):
        return {**super().get_config(), "bins": self.bins,
                "value_range": list(self.value_range)}
