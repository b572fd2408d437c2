"""Keras 3's automatic config for layers that do not write `get_config`.

A layer class that keeps `Layer.get_config` is saved with the arguments it was constructed
with (defaults filled in), provided they are plain data: `str`, `int`, `float`, `bool`, `None`,
or lists / tuples / dicts of them. Otherwise its `get_config()` raises `NotImplementedError`
asking for one, as Keras does.
"""
from __future__ import annotations

import inspect

_PLAIN = (str, int, float, bool, type(None))
_POSITIONAL = "positional"  # captured arguments that cannot be passed back by keyword


def capture(cls, args: tuple, kwargs: dict):
    """The arguments of `cls(*args, **kwargs)` by name (without `name`), None when they are
    not plain data, or `_POSITIONAL` when they cannot be passed back by keyword."""
    signature = inspect.signature(cls.__init__)
    params = list(signature.parameters.values())[1:]
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError:
        return None
    if any(p.kind is p.POSITIONAL_ONLY for p in params):
        return _POSITIONAL
    bound.apply_defaults()
    arguments = dict(list(bound.arguments.items())[1:])  # without self
    for param in params:
        if param.kind is param.VAR_KEYWORD:
            arguments.update(arguments.pop(param.name, {}))
        elif param.kind is param.VAR_POSITIONAL and arguments.pop(param.name, ()):
            return _POSITIONAL
    arguments.pop("name", None)
    return arguments if all(_is_plain(v) for v in arguments.values()) else None


def _is_plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_is_plain(v) for v in value.values())
    return isinstance(value, _PLAIN)


def config_of(layer) -> dict:
    """The captured arguments of `layer`, whose class keeps the default `get_config`."""
    captured = layer.__dict__.get("_auto_config")
    name = type(layer).__name__
    if captured == _POSITIONAL:
        raise NotImplementedError(
            f"Layer {name} was created with positional-only or variadic positional (`*args`) "
            "arguments, which the automatic config cannot pass back. Remove them from "
            "`__init__()`, or override `get_config()` (and `from_config()`).")
    if captured is None:
        raise NotImplementedError(
            f"Layer {name} was created with arguments that are not plain data (str, int, float, "
            "bool, None, or lists/dicts of them), so it must override `get_config()` to be "
            "serializable: return `{**super().get_config(), 'arg1': self.arg1, ...}`.")
    params = inspect.signature(type(layer).__init__).parameters
    # as Keras: `name` is kept only for an `__init__` taking `name` or `**kwargs` by that
    # name (a `**kw` one loses it, and the layer reloads under a fresh name)
    kwargs = params.get("kwargs")
    takes_name = "name" in params or (kwargs is not None and kwargs.kind is kwargs.VAR_KEYWORD)
    return {**({"name": layer.name} if takes_name else {}), **captured}
