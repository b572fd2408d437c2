"""`kestrel.name_scope` and `kestrel.device`: Keras 3's scopes on torch."""
from __future__ import annotations

import contextlib
import threading

import torch

from kestrel import config

_STATE = threading.local()


def _stack() -> list:
    stack = getattr(_STATE, "stack", None)
    if stack is None:
        stack = _STATE.stack = []
    return stack


def current_path() -> str:
    """The `/`-joined names of the open name scopes ("" outside any)."""
    parts: list[str] = []
    for scope in getattr(_STATE, "stack", ()):
        if scope.override_parent is not None:
            parts = [p for p in scope.override_parent.split("/") if p]
        parts.append(scope.name)
    return "/".join(parts)


class name_scope:  # noqa: N801 - Keras' name
    """Open a name scope: Variables created inside get paths prefixed with `name/`.

    Args:
        name: the scope's name (no `/`).
        caller: the object opening it (a layer, an optimizer); with `deduplicate`, a scope
            of the same name and caller directly inside this one is not opened again.
        deduplicate: see `caller`.
        override_parent: a path that replaces the enclosing scopes (by default the path a
            layer was first called or built under, so later calls keep its weights' paths).

    >>> with name_scope("block"):
    ...     current_path()
    'block'
    """

    def __init__(self, name: str, caller=None, deduplicate: bool = True, override_parent=None):
        if not isinstance(name, str) or "/" in name:
            raise ValueError("Argument `name` must be a string and cannot contain character "
                             f"`/`. Received: name={name}")
        self.name = name
        self.caller = caller
        self.deduplicate = deduplicate
        if override_parent is None and deduplicate:
            override_parent = getattr(caller, "_parent_path", None)
        self.override_parent = override_parent
        self._pushed = False

    def __enter__(self):
        stack = _stack()
        if self.deduplicate and self.caller is not None and stack \
                and stack[-1].caller is self.caller and stack[-1].name == self.name:
            return self
        stack.append(self)
        self._pushed = True
        return self

    def __exit__(self, *exc):
        if self._pushed:
            self._pushed = False
            stack = _stack()
            if stack:
                stack.pop()
        return False


@contextlib.contextmanager
def device(device_name):
    """Create weights and new tensors on `device_name` ("cpu", "cuda", "cuda:1", "gpu:0").

    Keras' "gpu" names map to torch's "cuda".
    """
    name = str(device_name).lower().replace("gpu", "cuda")
    target = torch.device(name)
    previous = config._DEVICE
    config.set_device(target)
    try:
        with target:
            yield target
    finally:
        config.set_device(previous)


class SymbolicScope:
    """Marks the symbolic stage: Kestrel enters it while it runs a layer's `call` to infer
    output shapes on placeholder tensors, and `in_symbolic_scope()` tells code inside (a loss
    or layer that can skip real work when only shapes matter)."""

    def __enter__(self) -> "SymbolicScope":
        self._outer = getattr(_STATE, "symbolic", None)
        _STATE.symbolic = self
        return self

    def __exit__(self, *exc):
        _STATE.symbolic = self._outer
        return False


def in_symbolic_scope() -> bool:
    """Whether a `SymbolicScope` is open."""
    return getattr(_STATE, "symbolic", None) is not None
