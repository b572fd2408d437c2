"""SpatialDropout1D/2D/3D: dropout of whole feature maps (one mask value per sample and channel)."""
from __future__ import annotations

from kestrel import config
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import register_layer
from kestrel.layers.regularization.dropout import Dropout


class _SpatialDropout(Dropout):
    """Dropout whose mask is shared along every spatial axis."""

    _rank = 1

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        kwargs.pop("noise_shape", None)  # fixed by the data format
        channels_first = config.standardize_data_format(data_format) == "channels_first"
        spatial = (1,) * self._rank
        noise_shape = (None, None) + spatial if channels_first else (None,) + spatial + (None,)
        super().__init__(rate, noise_shape=noise_shape, seed=seed, **kwargs)
        self.data_format = "channels_first" if channels_first else "channels_last"
        self.input_spec = InputSpec(ndim=self._rank + 2)

    def get_config(self):
        # Keras writes these keys only: no `trainable`, and the dtype as a plain name
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype,
                "data_format": self.data_format}


@register_layer()
class SpatialDropout1D(_SpatialDropout):
    """Drops whole 1D feature maps: one mask value per sample and channel, shared over time.

    Args:
        rate: fraction of channels to drop, in `[0, 1)`.
        seed: int for a reproducible sequence of masks.

    Input shape: `(batch, steps, channels)`. Output shape: same as the input.
    """

    def __init__(self, rate, seed=None, **kwargs):
        kwargs.pop("data_format", None)  # always channels last
        super().__init__(rate, data_format="channels_last", seed=seed, **kwargs)

    def get_config(self):
        base = super().get_config()
        base.pop("data_format")
        return base


@register_layer()
class SpatialDropout2D(_SpatialDropout):
    """Drops whole 2D feature maps: one mask value per sample and channel.

    Args:
        rate: fraction of channels to drop, in `[0, 1)`.
        data_format: `"channels_last"` (`(batch, rows, cols, channels)`) or `"channels_first"`;
            None means `kestrel.config.image_data_format()`.
        seed: int for a reproducible sequence of masks.

    Input shape: 4D. Output shape: same as the input.
    """

    _rank = 2


@register_layer()
class SpatialDropout3D(_SpatialDropout):
    """Drops whole 3D feature maps: one mask value per sample and channel.

    Args:
        rate: fraction of channels to drop, in `[0, 1)`.
        data_format: `"channels_last"` (`(batch, d1, d2, d3, channels)`) or `"channels_first"`;
            None means `kestrel.config.image_data_format()`.
        seed: int for a reproducible sequence of masks.

    Input shape: 5D. Output shape: same as the input.
    """

    _rank = 3
