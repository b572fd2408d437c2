"""GaussianNoise: adds zero-centred Gaussian noise during training."""
from __future__ import annotations

from kestrel import random
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.regularization.seeding import attach_seed_generator, check_seed


@register_layer()
class GaussianNoise(Layer):
    """Adds `N(0, stddev)` noise to the inputs in training; the identity in inference.

    Args:
        stddev: standard deviation of the noise (non-negative; Keras 3 caps it at 1, Keras 2
            and Kestrel do not).
        seed: int for a reproducible sequence of noise draws.

    Input shape: any. Output shape: same as the input.

    Example:
        >>> bool((GaussianNoise(0.1)(torch.ones(3)) == 1).all())  # inference: unchanged
        True
    """

    _keras_training_default = False  # Keras' `call(..., training=False)`

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) \
                or not 0 <= stddev < float("inf"):
            raise ValueError(
                f"GaussianNoise '{self.name}': stddev must be a non-negative float. "
                f"Received: stddev={stddev!r}")
        check_seed(self, seed)
        self.stddev = stddev
        self.seed = seed
        if stddev > 0:
            attach_seed_generator(self, seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        training = self.training if training is None else training
        if not training or self.stddev == 0:
            return inputs
        return inputs + random.normal(tuple(inputs.shape), 0.0, self.stddev, self.compute_dtype,
                                      seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}
