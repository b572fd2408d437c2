"""Lists and dicts held by a layer attribute keep their layers tracked as they change.

Keras 3 wraps a list or dict assigned to a layer in a `TrackedList` / `TrackedDict`, so layers
appended later (`self.blocks = []; self.blocks.append(Dense(4))`) still count as sublayers. Here
the wrappers re-register the layers they hold in the owner's `_modules` under `<attr>.<key>`
after every change; layers already held keep their place, new ones come last (Keras' tracking
order, which orders `weights`).
"""
from __future__ import annotations

import weakref

from torch import nn


class _Tracked:
    """What the tracked containers share: the owner's callback, run after every change."""

    def __init__(self, values=(), owner=None):
        super().__init__(values)
        self._owner = owner

    def _changed(self):
        if self._owner is not None:
            self._owner()

    def __setitem__(self, key, value):
        super().__setitem__(key, wrap(value, self._owner))
        self._changed()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._changed()

    def clear(self):
        super().clear()
        self._changed()


class TrackedList(_Tracked, list):
    """A list whose layers are sublayers of the layer owning the attribute."""

    def __iadd__(self, values):
        self.extend(values)
        return self

    def append(self, value):
        super().append(wrap(value, self._owner))
        self._changed()

    def insert(self, index, value):
        super().insert(index, wrap(value, self._owner))
        self._changed()

    def extend(self, values):
        super().extend(wrap(v, self._owner) for v in values)
        self._changed()

    def remove(self, value):
        super().remove(value)
        self._changed()

    def pop(self, index=-1):
        value = super().pop(index)
        self._changed()
        return value


class TrackedDict(_Tracked, dict):
    """A dict whose layers are sublayers of the layer owning the attribute."""

    def update(self, *args, **kwargs):
        super().update({k: wrap(v, self._owner) for k, v in dict(*args, **kwargs).items()})
        self._changed()

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key, *default):
        value = super().pop(key, *default)
        self._changed()
        return value

    def popitem(self):
        item = super().popitem()
        self._changed()
        return item


class _Resync:
    """Callback of one owner attribute: re-registers its layers (holds the owner weakly)."""

    def __init__(self, layer, name: str):
        self._layer = weakref.ref(layer)
        self._name = name

    def __call__(self):
        layer = self._layer()
        if layer is not None:
            sync(layer, self._name, getattr(layer, self._name, None))


def wrap(value, owner):
    """`value` with its plain lists and dicts (nested ones too) made tracked by `owner`."""
    if type(value) is list:
        return TrackedList((wrap(v, owner) for v in value), owner)
    if type(value) is dict:
        return TrackedDict({k: wrap(v, owner) for k, v in value.items()}, owner)
    return value


def _holds_module(value) -> bool:
    if isinstance(value, nn.Module):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_module(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_module(v) for v in value.values())
    return False


def track(layer, name: str, value):
    """What `layer.<name> = value` stores: a list or dict that is empty or holds layers becomes
    tracked (other containers are left as they are)."""
    if type(value) in (list, dict) and (not value or _holds_module(value)):
        return wrap(value, _Resync(layer, name))
    return value


def _modules_in(value, prefix: str):
    """(key, module) pairs of the modules nested in `value`, keys `<prefix>.<index or key>`."""
    if isinstance(value, nn.Module):
        yield prefix, value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _modules_in(item, f"{prefix}.{index}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _modules_in(item, f"{prefix}.{key}")


def sync(layer, name: str, value) -> None:
    """Register the modules nested in `layer.<name>` as `<name>.<key>` sublayers: those already
    registered keep their place, new ones come last, ones no longer held are dropped."""
    modules = layer.__dict__.get("_modules")
    if modules is None:  # set before `super().__init__()`, as Keras allows: nothing to register
        return
    prefix = name + "."
    if not any(k.startswith(prefix) for k in modules) and not _holds_module(value):
        return
    held = dict(_modules_in(value, name)) if isinstance(value, (list, tuple, dict)) else {}
    key_of = {id(m): k for k, m in held.items()}
    rebuilt, placed = {}, set()
    for key, module in modules.items():
        if not key.startswith(prefix):
            rebuilt[key] = module
        elif id(module) in key_of and id(module) not in placed:
            rebuilt[key_of[id(module)]] = module
            placed.add(id(module))
    for key, module in held.items():
        if id(module) not in placed:
            rebuilt[key] = module
            placed.add(id(module))
    modules.clear()
    modules.update(rebuilt)
