"""Augmentations that cut or mix images: MixUp, CutMix (images and labels) and RandomErasing.

MixUp and CutMix take a batch of images, or a dict `{"images", "labels",
"segmentation_masks", "bounding_boxes"}`: labels are mixed in the same proportions as the
images, masks as the images (MixUp: weighted, so float; CutMix: the same box pasted); MixUp
appends each partner's boxes and box labels, CutMix refuses boxes (as Keras). RandomErasing
leaves boxes and masks as they are.
"""
from __future__ import annotations

import torch

from kestrel import random
from kestrel.layers.config_order import keras_config_order
from kestrel.layers.image_preprocessing.base import (
    RandomImageLayer, check_value_range, parse_factor)
from kestrel.layers.image_preprocessing.data import check_box_format
from kestrel.layers.layer import register_layer
from kestrel.ops.convert import convert_to_tensor


class _BoxLayer(RandomImageLayer):
    """Random boxes (one per image) as masks, and the image-or-dict calling convention."""

    def box_mask(self, images, width_ratio, height_ratio):
        """`(mask, area)`: a boolean mask broadcastable to `images` that is True in a box of
        `ratio * size` per image at a random position, and each box's fraction of the image."""
        height, width = self._size(images.shape)
        x0, x1 = self._bounds(images, width, width_ratio)
        y0, y1 = self._bounds(images, height, height_ratio)
        cols = torch.arange(width, dtype=images.dtype, device=images.device)
        rows = torch.arange(height, dtype=images.dtype, device=images.device)
        inside_x = (cols >= x0[:, None]) & (cols < x1[:, None])
        inside_y = (rows >= y0[:, None]) & (rows < y1[:, None])
        mask = inside_y[:, :, None] & inside_x[:, None, :]
        mask = mask.unsqueeze(-1) if self.data_format == "channels_last" else mask.unsqueeze(1)
        return mask, (x1 - x0) * (y1 - y0) / (width * height)

    def _bounds(self, images, length: int, ratio):
        crop = ratio * length
        start = self.uniform((images.shape[0],), 0.0, 1.0, images) * (length - crop)
        return start, start + crop

    def permutation(self, images) -> torch.Tensor:
        """A random order of the batch (Keras' shuffle of `arange`), on the images' device."""
        order = torch.arange(images.shape[0], dtype=torch.int64)
        return random.shuffle(order, seed=self.seed_generator).to(images.device)

    def beta(self, alpha, like: torch.Tensor) -> torch.Tensor:
        """One Beta(alpha, alpha) weight per image from `seed_generator`, in `like`'s dtype."""
        draws = random.beta((like.shape[0],), alpha, alpha, seed=self.seed_generator)
        return draws.to(device=like.device, dtype=like.dtype)

    def call(self, inputs, training=None):
        data = dict(inputs) if isinstance(inputs, dict) else {"images": inputs}
        images = convert_to_tensor(data["images"])
        if not self._is_training(training) or images.dim() == 3:
            data["images"] = images.to(self._compute_dtype)
            return data if isinstance(inputs, dict) else data["images"]
        images, _ = self._as_batch(images)
        params = self.draw(images)
        data["images"] = self.blend(images, params)
        weights, order = params[0], params[1]
        if "labels" in data:
            labels = torch.as_tensor(data["labels"], device=images.device)
            w = weights.reshape(-1, *[1] * (labels.dim() - 1)).to(images.dtype)
            data["labels"] = w * labels + (1.0 - w) * labels[order]
        if "segmentation_masks" in data:
            masks = convert_to_tensor(data["segmentation_masks"])
            data["segmentation_masks"] = self.blend_masks(masks, params)
        if "bounding_boxes" in data:
            check_box_format(self)
            data["bounding_boxes"] = self.mix_boxes(data["bounding_boxes"], order)
        return data if isinstance(inputs, dict) else data["images"]

    def draw(self, images) -> tuple:
        """`(label_weights, permutation, ...)`: one batch's random parameters."""
        raise NotImplementedError

    def blend(self, images, params) -> torch.Tensor:
        """`images` (or masks) mixed with their permutation by `params`."""
        raise NotImplementedError

    def blend_masks(self, masks, params) -> torch.Tensor:
        """Segmentation masks mixed as the images."""
        raise NotImplementedError

    def mix_boxes(self, bounding_boxes: dict, order) -> dict:
        """The `{"boxes", "labels"}` of the mixed images."""
        raise NotImplementedError


