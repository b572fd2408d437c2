"""`kestrel.utils.bounding_boxes`: box format conversion, geometry, IoU and box deltas."""
from kestrel.utils.bounding_boxes.converters import (
    affine_transform, clip_to_image_size, convert_format, crop, pad)
from kestrel.utils.bounding_boxes.deltas import decode_deltas_to_boxes, encode_box_to_deltas
from kestrel.utils.bounding_boxes.formats import SUPPORTED_FORMATS
from kestrel.utils.bounding_boxes.iou import compute_ciou, compute_iou

__all__ = ["affine_transform", "clip_to_image_size", "compute_ciou", "compute_iou",
           "convert_format", "crop", "decode_deltas_to_boxes", "encode_box_to_deltas", "pad"]
