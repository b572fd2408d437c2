"""Bounding-box formats as data: coordinate order and meaning, and whether relative.

A format is `[rel_]<layout>`: the layout names the four values (corners, corner and size, or
centre and size) and their order (x first or y first); `rel_` formats are fractions of the image
width and height. Every conversion goes through absolute `xyxy`.
"""
from __future__ import annotations

import torch

SUPPORTED_FORMATS = ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy",
                     "rel_yxyx", "rel_xywh", "rel_center_xywh")

# layout -> (whether the values come y first, what the last two values mean)
_LAYOUTS = {
    "xyxy": (False, "corner"),
    "yxyx": (True, "corner"),
    "xywh": (False, "size"),
    "center_xywh": (False, "center"),
    "center_yxhw": (True, "center"),
}
_SWAP = [1, 0, 3, 2]


def check_format(name, arg: str = "bounding_box_format", where: str = "convert_format") -> str:
    """`name` lower-cased, or a ValueError listing the supported formats."""
    if not isinstance(name, str) or name.lower() not in SUPPORTED_FORMATS:
        raise ValueError(f"{where}: invalid {arg}. Supported formats: {SUPPORTED_FORMATS}. "
                         f"Received: {arg}={name!r}")
    return name.lower()


def split_format(name: str) -> tuple[bool, str]:
    """(relative?, layout) of a supported format name."""
    return (True, name[4:]) if name.startswith("rel_") else (False, name)


def layout_to_xyxy(boxes: torch.Tensor, layout: str) -> torch.Tensor:
    """Boxes of `layout` (absolute or all-relative) as corners `x1, y1, x2, y2`."""
    y_first, kind = _LAYOUTS[layout]
    if y_first:
        boxes = boxes[..., _SWAP]
    a, b = boxes[..., :2], boxes[..., 2:]
    if kind == "size":
        return torch.cat([a, a + b], dim=-1)
    if kind == "center":
        return torch.cat([a - b / 2.0, a + b / 2.0], dim=-1)
    return boxes


def xyxy_to_layout(boxes: torch.Tensor, layout: str) -> torch.Tensor:
    """Corners `x1, y1, x2, y2` as boxes of `layout`."""
    y_first, kind = _LAYOUTS[layout]
    low, high = boxes[..., :2], boxes[..., 2:]
    if kind == "size":
        boxes = torch.cat([low, high - low], dim=-1)
    elif kind == "center":
        boxes = torch.cat([low + (high - low) / 2.0, high - low], dim=-1)
    return boxes[..., _SWAP] if y_first else boxes
