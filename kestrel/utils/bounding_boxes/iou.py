"""Overlap measures between bounding boxes: pairwise IoU and element-wise Complete IoU."""
from __future__ import annotations

import math

import torch

from kestrel import config
from kestrel.utils.bounding_boxes.converters import convert_format


def _image_size(image_shape, bounding_box_format, where):
    if image_shape is None:
        if "rel" in bounding_box_format:
            raise ValueError(f"{where}: relative bounding box formats need `image_shape`. "
                             f"Received: bounding_box_format={bounding_box_format!r}, "
                             "image_shape=None")
        return None, None
    return image_shape[0], image_shape[1]


def _xyxy(boxes, bounding_box_format, height, width) -> torch.Tensor:
    return convert_format(boxes, bounding_box_format, "xyxy", height=height, width=width)


def compute_iou(boxes1, boxes2, bounding_box_format, use_masking=False, mask_val=-1,
                image_shape=None):
    """Pairwise intersection over union: `(..., N, 4)` and `(..., M, 4)` give `(..., N, M)`.

    Args:
        boxes1: `(N, 4)` or `(batch, N, 4)` boxes.
        boxes2: `(M, 4)` or `(batch, M, 4)` boxes.
        bounding_box_format: format of both.
        use_masking: pairs with a padding box (all coordinates negative) get `mask_val`.
        mask_val: the value of masked pairs.
        image_shape: `(height, width, channels)`, needed for relative formats.

    Example:
    >>> compute_iou([[0., 0., 2., 2.]], [[1., 0., 3., 2.]], "xyxy").tolist()
    [[0.3333333432674408]]
    """
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        rank = len(getattr(boxes, "shape", ())) if hasattr(boxes, "shape") \
            else torch.as_tensor(boxes).dim()
        if rank not in (2, 3):
            raise ValueError(f"compute_iou expects {name} of rank 2 (N, 4) or 3 "
                             f"(batch, N, 4). Received: len({name}.shape)={rank}")
    height, width = _image_size(image_shape, bounding_box_format, "compute_iou")
    a = _xyxy(boxes1, bounding_box_format, height, width)[..., :, None, :]
    b = _xyxy(boxes2, bounding_box_format, height, width)[..., None, :, :]
    size = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2]))
    intersection = size.clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).prod(-1)
    iou = intersection / (area_a + area_b - intersection + config.epsilon())
    if not use_masking:
        return iou
    padding = (a.amax(-1) < 0) | (b.amax(-1) < 0)
    return torch.where(padding, torch.full_like(iou, mask_val), iou)


def compute_ciou(boxes1, boxes2, bounding_box_format, image_shape=None):
    """Complete IoU of corresponding boxes: IoU less the centre distance and aspect terms.

    Args:
        boxes1: `(..., 4)` boxes.
        boxes2: `(..., 4)` boxes, broadcastable with `boxes1`.
        bounding_box_format: format of both.
        image_shape: `(height, width, channels)`, needed for relative formats.

    Example:
    >>> round(compute_ciou([[0., 0., 2., 2.]], [[0., 0., 2., 2.]], "xyxy").item(), 4)
    1.0
    """
    height, width = _image_size(image_shape, bounding_box_format, "compute_ciou")
    a = _xyxy(boxes1, bounding_box_format, height, width)
    b = _xyxy(boxes2, bounding_box_format, height, width)
    eps = config.epsilon()
    w1, h1 = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1] + eps
    w2, h2 = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1] + eps
    inter = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2]))
    inter = inter.clamp(min=0).prod(-1)
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps + eps)
    hull = torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])
    diagonal = (hull ** 2).sum(-1) + eps
    centers = (((a[..., :2] + a[..., 2:]) - (b[..., :2] + b[..., 2:])) / 2) ** 2
    v = (4 / math.pi ** 2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    alpha = v / (v - iou + (1 + eps))
    return iou - (centers.sum(-1) / diagonal + v * alpha)
