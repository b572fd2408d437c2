"""`rearrange`: einops-style reshaping and transposition by pattern."""
from __future__ import annotations

import math
import re

from kestrel.ops.convert import to_tensors
from kestrel.ops.dispatch import keras_op, module_all

_TOKEN = re.compile(r"\(([^()]*)\)|(\w+)|(\S)")


def _groups(side: str, pattern: str) -> list[list[str]]:
    """'b (h w) c' -> [['b'], ['h', 'w'], ['c']]."""
    groups = []
    for group, name, other in _TOKEN.findall(side):
        if other:
            raise ValueError(f"ops.rearrange: unexpected {other!r} in the pattern. "
                             f"Received: pattern={pattern!r}")
        groups.append(group.split() if group or not name else [name])
    return groups


def _sizes(groups, shape, lengths: dict, pattern: str) -> dict:
    """The size of every elementary input axis, inferring one unknown axis per group."""
    if len(groups) != len(shape):
        raise ValueError(f"ops.rearrange: the pattern names {len(groups)} input axes, the "
                         f"tensor has {len(shape)}. Received: pattern={pattern!r}, "
                         f"shape={tuple(shape)}")
    sizes = dict(lengths)
    for group, dim in zip(groups, shape):
        unknown = [a for a in group if a not in sizes]
        if len(unknown) > 1:
            raise ValueError(f"ops.rearrange: cannot infer the sizes of {unknown}; pass them "
                             f"as keyword arguments. Received: pattern={pattern!r}")
        known = math.prod(sizes[a] for a in group if a in sizes)
        if unknown:
            sizes[unknown[0]] = dim // known
        if math.prod(sizes[a] for a in group) != dim:
            raise ValueError(f"ops.rearrange: axes {group} do not multiply to {dim}. "
                             f"Received: pattern={pattern!r}, shape={tuple(shape)}")
    return sizes


@keras_op
def rearrange(tensor, pattern, **axes_lengths):
    """Split, permute and merge axes as a pattern says.

    Args:
        tensor: the input.
        pattern: `"input axes -> output axes"`, parenthesized groups merge or split axes.
        **axes_lengths: sizes of split axes that cannot be inferred.

    >>> rearrange(torch.zeros(2, 6, 5), "b (h w) c -> b c h w", h=2).shape
    torch.Size([2, 5, 2, 3])
    """
    (tensor,) = to_tensors(tensor)
    if pattern.count("->") != 1:
        raise ValueError("ops.rearrange: the pattern needs one '->'. "
                         f"Received: pattern={pattern!r}")
    left, right = (_groups(side, pattern) for side in pattern.split("->"))
    inputs = [a for g in left for a in g]
    outputs = [a for g in right for a in g]
    if sorted(inputs) != sorted(outputs) or len(set(inputs)) != len(inputs):
        raise ValueError("ops.rearrange: each axis must appear once on each side. "
                         f"Received: pattern={pattern!r}")
    sizes = _sizes(left, tensor.shape, axes_lengths, pattern)
    split = tensor.reshape([sizes[a] for a in inputs])
    moved = split.permute([inputs.index(a) for a in outputs])
    return moved.reshape([math.prod(sizes[a] for a in g) for g in right])


__all__ = module_all()
