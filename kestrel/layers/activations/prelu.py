"""PReLU: a leaky ReLU whose negative slope `alpha` is learned per element."""
from __future__ import annotations

import torch

from kestrel import constraints, initializers, regularizers
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer, register_layer


@register_layer()
class PReLU(Layer):
    """Parametric ReLU: `x` for `x >= 0`, `alpha * x` otherwise, `alpha` learned.

    Args:
        alpha_initializer: initializer of `alpha` (default `"Zeros"`).
        alpha_regularizer / alpha_constraint: optional regularizer and constraint.
        shared_axes: axis or axes (1-based, batch excluded) along which `alpha` is shared,
            e.g. `[1, 2]` for one slope per channel of `(batch, h, w, channels)` images.

    The weight `alpha` has Keras' shape: the input shape without the batch, with 1 on
    `shared_axes`.

    Example:
        >>> PReLU(shared_axes=[1])(torch.ones(2, 3, 4)).shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is not None and not isinstance(shared_axes, (list, tuple)):
            shared_axes = [shared_axes]
        if shared_axes is not None and not all(
                isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in shared_axes):
            raise ValueError(
                f"PReLU '{self.name}': shared_axes must hold integers >= 1 (axis 0 is the "
                f"batch). Received: shared_axes={shared_axes!r}")
        self.shared_axes = None if shared_axes is None else list(shared_axes)

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            if axis > len(shape):
                raise ValueError(
                    f"PReLU '{self.name}': shared_axes must be < the input rank "
                    f"{len(input_shape)}. Received: shared_axes={self.shared_axes}")
            shape[axis - 1] = 1
        self.alpha = self.add_weight("alpha", shape, self.alpha_initializer,
                                     regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint)
        axes = {i: input_shape[i] for i in range(1, len(input_shape))
                if i not in (self.shared_axes or ())}
        self.input_spec = InputSpec(ndim=len(input_shape), axes=axes)

    def call(self, inputs):
        return torch.relu(inputs) - self.alpha * torch.relu(-inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        }
