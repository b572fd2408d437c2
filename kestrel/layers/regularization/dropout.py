"""Dropout: randomly zeroes inputs during training and rescales the rest."""
from __future__ import annotations

import torch.nn.functional as F

from kestrel import random
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.regularization.seeding import attach_seed_generator


@register_layer()
class Dropout(Layer):
    """Sets each input to 0 with probability `rate` in training, scaling the rest by
    `1 / (1 - rate)`; does nothing in inference (the default outside `fit()`).

    Args:
        rate: fraction of inputs to drop, in `[0, 1)`.
        noise_shape: shape of the binary mask, broadcast against the input; `None` entries
            take the input's size (e.g. `(None, 1, None)` drops whole timesteps' features alike).
        seed: int for a reproducible sequence of masks.

    Example:
        >>> layer = Dropout(0.5)
        >>> bool((layer(torch.ones(4)) == 1).all())  # inference: unchanged
        True
    """

    _keras_training_default = False  # Keras' `call(..., training=False)`

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(
                f"Dropout '{self.name}': rate must be a float in [0, 1). Received: rate={rate!r}")
        if noise_shape is not None:
            noise_shape = tuple(noise_shape)
            if not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                       for d in noise_shape):
                raise ValueError(
                    f"Dropout '{self.name}': noise_shape must hold positive integers or None. "
                    f"Received: noise_shape={noise_shape}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                f"Dropout '{self.name}': seed must be an integer or None. Received: seed={seed!r}")
        self.rate = rate
        self.noise_shape = noise_shape
        self.seed = seed
        if rate > 0:
            attach_seed_generator(self, seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        training = self.training if training is None else training
        if not training or self.rate == 0:
            return inputs
        if self.noise_shape is None and self.seed is None:
            if getattr(inputs, "_keras_channels_first", False):  # a pooled tensor: the
                # mask drawn in Keras' memory order (mnist_cnn's MaxPooling2D -> Dropout)
                first = inputs.movedim(-1, 1).contiguous()
                return F.dropout(first, self.rate, True).movedim(1, -1)
            return F.dropout(inputs, self.rate, True)
        noise_shape = None if self.noise_shape is None else self._mask_shape(inputs.shape)
        return random.dropout(inputs, self.rate, noise_shape, seed=self.seed_generator)

    def _mask_shape(self, input_shape) -> list[int]:
        if len(self.noise_shape) != len(input_shape):
            raise ValueError(
                f"Dropout '{self.name}': noise_shape must have the input's rank "
                f"{len(input_shape)}. Received: noise_shape={self.noise_shape}, "
                f"input shape={tuple(input_shape)}")
        return [size if d is None else d for d, size in zip(self.noise_shape, input_shape)]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        noise_shape = None if self.noise_shape is None else list(self.noise_shape)
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": noise_shape}
