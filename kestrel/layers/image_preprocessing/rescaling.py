"""Rescaling: `inputs * scale + offset`, e.g. pixels in [0, 255] to [0, 1] or [-1, 1]."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.layers import shape_inference
from kestrel.layers.layer import Layer, register_layer


def _check_number_or_list(layer, arg: str, value) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                             for v in values):
        raise ValueError(
            f"Rescaling '{layer.name}': {arg} must be a number or a list of numbers (one per "
            f"channel). Received: {arg}={value!r}")


@register_layer()
class Rescaling(Layer):
    """Multiplies inputs by `scale` and adds `offset`, in the layer's compute dtype.

    Args:
        scale: number, or a list of numbers (one per channel).
        offset: number, or a list of numbers (one per channel); default 0.

    A list acts on the channels axis: the last one, or axis -3 when the global image data
    format is `"channels_first"`.

    Example:
        >>> Rescaling(1 / 127.5, offset=-1)(torch.tensor([0.0, 255.0]))
        tensor([-1.,  1.])
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        _check_number_or_list(self, "scale", scale)
        _check_number_or_list(self, "offset", offset)
        self.scale = list(scale) if isinstance(scale, tuple) else scale
        self.offset = list(offset) if isinstance(offset, tuple) else offset
        self.supports_masking = True

    def _constant(self, value, like: torch.Tensor) -> torch.Tensor | float:
        if not isinstance(value, list) and like.is_floating_point():
            return value
        # cast to the compute dtype, as Keras: an integer dtype truncates 1 / 255 to 0
        tensor = torch.tensor(value, device=like.device).to(like.dtype)
        if tensor.dim() == 0:
            return tensor
        if config.image_data_format() == "channels_first":
            tensor = tensor.reshape(-1, 1, 1)
        return tensor

    def call(self, inputs):
        dtype = self._autocast_dtype or self._variable_dtype
        inputs = inputs.to(dtype)
        scaled = inputs * self._constant(self.scale, inputs)
        if type(self.offset) in (int, float) and self.offset == 0:
            return scaled  # the common `Rescaling(1 / 255)`: one pass over the batch, not two
        return scaled.add_(self._constant(self.offset, inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        dtype = config.dtype_name(self._autocast_dtype or self._variable_dtype)
        return shape_inference.shapes_to_keras_tensors(tuple(inputs.shape), dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
