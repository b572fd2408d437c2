"""Merge: the base of layers that combine a list of tensors elementwise."""
from __future__ import annotations

import torch

from kestrel.layers.layer import Layer


def expand_mask(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A `(batch, ...)` mask given a trailing axis so that it broadcasts against `x`."""
    return mask if mask.dim() == x.dim() else mask.unsqueeze(-1)


class Merge(Layer):
    """Combines a list of tensors elementwise with Keras' broadcasting rules.

    Non-batch shapes broadcast as in NumPy; inputs of lower rank get size-1 axes inserted
    after the batch axis. The output mask is the OR of the input masks (None unless every
    input is masked). Subclasses implement `_merge_function(inputs, masks)`.
    """

    _min_inputs = 1
    _max_inputs: int | None = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self._reshape_required = False

    def _who(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def _check_shapes(self, input_shape) -> list[tuple]:
        if not isinstance(input_shape, (list, tuple)) or not input_shape \
                or not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(
                f"{self._who()} should be called on a list of at least {self._min_inputs} "
                f"input(s). Received: input_shape={input_shape}")
        shapes = [tuple(s) for s in input_shape]
        count = len(shapes)
        if count < self._min_inputs or (self._max_inputs is not None and count > self._max_inputs):
            expected = (f"exactly {self._max_inputs}" if self._max_inputs == self._min_inputs
                        else f"at least {self._min_inputs}")
            raise ValueError(
                f"{self._who()} should be called on {expected} inputs, got {count}. "
                f"Received: input_shape={shapes}")
        if len({s[0] for s in shapes if s} - {None}) > 1:
            raise ValueError(
                f"{self._who()} cannot merge tensors with different batch sizes. "
                f"Received: input_shape={shapes}")
        return shapes

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self._broadcast_shape(shapes)
        self._reshape_required = len({len(s) for s in shapes}) > 1

    def _broadcast_shape(self, shapes: list[tuple]) -> tuple:
        """The broadcast non-batch shape of `shapes`; raises on incompatible sizes."""
        out = shapes[0][1:]
        for shape in shapes[1:]:
            a, b = (out, shape[1:]) if len(out) >= len(shape) - 1 else (shape[1:], out)
            lead = a[:len(a) - len(b)]
            merged = []
            for i, j in zip(a[len(a) - len(b):], b):
                if i is None or j is None:
                    merged.append(None)
                elif i == 1 or j == 1 or i == j:
                    merged.append(j if i == 1 else i)
                else:
                    raise ValueError(
                        f"{self._who()}: inputs have incompatible shapes {a} and {b} (batch "
                        f"axis excluded). Received: input_shape={shapes}")
            out = tuple(lead) + tuple(merged)
        return out

    def call(self, inputs, mask=None):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(
                f"{self._who()} should be called on a list of inputs. "
                f"Received: inputs of shape {tuple(inputs.shape)}")
        if self._reshape_required:
            rank = max(x.dim() for x in inputs)
            inputs = [x.reshape(x.shape[:1] + (1,) * (rank - x.dim()) + x.shape[1:])
                      for x in inputs]
            mask = None
        masks = list(mask) if mask is not None else [None] * len(inputs)
        return self._merge_function(list(inputs), masks)

    def _merge_function(self, inputs: list[torch.Tensor], masks: list) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement _merge_function.")

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        batch = {s[0] for s in shapes} - {None}
        return (batch.pop() if len(batch) == 1 else None,) + self._broadcast_shape(shapes)

    _unmasked_in_unmasked_out = True  # compute_mask below

    _mask_ops_recorded = True  # symbolic masks give `logical_or` nodes, as in Keras

    def compute_mask(self, inputs, previous_mask=None):
        if previous_mask is None or any(m is None for m in previous_mask):
            return None
        out = previous_mask[0]
        for m in previous_mask[1:]:
            out = out | m
        return out
