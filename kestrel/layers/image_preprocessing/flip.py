"""RandomFlip: flips images horizontally and/or vertically in training."""
from __future__ import annotations

import torch

from kestrel.layers.image_preprocessing.base import RandomImageLayer
from kestrel.layers.layer import register_layer

MODES = ("horizontal", "vertical", "horizontal_and_vertical")


@register_layer()
class RandomFlip(RandomImageLayer):
    """Flips each image with probability 1/2 in training; identity at inference.

    Args:
        mode: `"horizontal"` (left-right), `"vertical"` (up-down) or
            `"horizontal_and_vertical"` (default; as Keras, one draw per image flips both
            axes together, i.e. a 180-degree rotation, or neither).
        seed: int for reproducible flips.
        data_format: `"channels_last"` or `"channels_first"`.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 4, 1)
        >>> RandomFlip("horizontal")(x).flatten()  # inference: unchanged
        tensor([0., 1., 2., 3.])
    """

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in MODES:
            raise ValueError(f"RandomFlip '{self.name}': mode must be one of {MODES}. "
                             f"Received: mode={mode!r}")
        self.mode = mode

    def transform(self, images):
        flips = self.uniform((images.shape[0], 1, 1, 1), 0.0, 1.0, images) <= 0.5
        h_axis, w_axis = self._spatial_axes(4)
        axes = [w_axis] if self.mode == "horizontal" else [h_axis] if self.mode == "vertical" \
            else [h_axis, w_axis]
        return torch.where(flips, images.flip(axes), images)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
