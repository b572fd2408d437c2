"""`keras.legacy.saving`: Keras 2-style object serialization (`{"class_name", "config"}`)."""
from kestrel.saving.keras_objects import resolve_keras_object
from kestrel.registry.serialization import serialize_keras_object as _serialize

__all__ = ["deserialize_keras_object", "serialize_keras_object"]


def serialize_keras_object(instance):
    """An object as Keras 2 wrote it: only `class_name` and `config` (None stays None)."""
    if instance is None:
        return None
    if not hasattr(instance, "get_config"):
        raise ValueError(f"Cannot serialize {getattr(instance, '__name__', type(instance).__name__)}"
                         " because it doesn't implement `get_config()`.")
    config = _serialize(instance)
    return {"class_name": config["class_name"], "config": config["config"]}


def deserialize_keras_object(identifier, module_objects=None, custom_objects=None,
                             printable_module_name="object"):
    """An object from Keras 2's `{"class_name", "config"}` form, or from its name."""
    return resolve_keras_object(identifier, custom_objects, module_objects=module_objects)
