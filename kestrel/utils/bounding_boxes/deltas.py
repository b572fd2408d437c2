"""Box regression targets: boxes as offsets and log-scales of their anchors, and back."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.ops.convert import convert_to_tensor
from kestrel.utils.bounding_boxes.converters import convert_format

_ENCODINGS = ("center_xywh", "center_yxhw")


def _prepare(variance, encoding, arg, image_shape):
    if variance is not None:
        variance = convert_to_tensor(variance, "float32")
        if variance.shape[-1:] != (4,):
            raise ValueError(f"`variance` must have length 4. Received: "
                             f"variance.shape={tuple(variance.shape)}")
    if encoding not in _ENCODINGS:
        raise ValueError(f"`{arg}` should be one of {_ENCODINGS}. Received: {arg}={encoding!r}")
    height, width = (None, None) if image_shape is None else tuple(image_shape)[:2]
    return variance, height, width


def encode_box_to_deltas(anchors, boxes, anchor_format, box_format,
                         encoding_format="center_yxhw", variance=None, image_shape=None):
    """Deltas of `boxes` `(..., N, 4)` from `anchors` `(N, 4)`: centre offsets over the anchor
    size and log size ratios, in `encoding_format` order, divided by `variance` if given.

    Example:
    >>> encode_box_to_deltas([[0., 0., 2., 2.]], [[1., 1., 3., 3.]], "xyxy", "xyxy").tolist()
    [[0.5, 0.5, 0.0, 0.0]]
    """
    variance, height, width = _prepare(variance, encoding_format, "encoding_format",
                                       image_shape)
    anchors = convert_format(anchors, anchor_format, encoding_format, height, width)
    boxes = convert_format(boxes, box_format, encoding_format, height, width)
    anchor_size = anchors[..., 2:].clamp(min=config.epsilon())
    box_size = boxes[..., 2:].clamp(min=config.epsilon())
    deltas = torch.cat([(boxes[..., :2] - anchors[..., :2]) / anchor_size,
                        torch.log(box_size / anchor_size)], dim=-1)
    return deltas if variance is None else deltas / variance.to(deltas.device)


def decode_deltas_to_boxes(anchors, boxes_delta, anchor_format, box_format,
                           encoded_format="center_yxhw", variance=None, image_shape=None):
    """Boxes in `box_format` from `boxes_delta` relative to `anchors` (the inverse of
    `encode_box_to_deltas`); dicts of levels give dicts.

    Example:
    >>> decode_deltas_to_boxes([[0., 0., 2., 2.]], [[0.5, 0.5, 0., 0.]], "xyxy", "xyxy").tolist()
    [[1.0, 1.0, 3.0, 3.0]]
    """
    variance, height, width = _prepare(variance, encoded_format, "encoded_format", image_shape)

    def decode(anchor, delta):
        anchor = convert_format(anchor, anchor_format, encoded_format, height, width)
        delta = convert_to_tensor(delta, "float32")
        if variance is not None:
            delta = delta * variance.to(delta.device)
        boxes = torch.cat([delta[..., :2] * anchor[..., 2:] + anchor[..., :2],
                           torch.exp(delta[..., 2:]) * anchor[..., 2:]], dim=-1)
        return convert_format(boxes, encoded_format, box_format, height, width)

    if isinstance(anchors, dict) and isinstance(boxes_delta, dict):
        return {level: decode(anchor, boxes_delta[level]) for level, anchor in anchors.items()}
    return decode(anchors, boxes_delta)
