"""AlphaDropout: dropout that keeps the mean and variance of SELU activations."""
from __future__ import annotations

from kestrel import random
from kestrel.layers.config_order import keras_config_order
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.regularization.seeding import attach_seed_generator, check_rate, check_seed

_ALPHA = 1.6732632423543772848170429916717
_SCALE = 1.0507009873554804934193349852946
_ALPHA_P = -_ALPHA * _SCALE  # the value SELU saturates to


@register_layer()
@keras_config_order("rate", "seed", "noise_shape")
class AlphaDropout(Layer):
    """In training, sets inputs to SELU's saturation value with probability `rate`, then applies
    the affine map that restores the inputs' mean and variance; the identity in inference.

    Args:
        rate: drop probability, in `[0, 1)`.
        noise_shape: shape of the drop mask, broadcast against the input; `None` entries take
            the input's size.
        seed: int for a reproducible sequence of masks.

    Input shape: any. Output shape: same as the input.
    """

    _keras_training_default = False  # Keras' `call(..., training=False)`

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_rate(self, rate)
        check_seed(self, seed)
        self.rate = rate
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        if rate > 0:
            attach_seed_generator(self, seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        training = self.training if training is None else training
        if not training or self.rate == 0:
            return inputs
        shape = inputs.shape if self.noise_shape is None else [
            size if d is None else d for d, size in zip(self.noise_shape, inputs.shape)]
        kept = (random.uniform(shape, seed=self.seed_generator) >= self.rate).to(inputs.dtype)
        a = ((1 - self.rate) * (1 + self.rate * _ALPHA_P ** 2)) ** -0.5
        b = -a * _ALPHA_P * self.rate
        dropped = inputs * kept + _ALPHA_P * (1 - kept)
        return a * dropped + b

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        noise_shape = None if self.noise_shape is None else list(self.noise_shape)
        return {**super().get_config(), "rate": self.rate, "noise_shape": noise_shape,
                "seed": self.seed}
