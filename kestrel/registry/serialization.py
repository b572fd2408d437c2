"""Turn objects into JSON-able configs and back, in Keras 3's `serialize_keras_object` form.

A serialized object looks like
`{"module": "keras.layers", "class_name": "Dense", "config": {...}, "registered_name": None}`.
Keras 2 configs (`{"class_name", "config"}` only) and plain strings are read too.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from kestrel.registry import object_registry
from kestrel.registry.bounds import short_repr

# Keras 3 module names, so that files we write are readable by real Keras.
KERAS_MODULES = {
    "layers": "keras.layers",
    "activations": "keras.activations",
    "initializers": "keras.initializers",
    "regularizers": "keras.regularizers",
    "constraints": "keras.constraints",
    "losses": "keras.losses",
    "metrics": "keras.metrics",
    "optimizers": "keras.optimizers",
    "schedules": "keras.optimizers.schedules",
    "models": "keras.models",
}
# Kestrel classes Keras writes under their own module, whatever the category (nested models too).
KERAS_CLASS_MODULES = {"Sequential": "keras", "Functional": "keras.src.models.functional",
                       "Distiller": "keras.distillation"}


def _category_of(cls) -> str | None:
    """The Keras category of a Kestrel class, read from its module path
    (`kestrel.regularizers.regularizers` -> "regularizers"), for a call that names none."""
    parts = cls.__module__.split(".")
    if len(parts) < 2:
        return None
    if parts[1] == "optimizers" and "schedules" in parts:
        return "schedules"
    return parts[1]


def serialize_keras_object(obj, category: str | None = None):
    """Serialize a class instance (with `get_config`) or a registered function."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(o, category) for o in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v, category) for k, v in obj.items()}
    if isinstance(obj, (np.ndarray, np.generic, torch.Tensor)):
        return _serialize_array(obj)
    registered = object_registry._CUSTOM_NAMES.get(obj if inspect.isfunction(obj) else type(obj))
    if inspect.isfunction(obj):
        if registered:
            return {"module": obj.__module__, "class_name": "function",
                    "config": registered, "registered_name": "function"}
        return obj.__name__
    if not hasattr(obj, "get_config"):
        raise TypeError(
            f"Cannot serialize {short_repr(obj)}: it has no get_config(). Define get_config() "
            "and register the class with kestrel.saving.register_keras_serializable."
        )
    identity = getattr(obj, "keras_identity", None)  # op nodes: Keras' op class
    if identity is not None:
        return {"module": identity[0], "class_name": identity[1], "config": obj.get_config(),
                "registered_name": identity[1]}
    cls = type(obj)
    if registered:
        module = cls.__module__
    elif cls.__module__.startswith("kestrel."):
        module = KERAS_CLASS_MODULES.get(cls.__name__) or KERAS_MODULES.get(
            category or _category_of(cls), cls.__module__)
        if module.startswith("keras.src."):  # not in Keras' public API: Keras names it
            registered = cls.__name__
    else:  # a user's unregistered class: its module and name, as Keras writes them
        module, registered = cls.__module__, cls.__name__
    if module == "__main__":  # Keras writes no module for a script's own classes
        module = None
    entry = {
        "module": module,
        "class_name": cls.__dict__.get("_keras_class_name", cls.__name__),
        "config": obj.get_config(),
        "registered_name": registered,
    }
    # a built layer carries its build shapes, as Keras writes it (models: their own writers)
    if hasattr(obj, "get_build_config") and not hasattr(obj, "get_compile_config"):
        build = obj.get_build_config()
        if build is not None:
            entry["build_config"] = build
    return entry


def _serialize_array(obj):
    """Keras' forms: a NumPy array `__numpy__`, a tensor `__tensor__`, a NumPy scalar its item."""
    if isinstance(obj, torch.Tensor):
        array, kind = obj.detach().cpu().numpy(), "__tensor__"
    elif isinstance(obj, np.ndarray) and obj.ndim > 0:
        array, kind = obj, "__numpy__"
    else:
        return obj.item()
    return {"class_name": kind, "config": {"value": array.tolist(), "dtype": str(array.dtype)}}


