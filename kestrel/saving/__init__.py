"""Saving and loading: configs, JSON/YAML, HDF5 and .keras files."""
from kestrel.saving.object_registry import (
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    register_keras_serializable,
)
from kestrel.saving.serialization import deserialize_keras_object, serialize_keras_object

_LAZY = {"load_model", "load_weights", "save_model", "save_weights"}


def __getattr__(name):
    # File I/O pulls in models and layers; loaded on first use so that light modules
    # (activations, initializers, ...) can import the registry without a cycle.
    if name in _LAZY:
        from kestrel.saving import api

        return getattr(api, name)
    if name == "enable_unsafe_deserialization":
        from kestrel.saving.safe_mode import enable_unsafe_deserialization

        return enable_unsafe_deserialization
    raise AttributeError(f"module 'kestrel.saving' has no attribute {name!r}")