@register_layer()
@keras_config_order("alpha", "seed")
class MixUp(_BoxLayer):
    """Mixes each image (and label) with another of the batch: `w x + (1 - w) x[perm]`, with
    `w ~ Beta(alpha, alpha)` per image, in training.

    Args:
        alpha: the Beta distribution's parameter (default 0.2).
        data_format, seed: as in the other augmentation layers.

    Example:
        >>> out = MixUp(seed=0)({"images": torch.rand(4, 8, 8, 3),
        ...                      "labels": torch.eye(4)}, training=True)
        >>> out["labels"].sum(-1)
        tensor([1., 1., 1., 1.])
    """

    def __init__(self, alpha=0.2, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ValueError(f"MixUp '{self.name}': alpha must be a positive number. "
                             f"Received: alpha={alpha!r}")
        self.alpha = alpha

    def draw(self, images):
        order = self.permutation(images)  # Keras' order of draws: shuffle, then Beta
        return self.beta(self.alpha, images), order

    def blend(self, images, params):
        weights, order = params
        w = weights.reshape(-1, 1, 1, 1).to(images.dtype)
        return w * images + (1.0 - w) * images[order]

    def blend_masks(self, masks, params):
        """Masks mixed with the images' weights: float masks (as Keras)."""
        return self.blend(masks.to(params[0].dtype), params)

    def mix_boxes(self, bounding_boxes, order):
        """Each image keeps its boxes and gains its partner's (concatenated on the box axis)."""
        result = dict(bounding_boxes)
        for key in ("boxes", "labels"):
            if key in bounding_boxes:
                value = convert_to_tensor(bounding_boxes[key])
                result[key] = torch.cat([value, value[order.to(value.device)]], 1)
        return result

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@register_layer()
@keras_config_order("factor", "seed")
class CutMix(_BoxLayer):
    """Pastes a random box of another image of the batch into each image, in training; labels
    are mixed by the box's area.

    The box covers about `1 - w` of the image with `w ~ Beta(a, a)` per image and `a` drawn in
    `factor` once per batch (Keras' recipe).

    Args:
        factor: a number `f` in [0, 1] draws `a` in `[0, f]`, a pair in `[lo, hi]`
            (default 1.0).
        seed, data_format: as in the other augmentation layers.

    Example:
        >>> CutMix(seed=0)(torch.rand(4, 8, 8, 3), training=True).shape
        torch.Size([4, 8, 8, 3])
    """

    def __init__(self, factor=1.0, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = parse_factor(self, factor, bounds=(0.0, 1.0))

    def draw(self, images):
        alpha = float(self.uniform((), *self.factor, images)) + 1e-6
        ratio = torch.sqrt(1.0 - self.beta(alpha, images))
        mask, area = self.box_mask(images, ratio, ratio)
        return 1.0 - area, self.permutation(images), mask

    def blend(self, images, params):
        _, order, mask = params
        return torch.where(mask, images[order], images)

    def blend_masks(self, masks, params):
        """The partner's mask pasted in the same box."""
        return self.blend(masks, params)

    def mix_boxes(self, bounding_boxes, order):
        raise NotImplementedError(
            f"CutMix '{self.name}': bounding boxes are not supported (as in Keras); pass "
            "images, labels and segmentation_masks only. Received: a 'bounding_boxes' key")

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


@register_layer()
@keras_config_order("factor", "scale", "fill_value", "value_range", "seed")
class RandomErasing(_BoxLayer):
    """Erases a random box of each image with a probability drawn in `factor`, in training.

    The box spans `sqrt(s)` of the width and, independently, of the height, `s` drawn in
    `scale`; it is filled with `fill_value`, or with Gaussian noise times `value_range[1]`
    when None, clipped to `value_range`.

    Args:
        factor: a number `f` in [0, 1] draws the probability in `[0, f]` (default 1.0).
        scale: `(low, high)` of the box's area fraction (default `(0.02, 0.33)`).
        fill_value: None (noise), a number, or 3 numbers (one per channel).
        value_range, seed, data_format: as in the other augmentation layers.

    Example:
        >>> RandomErasing((1.0, 1.0), fill_value=0.0, seed=0)(
        ...     torch.ones(2, 8, 8, 3), training=True).min()
        tensor(0.)
    """

    def __init__(self, factor=1.0, scale=(0.02, 0.33), fill_value=None, value_range=(0, 255),
                 seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = parse_factor(self, factor, bounds=(0.0, 1.0))
        self.scale = parse_factor(self, scale, "scale", bounds=(0.0, 1.0))
        fills = fill_value if isinstance(fill_value, (tuple, list)) else [fill_value]
        if fill_value is not None and (len(fills) not in (1, 3) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in fills)):
            raise ValueError(f"RandomErasing '{self.name}': fill_value must be None, a number "
                             f"or 3 numbers. Received: fill_value={fill_value!r}")
        self.fill_value = list(fill_value) if isinstance(fill_value, tuple) else fill_value
        self.value_range = check_value_range(self, value_range)

    def call(self, inputs, training=None):
        return RandomImageLayer.call(self, inputs, training)

    def transform(self, images):
        ratios = self.uniform((images.shape[0], 2), *self.scale, images).sqrt()
        mask, _ = self.box_mask(images, ratios[:, 0], ratios[:, 1])
        mask = mask & self.apply_mask(self.factor, images)  # drawn before the fill, as Keras
        if self.fill_value is None:
            fill = self.normal(images.shape, images) * self.value_range[1]
        else:
            fill = torch.tensor(self.fill_value, dtype=images.dtype, device=images.device)
            if fill.dim() and self.data_format == "channels_first":
                fill = fill.reshape(-1, 1, 1)
        fill = fill.clamp(*self.value_range)
        return torch.where(mask, fill, images)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor), "scale": list(self.scale),
                "fill_value": self.fill_value, "value_range": list(self.value_range)}
