"""GaussianDropout: multiplies the inputs by `N(1, rate / (1 - rate))` noise during training."""
from __future__ import annotations

import math

from kestrel import random
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.regularization.seeding import attach_seed_generator, check_rate, check_seed


@register_layer()
class GaussianDropout(Layer):
    """Multiplicative 1-centred Gaussian noise of stddev `sqrt(rate / (1 - rate))` in training.

    Args:
        rate: drop probability of the equivalent Bernoulli dropout, in `[0, 1)`.
        seed: int for a reproducible sequence of noise draws.

    Input shape: any. Output shape: same as the input.

    Example:
        >>> bool((GaussianDropout(0.2)(torch.ones(3)) == 1).all())  # inference: unchanged
        True
    """

    _keras_training_default = False  # Keras' `call(..., training=False)`

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_rate(self, rate)
        check_seed(self, seed)
        self.rate = rate
        self.seed = seed
        if rate > 0:
            attach_seed_generator(self, seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        training = self.training if training is None else training
        if not training or self.rate == 0:
            return inputs
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        return inputs * random.normal(tuple(inputs.shape), 1.0, stddev, self.compute_dtype,
                                      seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
