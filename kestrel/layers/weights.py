"""Reading and writing one weight in Keras' layout, whatever layout the layer stores."""
from __future__ import annotations

import numpy as np
import torch


def keras_value(layer, attr: str) -> torch.Tensor:
    tensor = getattr(layer, attr)
    layout = layer._weight_layouts.get(attr)
    return layout[1](tensor) if layout else tensor


def assign_keras_value(layer, attr: str, value) -> None:
    """Copy a Keras-layout value into a weight, checking the shape."""
    tensor = getattr(layer, attr)
    expected = tuple(keras_value(layer, attr).shape)
    value = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    if tuple(value.shape) != expected:
        raise ValueError(
            f"Layer '{layer.name}' weight '{attr}' has shape {expected}, but the provided weight "
            f"has shape {tuple(value.shape)}.")
    layout = layer._weight_layouts.get(attr)
    if layout:
        value = layout[0](value)
    with torch.no_grad():
        tensor.copy_(value.to(dtype=tensor.dtype, device=tensor.device))
