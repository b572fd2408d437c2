"""Weight constraints and their lookup by name (`get`, `serialize`, `deserialize`)."""
from __future__ import annotations

import inspect

from kestrel.constraints.constraints import Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm
from kestrel.saving.serialization import deserialize_keras_object, serialize_keras_object

# Keras' lower-case spellings, usable as `kestrel.constraints.max_norm(3)`.
max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm


def serialize(constraint) -> dict:
    """Keras 3's dict form: `{"module", "class_name", "config", "registered_name"}`."""
    return serialize_keras_object(constraint, "constraints")


def deserialize(config, custom_objects: dict | None = None):
    """Rebuild a constraint from a name or a serialized dict; classes are instantiated."""
    obj = deserialize_keras_object(config, "constraints", custom_objects)
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
        "Could not interpret constraint identifier: expected None, a name, a config dict "
        f"or a callable. Received: identifier={identifier!r}"
    )


__all__ = [
    "Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "deserialize", "get",
    "max_norm", "min_max_norm", "non_neg", "serialize", "unit_norm",
]
