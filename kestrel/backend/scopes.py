"""`kestrel.name_scope` and `kestrel.device`: Keras 3's scopes on torch."""
from __future__ import annotations

import contextlib
import threading

import torch

from kestrel import config

_STATE = threading.local()


def current_path() -> str:
    """The `/`-joined names of the open name scopes ("" outside any)."""
    return "/".join(getattr(_STATE, "names", []))


class name_scope:  # noqa: N801 - Keras' name
    """Open a name scope: Variables created inside get paths prefixed with `name/`.

    >>> with name_scope("block"):
    ...     current_path()
    'block'
    """

    def __init__(self, name: str, caller=None, deduplicate: bool = True, override_parent=None):
        if not isinstance(name, str) or "/" in name:
            raise ValueError(f"name_scope expects a name without '/'. Received: name={name!r}")
        self.name = name
        self.override_parent = override_parent

    def __enter__(self):
        names = getattr(_STATE, "names", [])
        self._previous = names
        base = self.override_parent.split("/") if self.override_parent is not None else names
        _STATE.names = [n for n in base if n] + [self.name]
        return self

    def __exit__(self, *exc):
        _STATE.names = self._previous
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
