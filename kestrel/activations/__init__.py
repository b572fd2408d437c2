"""Activation functions and their lookup by name (`get`, `serialize`, `deserialize`)."""
from __future__ import annotations

from typing import Callable

from kestrel.activations.activations import (
    celu,
    elu,
    exponential,
    gelu,
    glu,
    hard_shrink,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    hard_tanh,
    leaky_relu,
    linear,
    log_sigmoid,
    log_softmax,
    mish,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    soft_shrink,
    softmax,
    softplus,
    softsign,
    sparse_plus,
    sparse_sigmoid,
    sparsemax,
    squareplus,
    swish,
    tanh,
    tanh_shrink,
    threshold,
)
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


def serialize(activation: Callable):
    """The saved form of an activation: a plain name such as `"relu"` for built-ins.

    Registered custom functions and callable objects give Keras 3's dict form.
    """
    return serialize_keras_object(activation, "activations")


def deserialize(config, custom_objects: dict | None = None) -> Callable:
    """The activation named by `config` (a name or a serialized dict)."""
    return deserialize_keras_object(config, "activations", custom_objects)


def get(identifier) -> Callable:
    """Resolve `identifier` (None, a name, a serialized dict or a callable) to a function.

    Args:
        identifier: `None` gives `linear`; strings and dicts are looked up by name.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, (str, dict)):
        identifier = deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(
        "Could not interpret activation function identifier: expected None, a name, "
        f"a config dict or a callable. Received: identifier={identifier!r}"
    )


__all__ = [
    "celu", "deserialize", "elu", "exponential", "gelu", "get", "glu", "hard_shrink",
    "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "leaky_relu", "linear",
    "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu", "serialize", "sigmoid",
    "silu", "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus", "sparse_sigmoid",
    "sparsemax", "squareplus", "swish", "tanh", "tanh_shrink", "threshold",
]
