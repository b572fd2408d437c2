"""Cropping1D/2D/3D: remove rows/columns/planes at the edges of the spatial dimensions."""
from __future__ import annotations

from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.layer import register_layer
from kestrel.layers.reshaping.zero_padding import SpatialReshaping, spatial_pairs


class BaseCropping(SpatialReshaping):
    """Crops the spatial dimensions.

    Args:
        cropping: int (all sides), `rank` ints (symmetric per dim) or `rank`
            `(before, after)` pairs; for 1D an int or one `(before, after)` pair.
        data_format: `"channels_last"` (default) or `"channels_first"` (2D and 3D only).
    """

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.cropping = spatial_pairs(cropping, self.rank, "cropping", cu.owner_of(self))
        index = [slice(None)] * (self.rank + 2)
        for i, (before, after) in enumerate(self.cropping):
            index[self._first_spatial + i] = slice(before, -after if after else None)
        self._index = tuple(index)

    def call(self, inputs):
        self._check_rank(inputs)
        for i, (before, after) in enumerate(self.cropping):
            if before + after >= inputs.shape[self._first_spatial + i]:
                self._raise_too_small(tuple(inputs.shape))
        return inputs[self._index]

    def _raise_too_small(self, shape):
        raise ValueError(
            f"{cu.owner_of(self)}: cropping must be smaller than the spatial dimensions. "
            f"Received: input shape={shape}, cropping={self.cropping}")

    def compute_output_shape(self, input_shape):
        output_shape = self._map_spatial(input_shape, lambda n, i: n - sum(self.cropping[i]))
        if any(n is not None and n <= 0 for n in output_shape):
            self._raise_too_small(tuple(input_shape))
        return output_shape

    def get_config(self):
        cropping = tuple(tuple(c) for c in self.cropping)
        if self.rank == 1:
            return {**super().get_config(), "cropping": cropping[0]}
        return {**super().get_config(), "cropping": cropping, "data_format": self.data_format}


@register_layer()
class Cropping1D(BaseCropping):
    """Crops sequences along axis 1: `(batch, steps, features)` -> `(batch, cropped, features)`.

    Args:
        cropping: int or `(before, after)`; defaults to `(1, 1)`.

    Example:
        >>> Cropping1D((1, 2))(torch.ones(2, 6, 4)).shape
        torch.Size([2, 3, 4])
    """

    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, "channels_last", **kwargs)


@register_layer()
class Cropping2D(BaseCropping):
    """Crops images: `(batch, h, w, channels)` -> `(batch, cropped_h, cropped_w, channels)`.

    Args: as `BaseCropping`; `cropping` defaults to `((0, 0), (0, 0))`.

    Example:
        >>> Cropping2D(((2, 2), (4, 4)))(torch.ones(2, 28, 28, 3)).shape
        torch.Size([2, 24, 20, 3])
    """

    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


@register_layer()
class Cropping3D(BaseCropping):
    """Crops volumes: `(batch, d1, d2, d3, channels)` -> cropped volumes.

    Args: as `BaseCropping`; `cropping` defaults to `((1, 1), (1, 1), (1, 1))`.

    Example:
        >>> Cropping3D(1)(torch.ones(1, 4, 5, 6, 2)).shape
        torch.Size([1, 2, 3, 4, 2])
    """

    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)
