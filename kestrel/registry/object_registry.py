"""One registry for every serializable class and function, keyed by category and name.

Built-in objects register under a category (`"layers"`, `"activations"`, `"losses"`, ...) so
that names such as `MeanSquaredError` can mean a loss in one place and a metric in another.
User classes register globally with `register_keras_serializable` or are passed in
`custom_objects`; both take precedence over built-ins.
"""
from __future__ import annotations

import threading

from kestrel.registry.bounds import short_repr

_BUILTINS: dict[str, dict[str, object]] = {}
_CUSTOM_OBJECTS: dict[str, object] = {}
_CUSTOM_NAMES: dict[object, str] = {}
_SCOPE = threading.local()


def register_builtin(category: str, *aliases: str):
    """Decorator: register a Kestrel class or function under its own name and `aliases`."""

    def decorator(obj):
        table = _BUILTINS.setdefault(category, {})
        for name in (obj.__name__, *aliases):
            table[name] = obj
        return obj

    return decorator


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Decorator that makes a user class or function loadable from configs by name.

    The object is stored as `"package>name"`, as Keras does.
    """

    def decorator(obj):
        registered = f"{package}>{name or obj.__name__}"
        if not hasattr(obj, "get_config") and isinstance(obj, type):
            raise ValueError(
                f"Cannot register {obj.__name__}: a class must define get_config()."
            )
        _CUSTOM_OBJECTS[registered] = obj
        _CUSTOM_NAMES[obj] = registered
        return obj

    return decorator


def get_registered_name(obj) -> str:
    """The name an object is saved under: `"package>name"` for registered user objects."""
    return _CUSTOM_NAMES.get(obj, getattr(obj, "__name__", type(obj).__name__))


def is_builtin(obj) -> bool:
    name = getattr(obj, "__name__", None)
    return any(table.get(name) is obj for table in _BUILTINS.values())


class CustomObjectScope:
    """Within `with CustomObjectScope({"MyLayer": MyLayer}):`, every deserialization sees
    those objects (several dicts may be given; `custom_object_scope` is the same class)."""

    def __init__(self, *custom_objects: dict | None):
        self.custom_objects = {}
        for objects in custom_objects:
            self.custom_objects.update(objects or {})
        self._saved = None

    def __enter__(self):
        self._saved = getattr(_SCOPE, "stack", [])
        _SCOPE.stack = self._saved + [self.custom_objects]
        return self

    def __exit__(self, *exc_info):
        _SCOPE.stack = self._saved


custom_object_scope = CustomObjectScope


def get_custom_objects() -> dict:
    """The global dict of registered user objects (may be edited, as in Keras)."""
    return _CUSTOM_OBJECTS


def get_registered_object(name: str, custom_objects: dict | None = None,
                          module_objects: dict | None = None):
    """The registered class or function called `name` (Keras' lookup order), or None."""
    objects = {**(module_objects or {}), **(custom_objects or {})}
    return lookup(name, None, objects or None)


def lookup(name: str, category: str | None = None, custom_objects: dict | None = None):
    """Find a class or function by name: `custom_objects`, scopes, registered, then built-ins."""
    if not isinstance(name, str):
        raise TypeError(f"Object names in configs must be strings. Received: "
                        f"{short_repr(name)} (of type {type(name).__name__})")
    for table in [custom_objects or {}, *reversed(getattr(_SCOPE, "stack", [])), _CUSTOM_OBJECTS]:
        if name in table:
            return table[name]
        short = name.split(">")[-1]
        if short in table:
            return table[short]
    if category is not None:
        return _BUILTINS.get(category, {}).get(name)
    for table in _BUILTINS.values():
        if name in table:
            return table[name]
    return None


def builtin_names(category: str) -> list[str]:
    return sorted(_BUILTINS.get(category, {}))
