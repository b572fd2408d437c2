"""`draw_bounding_boxes`: box outlines (NumPy) and class labels (Pillow) on a batch of images."""
from __future__ import annotations

import warnings

import numpy as np

from kestrel.ops.core import convert_to_numpy
from kestrel.utils.bounding_boxes import convert_format
from kestrel.visualization._common import channels_last_batch, data_format_of, to_uint8

_NAME = "draw_bounding_boxes"


def _as_uint8(images: np.ndarray) -> np.ndarray:
    """Floats with max <= 1 are read as [0, 1], other values as [0, 255]; both clipped."""
    if images.dtype.kind == "f" and images.size and images.max() <= 1.0:
        images = np.clip(images, 0, 1) * 255
    return to_uint8(images)


def _fill(image: np.ndarray, top: int, bottom: int, left: int, right: int, color) -> None:
    """Paint the inclusive pixel block `[top, bottom] x [left, right]`, clipped to the image."""
    top, left = max(top, 0), max(left, 0)
    if top <= bottom and left <= right:
        image[top:bottom + 1, left:right + 1] = color


def _rectangle(image: np.ndarray, x1: int, y1: int, x2: int, y2: int, color, thickness: int):
    """A box outline `thickness` pixels wide, centered on its edges (as OpenCV draws it)."""
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    lo, hi = thickness // 2, (thickness - 1) // 2
    for y in (y1, y2):  # top and bottom edges
        _fill(image, y - lo, y + hi, x1 - lo, x2 + hi, color)
    for x in (x1, x2):  # left and right edges
        _fill(image, y1 - lo, y2 + hi, x - lo, x + hi, color)


def _text_origin(x: int, y: int, font_scale: float, thickness: int):
    """Label baseline start: above the box when it fits, else just inside its top-left corner."""
    font_height = int(font_scale * 12)
    if y - 8 - 2 * font_height > 0:
        return x, y - 8
    return x + 3, y + 2 * font_height + thickness + 3


def _label_writer(font_scale: float):
    """`write(image, text, origin, color, thickness)` drawing with Pillow; None without it."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return None
    size = max(1, round(30 * font_scale))  # about the cap height of OpenCV's simplex font
    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # old Pillow or no FreeType: the bitmap font
        font = ImageFont.load_default()

    def write(image: np.ndarray, text: str, origin, color, thickness: int) -> None:
        canvas = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
        fill = tuple(int(c) for c in color) if image.shape[-1] > 1 else int(color[0])
        ImageDraw.Draw(canvas).text(origin, text, fill=fill, font=font, anchor="ls",
                                    stroke_width=max(thickness - 1, 0), stroke_fill=fill)
        image[...] = np.asarray(canvas).reshape(image.shape)

    return write


def draw_bounding_boxes(images, bounding_boxes, bounding_box_format, class_mapping=None,
                        color=(128, 128, 128), line_thickness=2, text_thickness=1,
                        font_scale=1.0, data_format=None):
    """Draw boxes (and class labels) on images; returns a uint8 NumPy array shaped like `images`.

    Outlines are drawn with NumPy, `line_thickness` pixels wide and centered on the box edges.
    Labels (`class_mapping[label]`, plus `" | 0.87"` when `confidences` are given) are written
    with Pillow when it is installed; without Pillow the boxes are still drawn and one warning
    per call says that the labels were skipped. OpenCV is not needed. Float images whose
    maximum is <= 1 are read as [0, 1] and scaled to [0, 255]; boxes labelled -1 are skipped.

    Args:
        images: `(batch, height, width, channels)` images (NumPy or torch), or channels first
            with `data_format="channels_first"`.
        bounding_boxes: dict with `"boxes"` `(batch, num_boxes, 4)`, `"labels"`
            `(batch, num_boxes)` and optionally `"confidences"` `(batch, num_boxes)`.
        bounding_box_format: format of the boxes, e.g. `"xyxy"`, `"rel_yxyx"`, `"center_xywh"`
            (see `kestrel.utils.bounding_boxes.convert_format`).
        class_mapping: dict `class id -> name`; only classes it names get a label.
        color: outline and text color, one value per channel.
        line_thickness: outline width in pixels (>= 1).
        text_thickness: label stroke; None or 0 means `line_thickness`.
        font_scale: label size, 1.0 is about 21 pixels high.
        data_format: `"channels_last"` or `"channels_first"`; default `image_data_format()`.

    Example:
        >>> import numpy as np
        >>> images = np.zeros((1, 8, 8, 3), "uint8")
        >>> boxes = {"boxes": np.array([[[1, 1, 5, 5]]]), "labels": np.array([[0]])}
        >>> drawn = draw_bounding_boxes(images, boxes, "xyxy", color=(255, 0, 0), line_thickness=1)
        >>> drawn[0, 1, 1:6, 0].tolist(), int(drawn[0, 3, 3, 0])
        ([255, 255, 255, 255, 255], 0)
    """
    data_format = data_format_of(_NAME, data_format)
    if not isinstance(bounding_boxes, dict):
        raise TypeError(f"{_NAME}: `bounding_boxes` must be a dict with 'boxes' and 'labels'. "
                        f"Received: type(bounding_boxes)={type(bounding_boxes).__name__}")
    missing = [key for key in ("boxes", "labels") if key not in bounding_boxes]
    if missing:
        raise ValueError(f"{_NAME}: `bounding_boxes` needs the keys 'boxes' and 'labels'. "
                         f"Received: keys={sorted(map(str, bounding_boxes))}")
    if int(line_thickness) < 1:
        raise ValueError(f"{_NAME}: `line_thickness` must be >= 1. "
                         f"Received: line_thickness={line_thickness}")
    images = _as_uint8(channels_last_batch(_NAME, images, data_format))
    color = np.asarray(color)
    if color.shape != (images.shape[-1],):
        raise ValueError(f"{_NAME}: `color` needs one value per image channel "
                         f"({images.shape[-1]}). Received: color={tuple(color.ravel()[:8])}")
    height, width = images.shape[1:3]
    boxes = convert_to_numpy(convert_format(convert_to_numpy(bounding_boxes["boxes"]),
                                            bounding_box_format, "xyxy", height, width))
    boxes = boxes.astype("int32")
    labels = convert_to_numpy(bounding_boxes["labels"]).astype("int32")
    confidences = bounding_boxes.get("confidences")
    confidences = None if confidences is None else convert_to_numpy(confidences)
    class_mapping = class_mapping or {}
    text_thickness = text_thickness or line_thickness
    write = _label_writer(font_scale) if class_mapping else None
    skipped_labels = False
    for index, (image, image_boxes, image_labels) in enumerate(zip(images, boxes, labels)):
        for box_index, ((x1, y1, x2, y2), label) in enumerate(zip(image_boxes, image_labels)):
            if label == -1:
                continue
            _rectangle(image, int(x1), int(y1), int(x2), int(y2), color, int(line_thickness))
            if int(label) not in class_mapping:
                continue
            if write is None:
                skipped_labels = True
                continue
            text = str(class_mapping[int(label)])
            if confidences is not None:
                text = f"{text} | {float(confidences[index][box_index]):.2f}"
            origin = _text_origin(int(x1), int(y1), font_scale, text_thickness)
            write(image, text, origin, color, text_thickness)
    if skipped_labels:
        warnings.warn(f"{_NAME}: Pillow is not installed, so class labels were not drawn "
                      "(`pip install pillow`).", stacklevel=2)
    return images.transpose(0, 3, 1, 2) if data_format == "channels_first" else images
