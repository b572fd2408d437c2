"""Saving and loading: configs, JSON/YAML, HDF5 and .keras files.

The registry and object (de)serialization live below layers, in `kestrel.registry`; this
package, which reads and writes files, stands above models.
"""
from kestrel.registry.object_registry import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)
from kestrel.saving.file_editor import KerasFileEditor
from kestrel.saving.keras_objects import deserialize_keras_object, serialize_keras_object

_LAZY = {"load_model", "load_weights", "save_model", "save_weights"}


def __getattr__(name):
    # File I/O pulls in models and layers: loaded on first use.
    if name in _LAZY:
        from kestrel.saving import api

        return getattr(api, name)
    if name == "enable_unsafe_deserialization":
        from kestrel.registry.safe_mode import enable_unsafe_deserialization

        return enable_unsafe_deserialization
    raise AttributeError(f"module 'kestrel.saving' has no attribute {name!r}")
