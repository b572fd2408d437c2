"""`draw_segmentation_masks`: class masks painted over a batch of images, in NumPy."""
from __future__ import annotations

import numpy as np

from kestrel.ops.core import convert_to_numpy
from kestrel.visualization._common import channels_last_batch, data_format_of

_NAME = "draw_segmentation_masks"


def _palette(num_classes: int) -> np.ndarray:
    """The default color of class `i`: `i * (2**25 - 1, 2**15 - 1, 2**21 - 1) mod 255`."""
    steps = np.array([2**25 - 1, 2**15 - 1, 2**21 - 1])
    return (np.arange(num_classes)[:, None] * steps) % 255


def _class_masks(masks, data_format: str) -> np.ndarray:
    """Integer masks as `(batch, height, width)`, from 3D or 4D (one channel) input."""
    masks = convert_to_numpy(masks)
    if not np.issubdtype(masks.dtype, np.integer):
        raise TypeError(f"{_NAME}: `segmentation_masks` must have an integer dtype. "
                        f"Received: segmentation_masks.dtype={masks.dtype}")
    channel_axis = 1 if data_format == "channels_first" else 3
    if masks.ndim == 4 and masks.shape[channel_axis] == 1:
        return masks.squeeze(channel_axis)
    if masks.ndim == 3:
        return masks
    raise ValueError(f"{_NAME}: `segmentation_masks` must be (batch, height, width) or have one "
                     f"channel. Received: segmentation_masks.shape={masks.shape}")


def _color_table(num_classes: int, color_mapping, channels: int):
    """`(colors, known)`: one color row per class and whether that class is painted."""
    if color_mapping is None:
        colors, known = _palette(num_classes), np.ones(num_classes, bool)
    else:
        colors = np.zeros((num_classes, channels))
        known = np.array([i in color_mapping for i in range(num_classes)], bool)
        for i in np.flatnonzero(known):
            colors[i] = color_mapping[i]
    if num_classes and colors.shape[1] != channels:
        raise ValueError(f"{_NAME}: colors must have one value per image channel. Received: "
                         f"{colors.shape[1]} color values for images with {channels} channels")
    return colors.astype("float32"), known


def draw_segmentation_masks(images, segmentation_masks, num_classes=None, color_mapping=None,
                            alpha=0.8, blend=True, ignore_index=-1, data_format=None):
    """Paint class masks over images; returns a uint8 NumPy array shaped like `images`.

    Pixels of class `c` (`0 <= c < num_classes`, `c != ignore_index`) take the color of `c`,
    mixed with the image as `image * (1 - alpha) + color * alpha` when `blend` (as Keras, in
    float32 then truncated to uint8), or replacing it when not. Class 0 is painted too (black
    in the default palette) unless `ignore_index=0`.

    Args:
        images: `(batch, height, width, channels)` images in [0, 255] (NumPy or torch), or
            `(batch, channels, height, width)` with `data_format="channels_first"`.
        segmentation_masks: integer masks, `(batch, height, width)` or with a channel axis of 1.
        num_classes: classes to paint; default: the largest mask value plus one (Keras uses the
            largest value itself, which leaves that class unpainted).
        color_mapping: dict `class -> RGB`; classes it lacks stay unpainted. Default: a fixed
            palette, `(0, 0, 0)` for class 0.
        alpha: mask opacity in [0, 1].
        blend: mix masks with the image (True) or paint them opaque (False).
        ignore_index: mask value never painted.
        data_format: `"channels_last"` or `"channels_first"`; default `image_data_format()`.

    Example:
        >>> import numpy as np
        >>> images = np.full((1, 2, 2, 3), 100, "uint8")
        >>> masks = np.array([[[0, 1], [1, -1]]])
        >>> draw_segmentation_masks(images, masks, num_classes=2)[0, 0, 1].tolist()
        [20, 121, 44]
    """
    data_format = data_format_of(_NAME, data_format)
    if not 0 <= alpha <= 1:
        raise ValueError(f"{_NAME}: `alpha` must be in [0, 1]. Received: alpha={alpha}")
    pixels = channels_last_batch(_NAME, images, data_format).astype("float32")
    masks = _class_masks(segmentation_masks, data_format)
    if masks.shape != pixels.shape[:3]:
        raise ValueError(f"{_NAME}: masks must match the images' batch, height and width. "
                         f"Received: segmentation_masks.shape={masks.shape}, images of "
                         f"(batch, height, width)={pixels.shape[:3]}")
    if num_classes is None:
        num_classes = max(int(masks.max(initial=-1)) + 1, 0)
    colors, known = _color_table(num_classes, color_mapping, pixels.shape[-1])
    in_range = (masks >= 0) & (masks < num_classes)
    painted = in_range & (masks != ignore_index)
    painted[in_range] &= known[masks[in_range]]
    colored = pixels.copy()
    colored[painted] = colors[masks[painted]]
    if blend:
        colored = pixels * (1 - alpha) + colored * alpha
    output = np.where((masks != ignore_index)[..., None], colored, pixels).astype("uint8")
    return output.transpose(0, 3, 1, 2) if data_format == "channels_first" else output
