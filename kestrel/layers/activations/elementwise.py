"""ReLU, LeakyReLU and ELU: elementwise activation layers without weights."""
from __future__ import annotations

import warnings

import torch.nn.functional as F

from kestrel.activations import activations
from kestrel.layers import in_place
from kestrel.layers.config_order import keras_config_order
from kestrel.layers.layer import Layer, register_layer


def _check_number(layer, arg: str, value, allow_none: bool = False) -> None:
    """Raise a ValueError naming `layer` unless `value` is a number >= 0 (or None if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': {arg} must be a number >= 0. "
            f"Received: {arg}={value!r}")


class _Elementwise(Layer):
    """Shared behaviour: masks pass through, output shape is the input shape."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_output_shape(self, input_shape):
        return input_shape


@register_layer()
class ReLU(_Elementwise):
    """Rectified linear unit: `x` above `threshold`, capped at `max_value`, leaking below.

    Args:
        max_value: number >= 0, the largest output; None means unbounded.
        negative_slope: number >= 0, the slope below `threshold` (default 0).
        threshold: number >= 0; inputs at or below it are zeroed (or leak).

    Example:
        >>> ReLU(max_value=6.0)(torch.tensor([-1.0, 3.0, 9.0]))
        tensor([0., 3., 6.])
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        _check_number(self, "max_value", max_value, allow_none=True)
        _check_number(self, "negative_slope", negative_slope)
        _check_number(self, "threshold", threshold)
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold

    def call(self, inputs):
        return activations.relu(inputs, negative_slope=self.negative_slope,
                                max_value=self.max_value, threshold=self.threshold)

    _output_is_fresh = True

    def _in_place(self, inputs, position=0):
        if self.threshold == 0.0 and self.negative_slope == 0.0 and self.max_value in (None, 6.0):
            plain = activations.relu if self.max_value is None else activations.relu6
            return in_place.apply(activations.in_place_form(plain), inputs)
        return self.call(inputs)

    @property
    def _padded_activation(self):
        if self.threshold == 0.0 and self.negative_slope == 0.0:
            return {None: activations.relu, 6.0: activations.relu6}.get(self.max_value)
        return None

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


@register_layer()
class LeakyReLU(_Elementwise):
    """Leaky ReLU: `x` for `x >= 0`, `negative_slope * x` otherwise.

    Args:
        negative_slope: number >= 0 (default 0.3). Keras 2 configs name it `alpha`,
            which is accepted with a deprecation warning, as Keras 3.

    Example:
        >>> LeakyReLU(0.5)(torch.tensor([-2.0, 2.0]))
        tensor([-1.,  2.])
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, negative_slope=0.3, *, alpha=None, **kwargs):
        super().__init__(**kwargs)
        if alpha is not None:
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.")
            negative_slope = alpha
        _check_number(self, "negative_slope", negative_slope)
        self.negative_slope = negative_slope

    def call(self, inputs):
        return F.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@register_layer()
@keras_config_order("alpha", "trainable", "dtype")
class ELU(_Elementwise):
    """Exponential linear unit: `x` for `x > 0`, `alpha * (exp(x) - 1)` otherwise.

    Args:
        alpha: scale of the negative part (default 1.0).

    Example:
        >>> ELU()(torch.tensor([0.0, 2.0]))
        tensor([0., 2.])
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise ValueError(f"ELU '{self.name}': alpha must be a number. Received: alpha={alpha!r}")
        self.alpha = alpha

    def call(self, inputs):
        return activations.elu(inputs, alpha=self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@register_layer()
class ThresholdedReLU(_Elementwise):
    """Keras 2's thresholded ReLU (not in Keras 3): `x` where `x > theta`, 0 elsewhere.

    Args:
        theta: number >= 0, the threshold (default 1.0).

    Example:
        >>> ThresholdedReLU(theta=1.0)(torch.tensor([0.5, 1.0, 2.0]))
        tensor([0., 0., 2.])
    """

    def __init__(self, theta=1.0, **kwargs):
        super().__init__(**kwargs)
        _check_number(self, "theta", theta)
        self.theta = float(theta)

    def call(self, inputs):
        return inputs * (inputs > self.theta).to(inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "theta": self.theta}
