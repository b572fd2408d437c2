"""Walking a functional graph back from a symbolic tensor."""
from __future__ import annotations

from kestrel.layers.node import KerasTensor


def get_source_inputs(tensor) -> list:
    """The `Input` tensors that `tensor` is computed from, in the order they are reached.

    Example:
        x = keras.Input((3,)); y = keras.layers.Dense(2)(x)
        keras.utils.get_source_inputs(y)  # [x]
    """
    if not isinstance(tensor, KerasTensor) or tensor._keras_history is None:
        return [tensor]
    sources, seen, stack = [], set(), [tensor]
    while stack:
        current = stack.pop()
        node = current.node
        if node.is_input:
            if id(current) not in seen:
                seen.add(id(current))
                sources.append(current)
            continue
        stack.extend(reversed(node.input_tensors))
    return sources
