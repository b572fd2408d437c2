"""RandomSharpness and RandomGaussianBlur: random per-image 2-D filters (grouped convs)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel.layers.config_order import keras_config_order
from kestrel.layers.image_preprocessing.base import check_value_range, parse_factor
from kestrel.layers.image_preprocessing.pointwise import ColorLayer
from kestrel.layers.layer import register_layer


def depthwise(images: torch.Tensor, kernel: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Convolve every channel of a batch with the 2-D `kernel`, zero padded to the same size."""
    x = images.permute(0, 3, 1, 2) if channels_last else images
    weight = kernel.to(x.dtype).expand(x.shape[1], 1, *kernel.shape)
    out = F.conv2d(x, weight, padding=(kernel.shape[0] // 2, kernel.shape[1] // 2),
                   groups=x.shape[1])
    return out.permute(0, 2, 3, 1) if channels_last else out


@register_layer()
@keras_config_order("factor", "value_range", "seed")
class RandomSharpness(ColorLayer):
    """Sharpens or blurs each image by a random amount in training.

    The image is blended with its 3x3 smoothed version: `x + (1 - 2u) (smooth(x) - x)` for a
    per-image draw `u` (0.5: unchanged, 0: smoothed, 1: sharpened), clipped to `value_range`.

    Args:
        factor: a number `f` in [0, 1] draws `u` in `[0, f]`, a pair in `[lo, hi]`.
        value_range, data_format, seed: as in the other colour layers.

    Example:
        >>> RandomSharpness((0.5, 0.5))(torch.ones(1, 3, 3, 1), training=True).flatten()[4]
        tensor(1.)
    """

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(factor, value_range, seed, data_format, **kwargs)

    def transform(self, images):
        amount = self.per_image(images, *self.factor) * 2
        a, b = 1.0 / 13.0, 5.0 / 13.0
        kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], device=images.device)
        smooth = depthwise(images, kernel, self.data_format == "channels_last")
        return (images + (1.0 - amount) * (smooth - images)).clamp(*self.value_range)


@register_layer()
@keras_config_order("factor", "kernel_size", "sigma", "value_range", "seed")
class RandomGaussianBlur(ColorLayer):
    """Blurs images with a Gaussian kernel in training, each with a probability drawn in
    `factor`; one pair of sigmas (width, height) is drawn per batch, as Keras.

    Args:
        factor: a number `f` in [0, 1] draws the blur probability in `[0, f]` (default 1.0);
            `(1.0, 1.0)` blurs every image.
        kernel_size: odd kernel size, or a pair `(width, height)` of odd sizes (default 3).
        sigma: a number `s` in [0, 1] draws sigmas in `[0, s]`, a pair in `[lo, hi]`
            (default 1.0).
        value_range, data_format, seed: as in the other colour layers.

    Example:
        >>> blur = RandomGaussianBlur((1.0, 1.0), sigma=(0.5, 0.5))
        >>> blur(torch.ones(1, 5, 5, 1), training=True)[0, 2, 2, 0]
        tensor(1.)
    """

    def __init__(self, factor=1.0, kernel_size=3, sigma=1.0, value_range=(0, 255),
                 data_format=None, seed=None, **kwargs):
        super().__init__(factor, value_range, seed, data_format, **kwargs)
        sizes = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size,) * 2
        if len(sizes) != 2 or not all(isinstance(k, int) and not isinstance(k, bool)
                                      and k > 0 and k % 2 == 1 for k in sizes):
            raise ValueError(f"RandomGaussianBlur '{self.name}': kernel_size must be an odd "
                             f"integer or a pair of them. Received: kernel_size={kernel_size!r}")
        self.kernel_size = tuple(sizes)
        self.sigma = parse_factor(self, sigma, "sigma", (0.0, 1.0))
        self.value_range = check_value_range(self, value_range)

    def _kernel1d(self, size: int, sigma: torch.Tensor) -> torch.Tensor:
        x = torch.arange(size, dtype=sigma.dtype, device=sigma.device) - (size - 1) / 2
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        return kernel / kernel.sum()

    def transform(self, images):
        picked = self.apply_mask(self.factor, images)  # drawn before sigma, as in Keras
        sigma = self.uniform((2,), *self.sigma, images) + 1e-6
        kernel = torch.outer(self._kernel1d(self.kernel_size[1], sigma[1]),
                             self._kernel1d(self.kernel_size[0], sigma[0]))
        blurred = depthwise(images, kernel, self.data_format == "channels_last")
        images = torch.where(picked, blurred, images)
        return images.clamp(*self.value_range)

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "sigma": list(self.sigma)}
