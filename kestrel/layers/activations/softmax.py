"""Softmax layer: normalizes over `axis`, giving masked positions ~0 probability."""
from __future__ import annotations

import torch

from kestrel.activations import activations
from kestrel.layers.layer import Layer, register_layer


def _large_negative(dtype: torch.dtype) -> float:
    """A logit that vanishes in softmax but stays finite in `dtype` (float16: -3e4)."""
    return -3e4 if dtype == torch.float16 else -1e9


@register_layer()
class Softmax(Layer):
    """Softmax activation over `axis`.

    Args:
        axis: int or list of ints, the axis (or axes) normalized over (default -1).

    Call arguments:
        mask: boolean (or 0/1) tensor broadcastable to the input; False positions get
            probability 0 (their logits are replaced by -1e9 before normalizing).

    Example:
        >>> Softmax()(torch.zeros(1, 4), mask=torch.tensor([[1, 1, 0, 0]]))
        tensor([[0.5000, 0.5000, 0.0000, 0.0000]])
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, tuple) else axis
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            mask = self._check_mask(inputs, mask)
            inputs = torch.where(mask, inputs, _large_negative(inputs.dtype))
        axis = self.axis[0] if isinstance(self.axis, list) and len(self.axis) == 1 else self.axis
        outputs = activations.softmax(inputs, axis=tuple(axis) if isinstance(axis, list) else axis)
        if mask is not None:
            outputs = torch.where(mask, outputs, 0.0)
        return outputs

    def _check_mask(self, inputs, mask) -> torch.Tensor:
        mask = torch.as_tensor(mask, device=inputs.device)
        compatible = mask.dim() <= inputs.dim() and all(
            m in (1, i) for m, i in zip(reversed(mask.shape), reversed(inputs.shape)))
        if not compatible:
            raise ValueError(
                f"Softmax '{self.name}': the mask must be broadcastable to the inputs (each "
                f"mask dimension 1 or equal to the input's). Received: inputs.shape="
                f"{tuple(inputs.shape)}, mask.shape={tuple(mask.shape)}")
        return mask if mask.dtype == torch.bool else mask > 0.5

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
