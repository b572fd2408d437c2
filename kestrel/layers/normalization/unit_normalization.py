"""UnitNormalization: scales each input vector to unit L2 norm."""
from __future__ import annotations

import torch

from kestrel.layers.layer import Layer, register_layer


@register_layer()
class UnitNormalization(Layer):
    """Divides the inputs by their L2 norm over `axis` (norms below 1e-12 count as 1e-12).

    Args:
        axis: int or list of ints, the axes to normalize over.

    Input shape: any. Output shape: same as the input.

    Example:
        >>> UnitNormalization()(torch.tensor([[3.0, 4.0]]))
        tensor([[0.6000, 0.8000]])
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and all(_is_int(a) for a in axis):
            self.axis = list(axis)
        elif _is_int(axis):
            self.axis = axis
        else:
            raise TypeError(
                f"UnitNormalization '{self.name}': axis must be an int or a list/tuple of ints. "
                f"Received: axis={axis!r}")
        self._dims = tuple(self.axis) if isinstance(self.axis, list) else (self.axis,)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        for axis in self._dims:
            if not -rank <= axis < rank:
                raise ValueError(
                    f"UnitNormalization '{self.name}': axis {axis} is out of bounds for an input "
                    f"of rank {rank}. Received: input shape={tuple(input_shape)}")

    def call(self, inputs):
        square_sum = inputs.square().sum(dim=self._dims, keepdim=True)
        return inputs * torch.rsqrt(square_sum.clamp_min(1e-24))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
