"""Weight regularizers and their lookup by name (`get`, `serialize`, `deserialize`)."""
from __future__ import annotations

import inspect

from kestrel.regularizers.regularizers import (
    L1,
    L1L2,
    L2,
    OrthogonalRegularizer,
    Regularizer,
)
from kestrel.saving.serialization import deserialize_keras_object, serialize_keras_object

# Keras' lower-case spellings, usable as `kestrel.regularizers.l2(0.001)`.
l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer


def serialize(regularizer) -> dict:
    """Keras 3's dict form: `{"module", "class_name", "config", "registered_name"}`."""
    return serialize_keras_object(regularizer, "regularizers")


def deserialize(config, custom_objects: dict | None = None):
    """Rebuild a regularizer from a name or a serialized dict; classes are instantiated."""
    obj = deserialize_keras_object(config, "regularizers", custom_objects)
    return obj() if inspect.isclass(obj) else obj


def get(identifier):
    """Resolve `identifier` (None, a name, a serialized dict, a class or a callable)."""
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if inspect.isclass(identifier):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(
        "Could not interpret regularizer identifier: expected None, a name, a config dict "
        f"or a callable. Received: identifier={identifier!r}"
    )


__all__ = [
    "L1", "L1L2", "L2", "OrthogonalRegularizer", "Regularizer", "deserialize", "get", "l1",
    "l1_l2", "l2", "orthogonal_regularizer", "serialize",
]
