"""UpSampling1D/2D/3D: repeat each step/pixel/voxel `size` times (2D may interpolate)."""
from __future__ import annotations

import torch

from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.image_preprocessing.sizing import resize_images
from kestrel.layers.layer import register_layer
from kestrel.layers.reshaping.zero_padding import SpatialReshaping

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")  # Keras' torch backend has no lanczos


def repeat_spatial(x: torch.Tensor, sizes: tuple, first_axis: int) -> torch.Tensor:
    """Repeat dims `first_axis, first_axis + 1, ...` of `x` `sizes[i]` times each (one copy)."""
    view, expanded, merged = [], [], []
    for axis, dim in enumerate(x.shape):
        i = axis - first_axis
        if 0 <= i < len(sizes):
            view += [dim, 1]
            expanded += [dim, sizes[i]]
            merged.append(dim * sizes[i])
        else:
            view.append(dim)
            expanded.append(dim)
            merged.append(dim)
    return x.reshape(view).expand(expanded).reshape(merged)


class BaseUpSampling(SpatialReshaping):
    """Repeats the spatial dimensions.

    Args:
        size: int or `rank` ints, the upsampling factors.
        data_format: `"channels_last"` (default) or `"channels_first"` (2D and 3D only).
    """

    def __init__(self, size, data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.size = cu.standardize_tuple(size, self.rank, "size", cu.owner_of(self))

    def call(self, inputs):
        self._check_rank(inputs)
        return repeat_spatial(inputs, self.size, self._first_spatial)

    def compute_output_shape(self, input_shape):
        return self._map_spatial(input_shape, lambda n, i: n * self.size[i])

    def get_config(self):
        return {**super().get_config(), "size": tuple(self.size), "data_format": self.data_format}


@register_layer()
class UpSampling1D(BaseUpSampling):
    """Repeats each step: `(batch, steps, features)` -> `(batch, steps * size, features)`.

    Args:
        size: positive int, the repetition factor (default 2).

    Example:
        >>> UpSampling1D(3)(torch.ones(2, 4, 5)).shape
        torch.Size([2, 12, 5])
    """

    rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(size, "channels_last", **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["data_format"]
        return {**config, "size": self.size[0]}


@register_layer()
class UpSampling2D(BaseUpSampling):
    """Upsamples images: `(batch, h, w, channels)` -> `(batch, h * sh, w * sw, channels)`.

    Args:
        size: int or `(sh, sw)` factors; defaults to `(2, 2)`.
        data_format: `"channels_last"` (default) or `"channels_first"`.
        interpolation: `"nearest"` (repeat), `"bilinear"` or `"bicubic"` (half-pixel
            centers, as Keras' image resize).

    Example:
        >>> UpSampling2D((2, 3), interpolation="bilinear")(torch.ones(1, 2, 2, 3)).shape
        torch.Size([1, 4, 6, 3])
    """

    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size, data_format, **kwargs)
        self.interpolation = str(interpolation).lower()
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"{cu.owner_of(self)}: interpolation must be one of "
                f"{', '.join(repr(i) for i in INTERPOLATIONS)}. "
                f"Received: interpolation={interpolation!r}")

    def call(self, inputs):
        if self.interpolation == "nearest":
            return super().call(inputs)
        self._check_rank(inputs)
        first = 1 if self.data_format == "channels_last" else 2
        size = (inputs.shape[first] * self.size[0], inputs.shape[first + 1] * self.size[1])
        return resize_images(inputs, size, self.interpolation, data_format=self.data_format)

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}


@register_layer()
class UpSampling3D(BaseUpSampling):
    """Repeats voxels: `(batch, d1, d2, d3, channels)` -> `(batch, d1 * s1, ..., channels)`.

    Args:
        size: int or `(s1, s2, s3)` factors; defaults to `(2, 2, 2)`.
        data_format: `"channels_last"` (default) or `"channels_first"`.

    Example:
        >>> UpSampling3D(2)(torch.ones(1, 1, 2, 3, 4)).shape
        torch.Size([1, 2, 4, 6, 4])
    """

    rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size, data_format, **kwargs)
