"""Max and average pooling over 1, 2 or 3 spatial dimensions.

`"same"` padding follows Keras/TF: output size `ceil(n / stride)`, padded evenly with any
extra element at the end; padded elements never win a max and are not counted in an average.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.input_spec import InputSpec, check_input_shapes
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.pooling.zero_padded_max import zero_padded_max_pool

MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


class BasePooling(Layer):
    """Pooling over `rank` spatial dimensions; subclasses set `rank` and `mode`.

    Args:
        pool_size: int or `rank` ints, the window size.
        strides: int or `rank` ints; None means `pool_size`.
        padding: `"valid"` or `"same"`.
        data_format: `"channels_last"` (default) or `"channels_first"`.
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    rank = 2
    mode = "max"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = cu.owner_of(self)
        self.pool_size = cu.standardize_tuple(pool_size, self.rank, "pool_size", owner)
        self.strides = cu.standardize_tuple(pool_size if strides is None else strides,
                                            self.rank, "strides", owner)
        self.padding = cu.standardize_padding(padding, owner)
        self.data_format = cu.standardize_data_format(data_format, owner)
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self._channels_last = self.data_format == "channels_last"
        self._to_channels_first, self._to_channels_last = cu.channel_permutations(self.rank)

    def call(self, inputs):
        return self._pool(inputs, self._max_pool if self.mode == "max" else self._average_pool)

    def _pool(self, inputs, pool):
        """`pool` (channels-first in, channels-first out) in this layer's data format."""
        if inputs.ndim != self.rank + 2:
            check_input_shapes(self, self.input_spec, tuple(inputs.shape))
        x = cu.permuted(inputs, self._to_channels_first) if self._channels_last else inputs
        outputs = pool(x)
        if not self._channels_last:
            return outputs
        outputs = outputs.permute(self._to_channels_last)
        # Keras pools a channels-first copy, so its output lies channels-first in memory; an
        # unseeded Dropout reading it draws its mask in that order (see Dropout.call)
        outputs._keras_channels_first = True
        return outputs

    def _takes_padding(self, padding_layer) -> bool:
        """A `ZeroPadding` of at most half a window on each side, the same on both sides of
        each dim, before a "valid" pooling (a max pooling of 2 or 3 spatial dims): torch
        pools it without a padded copy."""
        pads = padding_layer.padding
        return type(self).call is BasePooling.call and self.padding == "valid" and \
            (self.mode == "average" or self.rank > 1) and padding_layer.rank == self.rank \
            and padding_layer.data_format == self.data_format \
            and all(b == a and b <= k // 2 for (b, a), k in zip(pads, self.pool_size))

    def _call_padded_in_graph(self, x: torch.Tensor, pads: tuple):
        """`self(pad(x, pads))` for a model that fused the `ZeroPadding` before this layer
        (`_takes_padding`)."""
        if not self._runs_plain(x):
            return self._call_in_graph(cu.pad(x, pads, 1 if self._channels_last else 2))
        padding = tuple(b for b, _ in pads)
        if self.mode == "max":
            return self._call_plain(lambda t: self._pool(t, lambda c: zero_padded_max_pool(
                c, self.pool_size, self.strides, padding)), x)
        return self._call_plain(lambda t: self._pool(t, lambda c: AVG_POOL[self.rank](
            c, self.pool_size, self.strides, padding, count_include_pad=True)), x)

    def _same_pads(self, x):
        return cu.same_padding(tuple(x.shape[2:]), self.pool_size, self.strides,
                               (1,) * self.rank)

    def _max_pool(self, x):
        padding = 0
        if self.padding == "same":
            x, padding = cu.pad_for_torch(x, self._same_pads(x), value=float("-inf"))
        return MAX_POOL[self.rank](x, self.pool_size, self.strides, padding)

    def _average_pool(self, x):
        pool = AVG_POOL[self.rank]
        if self.padding == "valid":
            return pool(x, self.pool_size, self.strides)
        pads = self._same_pads(x)
        padded, padding = cu.pad_for_torch(x, pads)
        if padded is x:  # symmetric: torch skips the padding when counting
            return pool(x, self.pool_size, self.strides, padding, count_include_pad=False)
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        counts = pool(cu.pad_for_torch(ones, pads)[0], self.pool_size, self.strides)
        return pool(padded, self.pool_size, self.strides) / counts

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        spatial = input_shape[1:-1] if self._channels_last else input_shape[2:]
        out = tuple(cu.conv_output_length(n, k, s, 1, self.padding)
                    for n, k, s in zip(spatial, self.pool_size, self.strides))
        if any(n is not None and n <= 0 for n in out):
            raise ValueError(
                f"{cu.owner_of(self)}: computed output size would be zero or negative. "
                f"Received: input shape={input_shape}, pool_size={self.pool_size}, "
                f"strides={self.strides}, padding={self.padding!r}")
        if self._channels_last:
            return (input_shape[0], *out, input_shape[-1])
        return (*input_shape[:2], *out)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": tuple(self.pool_size),
            "padding": self.padding,
            "strides": tuple(self.strides),
            "data_format": self.data_format,
        }


