"""ZeroPadding1D/2D/3D and the `(before, after)` argument parsing Cropping shares."""
from __future__ import annotations

from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.input_spec import InputSpec, check_input_shapes
from kestrel.layers.layer import Layer, register_layer


def spatial_pairs(value, rank: int, name: str, owner: str) -> tuple:
    """`(before, after)` per spatial dim from an int, `rank` ints/pairs, or (1D) one pair."""
    if rank == 1:
        return (cu.standardize_tuple(value, 2, name, owner, allow_zero=True),)
    if isinstance(value, int) and not isinstance(value, bool):
        return (cu.standardize_tuple(value, 2, name, owner, allow_zero=True),) * rank
    if not isinstance(value, (list, tuple)) or len(value) != rank:
        raise ValueError(
            f"{owner}: {name} must be an int, a tuple of {rank} ints or a tuple of {rank} "
            f"(before, after) pairs. Received: {name}={value!r}")
    return tuple(cu.standardize_tuple(v, 2, f"{name}[{i}]", owner, allow_zero=True)
                 for i, v in enumerate(value))


class SpatialReshaping(Layer):
    """Common part of the padding, cropping and upsampling layers (rank, data format)."""

    rank = 2

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = cu.standardize_data_format(data_format, cu.owner_of(self))
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self._first_spatial = 1 if self.data_format == "channels_last" else 2

    def _check_rank(self, inputs) -> None:
        if inputs.ndim != self.rank + 2:
            check_input_shapes(self, self.input_spec, tuple(inputs.shape))

    def _map_spatial(self, input_shape, fn):
        """`input_shape` with spatial dim `i` (known sizes only) replaced by `fn(size, i)`."""
        shape = list(input_shape)
        for i in range(self.rank):
            axis = self._first_spatial + i
            if shape[axis] is not None:
                shape[axis] = fn(shape[axis], i)
        return tuple(shape)


class BaseZeroPadding(SpatialReshaping):
    """Pads the spatial dimensions with zeros.

    Args:
        padding: int (all sides), `rank` ints (symmetric per dim) or `rank`
            `(before, after)` pairs; for 1D an int or one `(before, after)` pair.
        data_format: `"channels_last"` (default) or `"channels_first"`.
    """

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.padding = spatial_pairs(padding, self.rank, "padding", cu.owner_of(self))

    def call(self, inputs):
        self._check_rank(inputs)
        return cu.pad(inputs, self.padding, self._first_spatial)

    def compute_output_shape(self, input_shape):
        return self._map_spatial(input_shape, lambda n, i: n + sum(self.padding[i]))

    def get_config(self):
        padding = tuple(tuple(p) for p in self.padding)
        return {**super().get_config(), "padding": padding[0] if self.rank == 1 else padding,
                "data_format": self.data_format}


@register_layer()
class ZeroPadding1D(BaseZeroPadding):
    """Zero-padding of sequences: `(batch, steps, features)` -> `(batch, padded_steps, features)`.

    Args: as `BaseZeroPadding`; `padding` defaults to 1.

    Example:
        >>> ZeroPadding1D((1, 2))(torch.ones(2, 3, 4)).shape
        torch.Size([2, 6, 4])
    """

    rank = 1


@register_layer()
class ZeroPadding2D(BaseZeroPadding):
    """Zero-padding of images: `(batch, h, w, channels)` -> `(batch, padded_h, padded_w, channels)`.

    Args: as `BaseZeroPadding`; `padding` defaults to `((1, 1), (1, 1))`.

    Example:
        >>> ZeroPadding2D(((1, 0), (2, 3)))(torch.ones(2, 4, 4, 3)).shape
        torch.Size([2, 5, 9, 3])
    """

    rank = 2

    def __init__(self, padding=((1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


@register_layer()
class ZeroPadding3D(BaseZeroPadding):
    """Zero-padding of volumes: `(batch, d1, d2, d3, channels)` -> padded volumes.

    Args: as `BaseZeroPadding`; `padding` defaults to `((1, 1), (1, 1), (1, 1))`.

    Example:
        >>> ZeroPadding3D(1)(torch.ones(1, 2, 2, 2, 3)).shape
        torch.Size([1, 4, 4, 4, 3])
    """

    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)
