"""Global max and average pooling: reduce all spatial dimensions to one value per channel."""
from __future__ import annotations

import torch

from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.float_inputs import promote
from kestrel.layers.input_spec import InputSpec, check_input_shapes
from kestrel.layers.layer import Layer, register_layer


class BaseGlobalPooling(Layer):
    """Reduces the `rank` spatial dimensions; subclasses set `rank` and implement `call`.

    Args:
        data_format: `"channels_last"` (default) or `"channels_first"`.
        keepdims: keep the spatial dimensions with size 1.
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    rank = 2

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = cu.standardize_data_format(data_format, cu.owner_of(self))
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=self.rank + 2)
        first = 1 if self.data_format == "channels_last" else 2
        self._axes = tuple(range(first, first + self.rank))

    def _check_rank(self, inputs) -> None:
        if inputs.ndim != self.rank + 2:
            check_input_shapes(self, self.input_spec, tuple(inputs.shape))

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        channel = input_shape[-1] if self.data_format == "channels_last" else input_shape[1]
        if not self.keepdims:
            return (input_shape[0], channel)
        ones = (1,) * self.rank
        if self.data_format == "channels_last":
            return (input_shape[0], *ones, channel)
        return (input_shape[0], channel, *ones)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class _GlobalMax(BaseGlobalPooling):
    def call(self, inputs):
        self._check_rank(inputs)
        return torch.amax(inputs, dim=self._axes, keepdim=self.keepdims)


class _GlobalAverage(BaseGlobalPooling):
    def call(self, inputs):
        self._check_rank(inputs)
        return torch.mean(promote(inputs, self), dim=self._axes, keepdim=self.keepdims)


@register_layer("GlobalMaxPool1D")
class GlobalMaxPooling1D(_GlobalMax):
    """Max over steps: `(batch, steps, features)` -> `(batch, features)`.

    Args: as `BaseGlobalPooling`. Masks are ignored, as in Keras.

    Example:
        >>> GlobalMaxPooling1D()(torch.ones(2, 3, 4)).shape
        torch.Size([2, 4])
    """

    rank = 1


@register_layer("GlobalMaxPool2D")
class GlobalMaxPooling2D(_GlobalMax):
    """Max over height and width: `(batch, h, w, channels)` -> `(batch, channels)`.

    Args: as `BaseGlobalPooling`.

    Example:
        >>> GlobalMaxPooling2D(keepdims=True)(torch.ones(2, 4, 5, 3)).shape
        torch.Size([2, 1, 1, 3])
    """

    rank = 2


@register_layer("GlobalMaxPool3D")
class GlobalMaxPooling3D(_GlobalMax):
    """Max over three spatial dimensions: `(batch, d1, d2, d3, channels)` -> `(batch, channels)`.

    Args: as `BaseGlobalPooling`.

    Example:
        >>> GlobalMaxPooling3D()(torch.ones(2, 2, 3, 4, 5)).shape
        torch.Size([2, 5])
    """

    rank = 3


@register_layer("GlobalAvgPool1D")
class GlobalAveragePooling1D(_GlobalAverage):
    """Mean over steps: `(batch, steps, features)` -> `(batch, features)`.

    Args: as `BaseGlobalPooling`.

    Call arguments:
        mask: optional `(batch, steps)` mask; only unmasked steps are averaged.

    Example:
        >>> GlobalAveragePooling1D()(torch.ones(2, 3, 4)).shape
        torch.Size([2, 4])
    """

    rank = 1

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format, keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        self._check_rank(inputs)
        inputs = promote(inputs, self)
        keep = mask.to(torch.bool).unsqueeze(2 if self.data_format == "channels_last" else 1)
        total = inputs.masked_fill(~keep, 0).sum(dim=self._axes, keepdim=self.keepdims)
        return total / keep.sum(dim=self._axes, keepdim=self.keepdims).to(inputs.dtype)

    def compute_mask(self, inputs, previous_mask=None):
        return None


@register_layer("GlobalAvgPool2D")
class GlobalAveragePooling2D(_GlobalAverage):
    """Mean over height and width: `(batch, h, w, channels)` -> `(batch, channels)`.

    Args: as `BaseGlobalPooling`.

    Example:
        >>> GlobalAveragePooling2D()(torch.ones(2, 4, 5, 3)).shape
        torch.Size([2, 3])
    """

    rank = 2


@register_layer("GlobalAvgPool3D")
class GlobalAveragePooling3D(_GlobalAverage):
    """Mean over three spatial dimensions: `(batch, d1, d2, d3, channels)` -> `(batch, channels)`.

    Args: as `BaseGlobalPooling`.

    Example:
        >>> GlobalAveragePooling3D(data_format="channels_first")(torch.ones(2, 5, 2, 3, 4)).shape
        torch.Size([2, 5])
    """

    rank = 3
