"""Saving and loading: configs, JSON/YAML, HDF5 and .keras files."""
from kestrel.saving.object_registry import (
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    register_keras_serializable,
)
from kestrel.saving.serialization import deserialize_keras_object, serialize_keras_object
from kestrel.saving.api import load_model, load_weights, save_model, save_weights
from kestrel.saving.safe_mode import enable_unsafe_deserialization
