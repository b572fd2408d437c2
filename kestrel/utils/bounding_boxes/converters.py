"""`convert_format` and the box geometry helpers of `keras.utils.bounding_boxes`."""
from __future__ import annotations

import math

import torch

from kestrel import config
from kestrel.ops.convert import convert_to_tensor, torch_dtype
from kestrel.utils.bounding_boxes.formats import (
    check_format, layout_to_xyxy, split_format, xyxy_to_layout)


def _tensor(x, dtype=None) -> torch.Tensor:
    return convert_to_tensor(x, dtype=dtype)


def _scale(height, width, like: torch.Tensor) -> torch.Tensor:
    """`[width, height, width, height]` in `like`'s dtype and device (broadcasts on boxes)."""
    w = torch.as_tensor(width, dtype=like.dtype, device=like.device)
    h = torch.as_tensor(height, dtype=like.dtype, device=like.device)
    w, h = w.reshape(w.shape + (1,)), h.reshape(h.shape + (1,))
    w, h = torch.broadcast_tensors(w, h)
    return torch.cat([w, h, w, h], dim=-1)


def convert_format(boxes, source, target, height=None, width=None, dtype="float32"):
    """Convert bounding boxes between formats (`xyxy`, `yxyx`, `xywh`, `center_xywh`,
    `center_yxhw` and the relative `rel_xyxy`, `rel_yxyx`, `rel_xywh`, `rel_center_xywh`).

    Args:
        boxes: `(..., 4)` tensor or array, or a dict whose `"boxes"` entry is converted.
        source: format of `boxes`.
        target: format to return.
        height: image height (needed when either format is relative).
        width: image width (needed when either format is relative).
        dtype: dtype of the result.

    Example:
    >>> convert_format([[10, 20, 30, 40]], "xyxy", "xywh").tolist()
    [[10.0, 20.0, 20.0, 20.0]]
    """
    if isinstance(boxes, dict):
        return {**boxes, "boxes": convert_format(boxes["boxes"], source, target, height, width,
                                                 dtype)}
    boxes = _tensor(boxes)
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError("convert_format: `boxes` must have a last dimension of 4. "
                         f"Received: boxes.shape={tuple(boxes.shape)}")
    source = check_format(source, "source")
    target = check_format(target, "target")
    (src_rel, src_layout), (tgt_rel, tgt_layout) = split_format(source), split_format(target)
    if (src_rel or tgt_rel) and (height is None or width is None):
        raise ValueError(
            "convert_format: `height` and `width` are needed to convert between relative and "
            f"absolute formats. Received: source={source!r}, target={target!r}, "
            f"height={height}, width={width}")
    boxes = boxes.to(torch_dtype(dtype))
    if source == target:
        return boxes
    boxes = layout_to_xyxy(boxes, src_layout)
    if src_rel and not tgt_rel:
        boxes = boxes * _scale(height, width, boxes)
    elif tgt_rel and not src_rel:
        boxes = boxes / _scale(height, width, boxes)
    return xyxy_to_layout(boxes, tgt_layout)


def _check_xyxy(bounding_box_format, where: str) -> None:
    if bounding_box_format != "xyxy":
        raise NotImplementedError(f"{where} supports bounding_box_format='xyxy' only. "
                                  f"Received: bounding_box_format={bounding_box_format!r}")


def clip_to_image_size(bounding_boxes, height=None, width=None, bounding_box_format="xyxy"):
    """Clip boxes to the image; labels of boxes left with no area become -1.

    Args:
        bounding_boxes: dict with `"boxes"` `(..., N, 4)` and optionally `"labels"` `(..., N)`.
        height: image height (needed for `xyxy`).
        width: image width (needed for `xyxy`).
        bounding_box_format: `"xyxy"` or `"rel_xyxy"`.

    Example:
    >>> clip_to_image_size({"boxes": [[-5., 2., 50., 8.]]}, 10, 20)["boxes"].tolist()
    [[0.0, 2.0, 20.0, 8.0]]
    """
    if bounding_box_format not in ("xyxy", "rel_xyxy"):
        raise NotImplementedError("clip_to_image_size supports 'xyxy' and 'rel_xyxy'. "
                                  f"Received: bounding_box_format={bounding_box_format!r}")
    if bounding_box_format == "xyxy" and (height is None or width is None):
        raise ValueError("clip_to_image_size: `height` and `width` must be set for 'xyxy'. "
                         f"Received: height={height}, width={width}")
    boxes = _tensor(bounding_boxes["boxes"])
    if not boxes.is_floating_point():
        boxes = boxes.to(torch_dtype(config.floatx()))
    high = _scale(1.0, 1.0, boxes) if bounding_box_format == "rel_xyxy" \
        else _scale(height, width, boxes)
    boxes = torch.minimum(torch.clamp(boxes, min=0), high)
    result = dict(bounding_boxes, boxes=boxes)
    if bounding_boxes.get("labels") is not None:
        labels = _tensor(bounding_boxes["labels"])
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        result["labels"] = torch.where(area > 0, labels, torch.full_like(labels, -1))
    return result


