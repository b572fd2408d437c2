"""Flatten, Reshape, Permute and RepeatVector: layers that only move data around."""
from __future__ import annotations

import math

import torch

from kestrel import config
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.int_args import is_int as _is_int, positive_int
from kestrel.layers.layer import Layer, register_layer


@register_layer()
class Flatten(Layer):
    """Flattens each sample to one dimension: `(batch, ...)` -> `(batch, prod(...))`.

    Args:
        data_format: `"channels_last"` or `"channels_first"` (default: the global image data
            format). Channels-first inputs are flattened in channels-last order, as Keras does,
            so that weights of a following Dense layer carry over between formats.

    Example:
        >>> Flatten()(torch.ones(2, 3, 4)).shape
        torch.Size([2, 12])
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = config.standardize_data_format(data_format)
        self.input_spec = InputSpec(min_ndim=1)

    def call(self, inputs):
        rank = inputs.dim()
        if rank == 1:
            return inputs.unsqueeze(-1)
        if self.data_format == "channels_first" and rank > 2:
            inputs = inputs.permute(0, *range(2, rank), 1)
        return inputs.flatten(1)

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape[1:])
        if not rest:
            return (input_shape[0], 1)
        return (input_shape[0], None if None in rest else math.prod(rest))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@register_layer()
class Reshape(Layer):
    """Reshapes each sample to `target_shape` (batch dimension excluded).

    Args:
        target_shape: tuple of ints; at most one may be `-1` (inferred from the input size).

    Example:
        >>> Reshape((3, -1))(torch.ones(2, 12)).shape
        torch.Size([2, 3, 4])
    """

    _keras_builds_at_init = True  # Keras records no build shapes for it

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(target_shape)
        if not all(_is_int(d) and d >= -1 for d in target_shape) or target_shape.count(-1) > 1:
            raise ValueError(
                f"Reshape '{self.name}': target_shape must hold non-negative integers and at "
                f"most one -1 (an unknown dimension). Received: target_shape={target_shape}")
        self.target_shape = target_shape = tuple(map(int, target_shape))
        self._unknown = target_shape.index(-1) if -1 in target_shape else None
        self._known_size = math.prod(d for d in target_shape if d != -1)

    def _resolve(self, sample_shape) -> tuple:
        """`target_shape` with its -1 resolved for `sample_shape` (None if unknown)."""
        if None in sample_shape:
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(sample_shape)
        shape = list(self.target_shape)
        if self._unknown is not None and self._known_size and size % self._known_size == 0:
            shape[self._unknown] = size // self._known_size
        if math.prod(shape) != size or -1 in shape:
            raise ValueError(
                f"Reshape '{self.name}': the total size of each sample must be unchanged; "
                f"cannot reshape {tuple(sample_shape)} ({size} values) to {self.target_shape}. "
                f"Received: input_shape={(None,) + tuple(sample_shape)}, "
                f"target_shape={self.target_shape}")
        return tuple(shape)

    def call(self, inputs):
        try:
            return inputs.reshape(inputs.shape[0], *self.target_shape)
        except RuntimeError:
            return inputs.reshape(inputs.shape[0], *self._resolve(tuple(inputs.shape[1:])))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(tuple(input_shape[1:]))

    def get_config(self):
        return {**super().get_config(), "target_shape": tuple(self.target_shape)}


@register_layer()
class Permute(Layer):
    """Permutes the non-batch dimensions of the input.

    Args:
        dims: a permutation of `1..rank-1` (1-based; the batch axis 0 stays first).

    Example:
        >>> Permute((2, 1))(torch.ones(2, 3, 4)).shape
        torch.Size([2, 4, 3])
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(dims)
        if not all(_is_int(d) for d in dims) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                f"Permute '{self.name}': dims must be a permutation of the consecutive "
                f"integers 1..{len(dims)} (the batch axis is excluded). Received: dims={dims}")
        self.dims = tuple(map(int, dims))
        self.input_spec = InputSpec(ndim=len(dims) + 1)

    def call(self, inputs):
        return inputs.permute(0, *self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": tuple(self.dims)}


@register_layer()
class RepeatVector(Layer):
    """Repeats a `(batch, features)` input `n` times: output `(batch, n, features)`.

    Args:
        n: number of repetitions (positive int).

    Example:
        >>> RepeatVector(3)(torch.ones(2, 4)).shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = positive_int(n, "n", f"RepeatVector '{self.name}'")
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs: torch.Tensor):
        return inputs.unsqueeze(1).repeat(1, self.n, 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}
