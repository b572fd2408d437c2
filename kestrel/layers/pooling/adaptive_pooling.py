"""Adaptive pooling: average or max pooling to a fixed output size, in 1D, 2D and 3D."""
from __future__ import annotations

from kestrel import config, ops
from kestrel.layers.layer import Layer, register_layer


class _AdaptivePooling(Layer):
    """Pools each spatial axis into `output_size` bins (PyTorch's adaptive bin edges).

    Args:
        output_size: int (the same for every spatial axis) or one int per spatial axis.
        data_format: `"channels_last"` (default from the config) or `"channels_first"`.

    Input shape: `(batch, *spatial, channels)` (channels_last). Output shape:
    `(batch, *output_size, channels)`.
    """

    _rank: int
    _op = None

    def __init__(self, output_size, data_format=None, **kwargs):
        rank = self._rank
        if isinstance(output_size, int) and not isinstance(output_size, bool):
            output_size = (output_size,) * rank
        elif isinstance(output_size, (tuple, list)):
            if len(output_size) != rank:
                raise ValueError(f"{type(self).__name__}: output_size must have {rank} "
                                 f"entries. Received: output_size={tuple(output_size)}")
            output_size = tuple(output_size)
        else:
            raise TypeError(f"{type(self).__name__}: output_size must be an int or a tuple of "
                            f"{rank} ints. Received: output_size type="
                            f"{type(output_size).__name__}")
        super().__init__(**kwargs)
        self.output_size = output_size
        self.data_format = data_format or config.image_data_format()
        if self.data_format not in ("channels_first", "channels_last"):
            raise ValueError(f"{type(self).__name__} '{self.name}': data_format must be "
                             "'channels_first' or 'channels_last'. Received: "
                             f"data_format={self.data_format!r}")

    def call(self, inputs):
        return type(self)._op(inputs, output_size=self.output_size, data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        if self.data_format == "channels_last":
            return (input_shape[0], *self.output_size, input_shape[-1])
        return (input_shape[0], input_shape[1], *self.output_size)

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size,
                "data_format": self.data_format}


def _average(inputs, output_size, data_format):
    return ops.adaptive_average_pool(inputs, output_size=output_size, data_format=data_format)


def _max(inputs, output_size, data_format):
    return ops.adaptive_max_pool(inputs, output_size=output_size, data_format=data_format)


@register_layer()
class AdaptiveAveragePooling1D(_AdaptivePooling):
    """Adaptive average pooling over the time axis of `(batch, steps, channels)`.

    Example:
        >>> AdaptiveAveragePooling1D(4)(torch.ones(2, 10, 3)).shape
        torch.Size([2, 4, 3])
    """

    _rank, _op = 1, _average


@register_layer()
class AdaptiveAveragePooling2D(_AdaptivePooling):
    """Adaptive average pooling of `(batch, height, width, channels)` images.

    Example:
        >>> AdaptiveAveragePooling2D((2, 3))(torch.ones(2, 7, 9, 3)).shape
        torch.Size([2, 2, 3, 3])
    """

    _rank, _op = 2, _average


@register_layer()
class AdaptiveAveragePooling3D(_AdaptivePooling):
    """Adaptive average pooling of `(batch, depth, height, width, channels)` volumes."""

    _rank, _op = 3, _average


@register_layer()
class AdaptiveMaxPooling1D(_AdaptivePooling):
    """Adaptive max pooling over the time axis of `(batch, steps, channels)`."""

    _rank, _op = 1, _max


@register_layer()
class AdaptiveMaxPooling2D(_AdaptivePooling):
    """Adaptive max pooling of `(batch, height, width, channels)` images."""

    _rank, _op = 2, _max


@register_layer()
class AdaptiveMaxPooling3D(_AdaptivePooling):
    """Adaptive max pooling of `(batch, depth, height, width, channels)` volumes."""

    _rank, _op = 3, _max
