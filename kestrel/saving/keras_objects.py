"""`serialize_keras_object` / `deserialize_keras_object` with Keras' public signatures."""
from __future__ import annotations

from kestrel.registry import safe_mode as safe_mode_lib
from kestrel.registry import serialization


def serialize_keras_object(obj):
    """Any Kestrel object (layer, loss, optimizer, registered function, ...) as a Keras 3 dict."""
    return serialization.serialize_keras_object(obj)


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """Rebuild an object from a Keras 3 dict, a Keras 2 `{"class_name", "config"}` or a name.

    `module_objects` (Keras 2's keyword) is merged into `custom_objects`. A plain string comes
    back as it is, as in Keras 3, unless `module_objects` is given (Keras 2 looks it up there).
    """
    if isinstance(config, str) and not kwargs.get("module_objects"):
        return config
    return resolve_keras_object(config, custom_objects, safe_mode, **kwargs)


def resolve_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """`deserialize_keras_object`, with names looked up as Keras 2 does."""
    objects = dict(kwargs.pop("module_objects", None) or {})
    objects.update(custom_objects or {})
    kwargs.pop("printable_module_name", None)
    if kwargs:
        raise TypeError("deserialize_keras_object got unexpected arguments: "
                        f"{sorted(kwargs)[:10]}")
    with safe_mode_lib.safe_mode_scope(None if safe_mode_lib.decided() else safe_mode):
        return serialization.deserialize_keras_object(config, None, objects or None)
