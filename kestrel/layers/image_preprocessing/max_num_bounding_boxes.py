"""MaxNumBoundingBoxes: pads or truncates the boxes of dict inputs to a fixed count."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel.layers.image_preprocessing.base import ImageLayer
from kestrel.layers.layer import register_layer
from kestrel.ops.convert import convert_to_tensor


def _fit(values: torch.Tensor, axis: int, size: int, fill_value) -> torch.Tensor:
    """`values` cut or padded with `fill_value` to `size` along `axis` (counted from the end)."""
    values = values.narrow(axis, 0, min(size, values.shape[axis]))
    missing = size - values.shape[axis]
    if missing == 0:
        return values
    pad = [0, 0] * (-axis - 1) + [0, missing]
    return F.pad(values, pad, value=fill_value)


@register_layer()
class MaxNumBoundingBoxes(ImageLayer):
    """Gives every image exactly `max_number` boxes: extra boxes are dropped, missing ones are
    padding boxes and labels of `fill_value`. Images and masks pass through.

    Args:
        max_number: the number of boxes per image.
        fill_value: value of the padding boxes and labels (default -1).

    Example:
        >>> data = {"images": torch.zeros(2, 4, 4, 3),
        ...         "bounding_boxes": {"boxes": torch.ones(2, 1, 4), "labels": torch.ones(2, 1)}}
        >>> MaxNumBoundingBoxes(3)(data)["bounding_boxes"]["labels"].tolist()
        [[1.0, -1.0, -1.0], [1.0, -1.0, -1.0]]
    """

    def __init__(self, max_number, fill_value=-1, **kwargs):
        super().__init__(**kwargs)
        self.max_number = int(max_number)
        self.fill_value = int(fill_value)
        if self.max_number < 1:
            raise ValueError(f"MaxNumBoundingBoxes '{self.name}': max_number must be a positive "
                             f"integer. Received: max_number={max_number!r}")

    def call(self, inputs, training=None):
        if not isinstance(inputs, dict) or "bounding_boxes" not in inputs:
            return inputs
        bounding_boxes = dict(inputs["bounding_boxes"])
        extra = set(bounding_boxes) - {"boxes", "labels"}
        if extra:
            raise KeyError(f"MaxNumBoundingBoxes '{self.name}': unsupported keys in "
                           f"bounding_boxes: {sorted(extra)}. Only 'boxes' and 'labels'.")
        bounding_boxes["boxes"] = _fit(convert_to_tensor(bounding_boxes["boxes"]), -2,
                                       self.max_number, self.fill_value)
        if "labels" in bounding_boxes:
            bounding_boxes["labels"] = _fit(convert_to_tensor(bounding_boxes["labels"]), -1,
                                            self.max_number, self.fill_value)
        return {**inputs, "bounding_boxes": bounding_boxes}

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_number": self.max_number,
                "fill_value": self.fill_value}
