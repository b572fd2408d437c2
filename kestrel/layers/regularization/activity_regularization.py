"""ActivityRegularization: an identity layer that adds an L1/L2 penalty on its input."""
from __future__ import annotations

from kestrel.layers.layer import Layer, register_layer
from kestrel.regularizers import L1L2


@register_layer()
class ActivityRegularization(Layer):
    """Returns its input unchanged and adds `(l1 * sum(|x|) + l2 * sum(x ** 2)) / batch` to `losses`.

    Args:
        l1: L1 factor (non-negative float).
        l2: L2 factor (non-negative float).

    Input shape: any. Output shape: same as the input.

    Example:
        >>> layer = ActivityRegularization(l1=0.5)
        >>> _ = layer(torch.tensor([[1.0, -2.0]]))
        >>> float(layer.losses[0])
        1.5
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        kwargs.pop("activity_regularizer", None)  # always the one built from l1 and l2
        super().__init__(activity_regularizer=L1L2(l1=l1, l2=l2), **kwargs)
        self.l1 = l1
        self.l2 = l2
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer")  # rebuilt from l1 and l2
        return {**config, "l1": self.l1, "l2": self.l2}
