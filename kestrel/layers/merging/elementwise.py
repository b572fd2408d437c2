"""Add, Subtract, Multiply, Average, Maximum, Minimum and their functional forms."""
from __future__ import annotations

import torch

from kestrel import ops
from kestrel.layers import in_place
from kestrel.layers.layer import register_layer
from kestrel.layers.merging.base_merge import Merge, expand_mask


@register_layer()
class Add(Merge):
    """Sums a list of tensors elementwise.

    Example:
        >>> Add()([torch.ones(2, 3), torch.ones(2, 3)])[0]
        tensor([2., 2., 2.])
    """

    def _merge_function(self, inputs, masks):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out

    _output_is_fresh = True

    def _in_place(self, inputs, position=0):
        """The sum written into `inputs[position]` (0 or 1: x0 + x1 is x1 + x0 exactly) when
        every input has its shape and dtype; otherwise `call`."""
        donor = inputs[position] if position < 2 else None
        if donor is None or any(x.shape != donor.shape or x.dtype != donor.dtype
                                for x in inputs):
            return self.call(inputs)
        return in_place.apply(_add_into, donor, *inputs[:position], *inputs[position + 1:])


def _add_into(target: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    for x in others:
        target.add_(x)
    return target


@register_layer()
class Subtract(Merge):
    """Subtracts the second of exactly two tensors from the first."""

    _min_inputs = 2
    _max_inputs = 2

    def _merge_function(self, inputs, masks):
        if len(inputs) != 2:
            raise ValueError(
                f"{self._who()} should be called on exactly 2 inputs. "
                f"Received: {len(inputs)} inputs")
        return inputs[0] - inputs[1]


@register_layer()
class Multiply(Merge):
    """Multiplies a list of tensors elementwise (masked-out entries count as 1; if every input
    is masked, the result is 0 where all masks are off)."""

    def _merge_function(self, inputs, masks):
        all_masked = all(m is not None for m in masks)
        out, out_mask = None, None
        for x, m in zip(inputs, masks):
            if m is not None:
                m = expand_mask(m, x)
                x = torch.where(m, x, 1)
                if all_masked:
                    out_mask = m if out_mask is None else out_mask | m
            out = x if out is None else out * x
        if all_masked:
            out = torch.where(out_mask, out, 0)
        return out

    _output_is_fresh = True

    def _in_place(self, inputs, position=0):
        """The product written into `inputs[position]` (0 or 1) when the others broadcast to
        its shape and dtype and no gradient is recorded (the backward of an in-place product
        would keep a copy of the overwritten factor); otherwise `call`. EfficientNet's
        squeeze-and-excitation scaling in inference."""
        donor = inputs[position] if position < 2 else None
        if donor is None or torch.is_grad_enabled() and any(x.requires_grad for x in inputs) \
                or any(x.dtype != donor.dtype or not _broadcasts_to(x.shape, donor.shape)
                       for x in inputs):
            return self.call(inputs)
        for x in inputs[:position] + inputs[position + 1:]:
            donor.mul_(x)
        return donor


def _broadcasts_to(shape, target) -> bool:
    """Whether `shape` broadcasts to `target` unchanged (`torch.broadcast_shapes` costs
    30 us, a tenth of EfficientNetB0's forward at batch 1 over its 16 products)."""
    return len(shape) <= len(target) and all(
        size == 1 or size == other for size, other in zip(reversed(shape), reversed(target)))


@register_layer()
class Average(Merge):
    """Averages a list of tensors elementwise."""

    def _merge_function(self, inputs, masks):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out / len(inputs)


def _masked_reduce(op, inputs, masks):
    """Fold `op` over the inputs; masked-out entries take the other operand's value."""
    if all(m is None for m in masks):
        out = inputs[0]
        for x in inputs[1:]:
            out = op(out, x)
        return out
    out, out_mask = None, None
    for x, m in zip(inputs, masks):
        m = None if m is None else expand_mask(m, x)
        if out is None:
            out, out_mask = x, m
            continue
        if m is not None:
            x = torch.where(m, x, out)
        if out_mask is not None:
            out = torch.where(out_mask, out, x)
        out_mask = out_mask | m if m is not None and out_mask is not None else None
        out = op(out, x)
    return out


@register_layer()
class Maximum(Merge):
    """Elementwise maximum of a list of tensors."""

    def _merge_function(self, inputs, masks):
        return _masked_reduce(ops.maximum, inputs, masks)


@register_layer()
class Minimum(Merge):
    """Elementwise minimum of a list of tensors."""

    def _merge_function(self, inputs, masks):
        return _masked_reduce(ops.minimum, inputs, masks)


def add(inputs, **kwargs):
    """Functional form of `Add`: `add([a, b])`."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """Functional form of `Subtract`: `subtract([a, b])` is `a - b`."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """Functional form of `Multiply`."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """Functional form of `Average`."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """Functional form of `Maximum`."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """Functional form of `Minimum`."""
    return Minimum(**kwargs)(inputs)
