"""Saving and loading: configs, JSON/YAML, HDF5 and .keras files."""
from kestrel.saving.object_registry import (
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    register_keras_serializable,
)
from kestrel.saving.serialization import deserialize_keras_object, serialize_keras_object