def crop(boxes, top, left, height, width, bounding_box_format="xyxy"):
    """Boxes in the frame of the crop at (`top`, `left`) of size (`height`, `width`), clipped.

    Example:
    >>> crop([[10., 20., 50., 60.]], top=10, left=20, height=40, width=30).tolist()
    [[0.0, 10.0, 30.0, 40.0]]
    """
    _check_xyxy(bounding_box_format, "crop")
    boxes = _tensor(boxes)
    offset = _scale(top, left, boxes)
    boxes = boxes - offset
    return torch.minimum(torch.clamp(boxes, min=0), _scale(height, width, boxes))


def pad(boxes, top, left, height=None, width=None, bounding_box_format="xyxy"):
    """Boxes shifted by the `top` and `left` padding of their image.

    Example:
    >>> pad([[1., 2., 3., 4.]], top=10, left=20).tolist()
    [[21.0, 12.0, 23.0, 14.0]]
    """
    _check_xyxy(bounding_box_format, "pad")
    boxes = _tensor(boxes)
    return boxes + _scale(top, left, boxes)


def inverse_affine_matrix(center_x, center_y, angle, translate_x, translate_y, scale, shear_x,
                          shear_y, height, width) -> torch.Tensor:
    """`(batch, 3, 3)` matrices mapping input pixels to output pixels for Keras' affine
    parameters (angles in degrees, translations and centres as fractions of the size)."""
    angle = _tensor(angle)
    like = dict(dtype=angle.dtype if angle.is_floating_point() else torch.float32,
                device=angle.device)

    def t(v):
        return torch.as_tensor(v, **like)

    rot, sx, sy = (t(v) * (-math.pi / 180.0) for v in (angle, shear_x, shear_y))
    cx, cy = t(center_x) * (width - 1), t(center_y) * (height - 1)
    tx, ty = -t(translate_x) * (width - 1), -t(translate_y) * (height - 1)
    scale = t(scale)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = a * torch.tan(sx) + torch.sin(rot)
    c = -torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    a0, a1, b0, b1 = d * scale, -b * scale, -c * scale, a * scale
    a2 = cx - a0 * (cx + tx) - a1 * (cy + ty)
    b2 = cy - b0 * (cx + tx) - b1 * (cy + ty)
    a0, a1, a2, b0, b1, b2 = torch.broadcast_tensors(a0, a1, a2, b0, b1, b2)
    zeros, ones = torch.zeros_like(a0), torch.ones_like(a0)
    return torch.stack([a0, a1, a2, b0, b1, b2, zeros, zeros, ones], -1).reshape(-1, 3, 3)


def transform_corners(boxes: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """The `xyxy` boxes `(B, N, 4)` enclosing the four corners of each box mapped by the
    `(B, 3, 3)` projective (or `(B, 2, 3)` affine) `matrix`."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    xs = torch.stack([x1, x2, x2, x1], -1)
    ys = torch.stack([y1, y1, y2, y2], -1)
    m = matrix[:, None, None, :, :].to(boxes.dtype)
    px = m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]
    py = m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]
    if matrix.shape[-2] == 3:
        k = m[..., 2, 0] * xs + m[..., 2, 1] * ys + m[..., 2, 2]
        px, py = px / k, py / k
    return torch.stack([px.amin(-1), py.amin(-1), px.amax(-1), py.amax(-1)], -1)


def affine_transform(boxes, angle, translate_x, translate_y, scale, shear_x, shear_y, height,
                     width, center_x=None, center_y=None, bounding_box_format="xyxy"):
    """`(B, N, 4)` boxes moved by Keras' per-image affine parameters (rotation and shears in
    degrees, translations and centre as fractions); each box becomes the box around its four
    transformed corners.

    Example:
    >>> affine_transform([[[0., 0., 10., 10.]]], [0.], [0.5], [0.], [1.], [0.], [0.],
    ...                  height=11, width=21).tolist()
    [[[10.0, 0.0, 20.0, 10.0]]]
    """
    _check_xyxy(bounding_box_format, "affine_transform")
    matrix = inverse_affine_matrix(0.5 if center_x is None else center_x,
                                   0.5 if center_y is None else center_y, angle, translate_x,
                                   translate_y, scale, shear_x, shear_y, height, width)
    return transform_corners(_tensor(boxes).to(matrix.dtype), matrix)
