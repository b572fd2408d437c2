"""RMSNormalization: scale inputs by the inverse root mean square over some axes."""
from __future__ import annotations

from kestrel import ops
from kestrel.layers.layer import Layer, register_layer


@register_layer()
class RMSNormalization(Layer):
    """Root-mean-square normalization: `x / sqrt(mean(x**2, axis) + epsilon) * scale`.

    Args:
        axis: int or list of ints, the normalized axes (default the last).
        epsilon: small float added to the mean square.

    The `scale` weight (initialized to ones) has the sizes of the normalized axes.

    Example:
        >>> RMSNormalization()(torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon

    def build(self, input_shape):
        axes = sorted(self.axis) if isinstance(self.axis, (list, tuple)) else [self.axis]
        rank = len(input_shape)
        for axis in axes:
            if not -rank <= axis < rank:
                raise ValueError(f"RMSNormalization '{self.name}': axis out of range for "
                                 f"inputs of rank {rank}. Received: axis={self.axis}")
        self.axis = axes
        self.scale = self.add_weight("scale", tuple(input_shape[a] for a in axes), "ones")

    def call(self, inputs):
        return ops.rms_normalization(inputs, scale=self.scale, axis=self.axis,
                                     epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}
