"""`layers.serialize` / `layers.deserialize`: a layer to Keras' config dict and back."""
from __future__ import annotations

from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


def serialize(layer) -> dict:
    """A layer (or model) as Keras 3's `{"module", "class_name", "config", ...}` dict.

    Example:
        >>> from kestrel.layers import Dense
        >>> serialize(Dense(3))["class_name"]
        'Dense'
    """
    from kestrel.models.model import Model

    config = serialize_keras_object(layer, "layers")
    if isinstance(layer, Model) and config.get("registered_name") is None:
        config["module"] = "keras"  # where Keras exports Model, Sequential and Functional
    return config


def deserialize(config, custom_objects: dict | None = None):
    """Rebuild a layer from `serialize`'s dict (or a Keras 2 `{"class_name", "config"}`).

    Args:
        config: the serialized layer.
        custom_objects: optional `{name: class}` for custom layers.

    Example:
        >>> from kestrel.layers import Dense
        >>> deserialize(serialize(Dense(3))).units
        3
    """
    if not isinstance(config, dict):
        raise ValueError("layers.deserialize: config must be a dict with 'class_name' and "
                         f"'config'. Received: config type={type(config).__name__}")
    return deserialize_keras_object(config, "layers", custom_objects)
