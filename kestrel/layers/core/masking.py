"""Masking: marks timesteps whose features all equal `mask_value` as padding."""
from __future__ import annotations

import torch

from kestrel import ops
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import KerasTensor


@register_layer()
class Masking(Layer):
    """Masks timesteps where every feature equals `mask_value`; zeroes them in the output.

    The output mask is `any(inputs != mask_value, axis=-1)`; mask-aware layers downstream
    (RNNs, attention, losses) skip the masked timesteps.

    Args:
        mask_value: the padding value (number).

    Input shape: `(batch, steps, ...features)`. Output shape: same as the input; output mask
    `(batch, steps, ...)` without the last axis.

    Example:
        >>> x = torch.tensor([[[1.0], [0.0]]])
        >>> Masking()(x)._keras_mask
        tensor([[ True, False]])
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise ValueError(
                f"Masking '{self.name}': mask_value must be a number. "
                f"Received: mask_value={mask_value!r}")
        self.mask_value = mask_value
        self.supports_masking = True
        self.input_spec = InputSpec(min_ndim=2)

    def call(self, inputs):
        keep = inputs.ne(self.mask_value).any(dim=-1, keepdim=True)
        return torch.where(keep, inputs, 0)

    _mask_ops_recorded = True  # a symbolic call records `not_equal` and `any`, as Keras

    def compute_mask(self, inputs, previous_mask=None):
        if isinstance(inputs, KerasTensor):
            # keepdims named: Keras' saved `Any` config always lists it
            return ops.any(ops.not_equal(inputs, self.mask_value), axis=-1, keepdims=False)
        return inputs.ne(self.mask_value).any(dim=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
