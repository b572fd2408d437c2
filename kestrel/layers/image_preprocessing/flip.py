"""RandomFlip: flips images horizontally and/or vertically in training."""
from __future__ import annotations

import torch

from kestrel.layers.image_preprocessing.base import RandomImageLayer
from kestrel.layers.image_preprocessing.data import affine_rows
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
        bounding_box_format: format of the boxes of dict inputs (flipped with the images).

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 4, 1)
        >>> RandomFlip("horizontal")(x, training=False).flatten()  # inference: unchanged
        tensor([0., 1., 2., 3.])
    """
    _keras_converts_inputs = False  # see node_arguments

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in MODES:
            raise ValueError(f"RandomFlip '{self.name}': mode must be one of {MODES}. "
                             f"Received: mode={mode!r}")
        self.mode = mode

    def get_transformation(self, images, training=None):
        if not self._is_training(training):
            return None
        return self.uniform((images.shape[0], 1, 1, 1), 0.0, 1.0, images) <= 0.5

    def transform(self, images):
        return self.transform_images(images, self.get_transformation(images, True))

    def transform_images(self, images, flips):
        if flips is None:
            return images
        h_axis, w_axis = self._spatial_axes(4)
        axes = [w_axis] if self.mode == "horizontal" else [h_axis] if self.mode == "vertical" \
            else [h_axis, w_axis]
        return torch.where(flips, images.flip(axes), images)

    transform_masks = transform_images

    def box_matrix(self, flips, size):
        if flips is None:
            return None
        sign = 1.0 - 2.0 * flips.flatten().to(torch.float32)  # -1 where flipped
        height, width = size
        sx = sign if self.mode != "vertical" else 1.0
        sy = sign if self.mode != "horizontal" else 1.0
        return affine_rows(sign.shape[0], sign, sx, sy, (1 - sx) * width / 2,
                           (1 - sy) * height / 2)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
