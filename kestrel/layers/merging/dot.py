"""Dot: the per-sample dot product of two tensors along given axes."""
from __future__ import annotations

import string

import torch
import torch.nn.functional as F

from kestrel import config
from kestrel.backend.dtypes import result_type
from kestrel.layers.float_inputs import promote
from kestrel.layers.layer import register_layer
from kestrel.layers.merging.base_merge import Merge


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@register_layer()
class Dot(Merge):
    """Per-sample dot product of two tensors, contracting `axes` (Keras' `batch_dot`).

    Args:
        axes: an int (the same axis of both inputs) or a pair `(axis_a, axis_b)`; never 0.
        normalize: L2-normalize both inputs along `axes` first (the result is then the
            cosine similarity).

    Output: the remaining axes of the first input, then those of the second (batch excluded);
    `(batch, 1)` when nothing remains.

    Example:
        >>> Dot(axes=1)([torch.ones(2, 3), torch.ones(2, 3)])
        tensor([[3.],
                [3.]])
    """

    _min_inputs = 2
    _max_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(axes):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(f"Dot '{self.name}': axes must be an int or a list of two "
                                f"ints. Received: axes={axes!r}")
            if len(axes) != 2 or not all(map(_is_int, axes)):
                raise ValueError(f"Dot '{self.name}': axes must be an int or a list of two "
                                 f"ints. Received: axes={axes!r}")
        self.axes = axes  # as given, so the config keeps a tuple a tuple (as Keras)
        self.normalize = bool(normalize)
        self._equations: dict[tuple[int, int], str] = {}

    def _positive_axes(self, rank_a: int, rank_b: int) -> tuple[int, int]:
        axes = (self.axes, self.axes) if _is_int(self.axes) else self.axes
        return axes[0] % rank_a, axes[1] % rank_b

    def build(self, input_shape):
        shape_a, shape_b = self._check_shapes(input_shape)
        if len(shape_a) < 2 or len(shape_b) < 2:
            raise ValueError(
                f"Dot '{self.name}' needs inputs of rank >= 2. "
                f"Received: input_shape={[shape_a, shape_b]}")
        a, b = self._positive_axes(len(shape_a), len(shape_b))
        if a == 0 or b == 0:
            raise ValueError(
                f"Dot '{self.name}' cannot contract the batch axis 0. Received: axes={self.axes}")
        if None not in (shape_a[a], shape_b[b]) and shape_a[a] != shape_b[b]:
            raise ValueError(
                f"Dot '{self.name}': incompatible sizes {shape_a[a]} (axis {a} of the first "
                f"input) and {shape_b[b]} (axis {b} of the second). "
                f"Received: input_shape={[shape_a, shape_b]}")

    def _equation(self, rank_a: int, rank_b: int) -> str:
        key = (rank_a, rank_b)
        if key not in self._equations:
            a, b = self._positive_axes(rank_a, rank_b)
            letters = iter(string.ascii_letters[2:])
            dims_a = ["a"] + [next(letters) for _ in range(rank_a - 1)]
            dims_b = ["a"] + [next(letters) for _ in range(rank_b - 1)]
            dims_b[b] = dims_a[a] = "b"
            out = [d for d in dims_a if d != "b"] + [d for d in dims_b[1:] if d != "b"]
            self._equations[key] = f"{''.join(dims_a)},{''.join(dims_b)}->{''.join(out)}"
        return self._equations[key]

    def _merge_function(self, inputs, masks):
        x, y = inputs
        if self.normalize:
            a, b = self._positive_axes(x.dim(), y.dim())
            x = F.normalize(promote(x, self), dim=a, eps=config.epsilon())
            y = F.normalize(promote(y, self), dim=b, eps=config.epsilon())
        if x.dtype != y.dtype or not x.is_floating_point():  # Keras' matmul promotion
            dtype = config.to_torch_dtype(result_type(x.dtype, y.dtype))
            x, y = x.to(dtype), y.to(dtype)
        out = torch.einsum(self._equation(x.dim(), y.dim()), x, y)
        return out.unsqueeze(-1) if out.dim() == 1 else out

    def compute_output_shape(self, input_shape):
        shape_a, shape_b = (list(s) for s in self._check_shapes(input_shape))
        a, b = self._positive_axes(len(shape_a), len(shape_b))
        del shape_a[a], shape_b[b]
        out = shape_a + shape_b[1:]
        return tuple(out + [1] if len(out) == 1 else out)

    _unmasked_in_unmasked_out = True  # compute_mask below

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """Functional form of `Dot`: `dot([a, b], axes=1)`."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