def _deserialize_array(config):
    inner = config["config"]
    array = np.array(inner["value"], dtype=inner["dtype"])
    return torch.as_tensor(array) if config["class_name"] == "__tensor__" else array


def deserialize_keras_object(config, category: str, custom_objects: dict | None = None):
    """Rebuild an object from its serialized form; strings name registered objects."""
    if config is None:
        return None
    if isinstance(config, str):
        obj = object_registry.lookup(config, category, custom_objects)
        if obj is None:
            raise_unknown(config, category)
        return obj
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"Could not interpret {category} config: expected a string or a dict with "
            f"'class_name' and 'config'. Received: config={short_repr(config)}"
        )
    class_name = config["class_name"]
    if class_name in ("__numpy__", "__tensor__"):
        return _deserialize_array(config)
    registered = config.get("registered_name")
    for key, value in (("class_name", class_name), ("registered_name", registered)):
        if not isinstance(value, str) and not (key == "registered_name" and value is None):
            raise TypeError(
                f"Could not interpret {category} config: '{key}' must be a string. "
                f"Received: {key}={short_repr(value)} (of type {type(value).__name__})")
    inner = config.get("config", {})
    if class_name in ("function", "__lambda__") and isinstance(inner, str):
        obj = object_registry.lookup(inner, category, custom_objects)
        if obj is None:
            raise_unknown(inner, category, UnknownObjectError)
        return obj
    name = registered or class_name
    cls = object_registry.lookup(name, category, custom_objects)
    if cls is None and name != class_name:
        cls = object_registry.lookup(class_name, category, custom_objects)
    if cls is None:
        raise_unknown(class_name, category, UnknownObjectError)
    if not hasattr(cls, "from_config"):
        return cls
    if "custom_objects" in inspect.signature(cls.from_config).parameters:
        obj = cls.from_config(inner, custom_objects=custom_objects)
    else:
        obj = cls.from_config(inner)
    if config.get("build_config") and not getattr(obj, "built", True):
        obj.build_from_config(config["build_config"])
    return obj


_SINGULAR = {"losses": "loss", "activations": "activation", "initializers": "initializer",
             "regularizers": "regularizer", "constraints": "constraint", "metrics": "metric",
             "optimizers": "optimizer", "schedules": "learning rate schedule", "layers": "layer"}


class UnknownObjectError(TypeError, ValueError):
    """A config dict names a class or function that is not registered: a TypeError, as Keras
    3's deserialization raises, and a ValueError, as Keras 2's raised."""


def raise_unknown(name: str, category: str, error: type = ValueError):
    """Refuse an unknown name: a ValueError for an identifier string (as Keras' `get()`)."""
    known = ", ".join(object_registry.builtin_names(category)[:12])
    shown = short_repr(name)
    raise error(
        f"Unknown {_SINGULAR.get(category, category)} {shown}. If it is a custom class or "
        f"function, pass it in custom_objects={{{shown}: ...}} or decorate it with "
        f"@kestrel.saving.register_keras_serializable(). Known names include: {known}, ..."
    )


def category_functions(category: str, noun: str):
    """`(serialize, deserialize, get)` for a family of objects such as constraints.

    `get` accepts None, a name, a serialized dict, a class (instantiated) or a callable.
    """

    def serialize(obj) -> dict:
        """Keras 3's dict form: `{"module", "class_name", "config", "registered_name"}`."""
        return serialize_keras_object(obj, category)

    def deserialize(config, custom_objects: dict | None = None):
        """Rebuild an object from a name or a serialized dict; classes are instantiated."""
        obj = deserialize_keras_object(config, category, custom_objects)
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
            f"Could not interpret {noun} identifier: expected None, a name, a config dict "
            f"or a callable. Received: identifier={short_repr(identifier)}")

    return serialize, deserialize, get
