"""Concatenate: joins a list of tensors along one axis."""
from __future__ import annotations

import torch

from kestrel import ops
from kestrel.layers.layer import register_layer
from kestrel.layers.merging.base_merge import Merge
from kestrel.layers.node import KerasTensor


@register_layer()
class Concatenate(Merge):
    """Concatenates a list of tensors along `axis`; all other sizes must match.

    Args:
        axis: the concatenation axis (default: the last one).

    Example:
        >>> Concatenate()([torch.ones(2, 3), torch.ones(2, 4)]).shape
        torch.Size([2, 7])
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(
                f"Concatenate '{self.name}': axis must be an integer. Received: axis={axis!r}")
        self.axis = axis

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        error = ValueError(
            f"Concatenate '{self.name}' requires inputs with matching shapes except for the "
            f"concatenation axis {self.axis}. Received: input_shape={shapes}")
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= self.axis < rank:
            raise error
        axis = self.axis % rank
        for dim in range(rank):
            sizes = {s[dim] for s in shapes} - {None}
            if dim != axis and len(sizes) > 1:
                raise error

    def _merge_function(self, inputs, masks):
        return torch.cat(inputs, dim=self.axis)

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        out = list(shapes[0])
        sizes = [s[self.axis] for s in shapes]
        out[self.axis] = None if None in sizes else sum(sizes)
        for dim in range(len(out)):
            if out[dim] is None and dim != self.axis % len(out):
                out[dim] = next((s[dim] for s in shapes if s[dim] is not None), None)
        return tuple(out)

    _unmasked_in_unmasked_out = True  # compute_mask below

    _mask_ops_recorded = True  # symbolic masks give Keras' nodes (see _symbolic_mask)

    def compute_mask(self, inputs, previous_mask=None):
        if previous_mask is None or all(m is None for m in previous_mask):
            return None
        if any(isinstance(x, KerasTensor) for x in inputs):
            return self._symbolic_mask(inputs, previous_mask)
        full = []
        for x, m in zip(inputs, previous_mask):
            if m is None:
                full.append(torch.ones(x.shape, dtype=torch.bool, device=x.device))
            elif m.dim() < x.dim():
                full.append(m.unsqueeze(-1).expand(x.shape))
            else:
                full.append(m.bool())
        return torch.cat(full, dim=self.axis).any(dim=-1)

    def _symbolic_mask(self, inputs, masks):
        """The mask from the ops Keras records: an unmasked input's mask is `ones_like`, a
        shorter mask is broadcast by `logical_or(expand_dims(m), zeros_like(x))`, then
        `concatenate` and `any` over the last axis."""
        full = [ops.ones_like(x, dtype="bool") if m is None
                else ops.logical_or(ops.expand_dims(m, axis=-1), ops.zeros_like(x, dtype="bool"))
                if m.ndim < x.ndim else m for x, m in zip(inputs, masks)]
        return ops.any(ops.concatenate(full, axis=self.axis), axis=-1, keepdims=False)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def concatenate(inputs, axis=-1, **kwargs):
    """Functional form of `Concatenate`: `concatenate([a, b], axis=-1)`."""
    return Concatenate(axis=axis, **kwargs)(inputs)
