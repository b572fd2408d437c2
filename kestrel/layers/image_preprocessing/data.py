"""The dict path of the image layers: `{"images", "bounding_boxes", "segmentation_masks"}`
transformed with one draw of the layer's parameters.

A layer supplies `get_transformation(images, training)` (its random draw, or None),
`transform_images(images, params)`, and for geometry `box_matrix(params, size)` (per-image
`(B, 3, 3)` maps of input to output box coordinates), `output_size(size)` and
`transform_masks(masks, params)`. Boxes are moved as the box around their four mapped corners,
clipped to the output image; boxes left with no area get label -1. Padding rows (all one of
the layer's `padding_rows` values, default `(-1,)`) become `padding_fill` (default -1) with
label -1.
"""
from __future__ import annotations

import torch

from kestrel.ops.convert import convert_to_tensor
from kestrel.utils.bounding_boxes.converters import (
    clip_to_image_size, convert_format, transform_corners)


def call_data(layer, data: dict, training=None) -> dict:
    """`layer` applied to the images, boxes and masks of `data` with the same parameters."""
    images, single = layer._as_batch(convert_to_tensor(data["images"]))
    size = layer._size(images.shape)
    params = layer.get_transformation(images, training)
    outputs = layer.transform_images(images, params)
    result = dict(data, images=outputs.squeeze(0) if single else outputs)
    if "bounding_boxes" in data:
        result["bounding_boxes"] = transform_boxes(layer, data["bounding_boxes"], params, size,
                                                   single)
    if "segmentation_masks" in data:
        masks = convert_to_tensor(data["segmentation_masks"])
        batch = masks.unsqueeze(0) if single else masks
        moved = layer.transform_masks(batch.to(outputs.dtype if outputs.is_floating_point()
                                               else torch.float32), params).to(masks.dtype)
        result["segmentation_masks"] = moved.squeeze(0) if single else moved
    return result


def check_box_format(layer) -> str:
    """`layer`'s bounding_box_format, or a ValueError when it has none."""
    if layer.bounding_box_format is None:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': the inputs have 'bounding_boxes' but the "
            "layer has no bounding_box_format. Pass e.g. bounding_box_format='xyxy'. "
            "Received: bounding_box_format=None")
    return layer.bounding_box_format


def transform_boxes(layer, bounding_boxes: dict, params, size, single: bool) -> dict:
    """The `{"boxes", "labels"}` dict moved by `layer`'s `box_matrix` for `params`."""
    fmt = check_box_format(layer)
    boxes = convert_to_tensor(bounding_boxes["boxes"], "float32")
    labels = bounding_boxes.get("labels")
    labels = None if labels is None else convert_to_tensor(labels)
    if single:
        boxes, labels = boxes.unsqueeze(0), None if labels is None else labels.unsqueeze(0)
    matrix = layer.box_matrix(params, size)
    if matrix is not None:
        out_size = layer.output_size(size)
        padding = torch.stack([(boxes == v).all(-1) for v in layer.padding_rows]).any(0)
        moved = transform_corners(convert_format(boxes, fmt, "xyxy", *size),
                                   matrix.to(device=boxes.device))
        clipped = clip_to_image_size({"boxes": moved, "labels": labels}, *out_size)
        boxes = convert_format(clipped["boxes"], "xyxy", fmt, *out_size)
        boxes = torch.where(padding[..., None], torch.full_like(boxes, layer.padding_fill),
                            boxes)
        if labels is not None:
            labels = torch.where(padding, torch.full_like(labels, -1), clipped["labels"])
    result = dict(bounding_boxes, boxes=boxes.squeeze(0) if single else boxes)
    if labels is not None:
        result["labels"] = labels.squeeze(0) if single else labels
    return result


def affine_rows(batch: int = 1, like: torch.Tensor | None = None, sx=1.0, sy=1.0, tx=0.0,
                ty=0.0) -> torch.Tensor:
    """`(batch, 3, 3)` maps `x -> sx x + tx`, `y -> sy y + ty` (scalars or `(batch,)`)."""
    like = torch.zeros(()) if like is None else like

    def col(v):
        return torch.as_tensor(v, dtype=like.dtype, device=like.device).expand(batch)

    zeros, ones = torch.zeros(batch, dtype=like.dtype, device=like.device), col(1.0)
    return torch.stack([col(sx), zeros, col(tx), zeros, col(sy), col(ty), zeros, zeros, ones],
                       -1).reshape(batch, 3, 3)
