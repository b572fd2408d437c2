"""Handing a dying intermediate to an elementwise layer that may overwrite it.

A functional model frees each intermediate after its last reader. When that reader is an
elementwise layer (ReLU, Activation, Add), it can write its result into the input instead of a
fresh buffer, as torchvision's `ReLU(inplace=True)` and `out += identity` do: on CPU every fresh
activation-sized buffer is a page-faulting allocation (ResNet50's training step cost 1.45x
torchvision's without this). The model offers only fresh outputs of layers that keep no
reference to them (`Layer._output_is_fresh`); `owned` then checks, per call, that nothing else
can see the tensor: no other Python reference (a hook's copy, a model output), no other tensor
on its storage (a view, a result autograd saved for backward), no torch.compile or functorch
tracing. A whole-base view (a channels-last permute) counts as its base.
"""
from __future__ import annotations

import sys

import torch

from kestrel.layers import in_place

_storage_uses = getattr(torch._C, "_storage_Use_Count", None)
_is_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor",
                      lambda x: False)


def _counts(values: list, index: int) -> tuple[int, int]:
    x = values[index]
    return sys.getrefcount(x), _storage_uses(x.untyped_storage()._cdata)


# the counts of a tensor that only `values` holds, as `_counts` sees them
_ALONE = _counts([torch.zeros(1)], 0) if _storage_uses is not None else None


def owned(values: list, index: int) -> bool:
    """Whether `values[index]` is a plain tensor (or a whole view of one, `relayout`) that
    only the list `values` refers to."""
    x = values[index]
    if type(x) is not torch.Tensor or _ALONE is None or torch.compiler.is_compiling() \
            or _is_wrapped(x):
        return False
    view = x._base is not None
    if view and (getattr(x, "_base_read", False) or in_place.relayout(x, x._base) is None):
        return False
    del x
    refs, uses = _counts(values, index)
    return refs == _ALONE[0] and uses == _ALONE[1] + view


def first_owned(values: list, indices: list[int], positions: tuple[int, ...]) -> int | None:
    """The first of `positions` whose tensor `values[indices[position]]` is `owned`."""
    for position in positions:
        if owned(values, indices[position]):
            return position
    return None


def take(values: list, index: int):
    """`values[index]`, leaving None in its place (the caller becomes its only holder)."""
    x, values[index] = values[index], None
    return x


def take_from_list(values: list, indices: list[int], position: int) -> list:
    """`[values[i] for i in indices]`, leaving None at `values[indices[position]]`."""
    out = [values[i] for i in indices]
    values[indices[position]] = None
    return out