@register_layer("MaxPool1D")
class MaxPooling1D(BasePooling):
    """Max pooling over steps: `(batch, steps, channels)` -> `(batch, pooled_steps, channels)`.

    Args: as `BasePooling`; `pool_size` defaults to 2.

    Example:
        >>> MaxPooling1D(2)(torch.ones(2, 9, 3)).shape
        torch.Size([2, 4, 3])
    """

    rank, mode = 1, "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@register_layer("MaxPool2D")
class MaxPooling2D(BasePooling):
    """Max pooling over images: `(batch, h, w, channels)` -> `(batch, h', w', channels)`.

    Args: as `BasePooling`; `pool_size` defaults to `(2, 2)`.

    Example:
        >>> MaxPooling2D(padding="same")(torch.ones(2, 5, 5, 3)).shape
        torch.Size([2, 3, 3, 3])
    """

    rank, mode = 2, "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@register_layer("MaxPool3D")
class MaxPooling3D(BasePooling):
    """Max pooling over volumes: `(batch, d1, d2, d3, channels)` -> pooled volumes.

    Args: as `BasePooling`; `pool_size` defaults to `(2, 2, 2)`.

    Example:
        >>> MaxPooling3D()(torch.ones(1, 4, 4, 4, 2)).shape
        torch.Size([1, 2, 2, 2, 2])
    """

    rank, mode = 3, "max"

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@register_layer("AvgPool1D")
class AveragePooling1D(BasePooling):
    """Average pooling over steps: `(batch, steps, channels)` -> `(batch, pooled_steps, channels)`.

    Args: as `BasePooling`; `pool_size` is required (as in Keras 3).

    Example:
        >>> AveragePooling1D(2, strides=1)(torch.ones(2, 9, 3)).shape
        torch.Size([2, 8, 3])
    """

    rank, mode = 1, "average"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@register_layer("AvgPool2D")
class AveragePooling2D(BasePooling):
    """Average pooling over images: `(batch, h, w, channels)` -> `(batch, h', w', channels)`.

    Args: as `BasePooling`; `pool_size` is required (as in Keras 3).

    Example:
        >>> AveragePooling2D(3, strides=2, padding="same")(torch.ones(1, 5, 6, 2)).shape
        torch.Size([1, 3, 3, 2])
    """

    rank, mode = 2, "average"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@register_layer("AvgPool3D")
class AveragePooling3D(BasePooling):
    """Average pooling over volumes: `(batch, d1, d2, d3, channels)` -> pooled volumes.

    Args: as `BasePooling`; `pool_size` is required (as in Keras 3).

    Example:
        >>> AveragePooling3D(2)(torch.ones(1, 4, 4, 4, 2)).shape
        torch.Size([1, 2, 2, 2, 2])
    """

    rank, mode = 3, "average"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)
