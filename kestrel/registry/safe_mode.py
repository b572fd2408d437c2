"""Safe mode: whether loading may run Python code stored in a file (lambdas saved as bytecode).

Safe mode is on by default. `load_model(..., safe_mode=False)` turns it off for one load
(through `safe_mode_scope`); `enable_unsafe_deserialization()` turns it off for the process.
`dump_lambda` / `load_lambda` write and read Keras' bytecode form of a Python lambda; loading
refuses while safe mode is on.
"""
from __future__ import annotations

import base64
import builtins
import contextlib
import importlib
import marshal
import threading
import types
from collections.abc import Iterator

_DEFAULT = {"enabled": True}
_SCOPES = threading.local()


def safe_mode_enabled() -> bool:
    """True unless an enclosing `safe_mode_scope(False)` or `enable_unsafe_deserialization()`."""
    stack = getattr(_SCOPES, "stack", None)
    return stack[-1] if stack else _DEFAULT["enabled"]


def decided() -> bool:
    """Whether an enclosing scope or `enable_unsafe_deserialization()` has set safe mode
    (then a call's own `safe_mode=` argument does not override it, as in Keras)."""
    return bool(getattr(_SCOPES, "stack", None)) or not _DEFAULT["enabled"]


@contextlib.contextmanager
def safe_mode_scope(value: bool | None) -> Iterator[None]:
    """Within this block (and this thread), safe mode is `value`.

    Args:
        value: `False` allows loading Python lambdas saved as bytecode; `None` keeps the
            current setting.
    """
    stack = getattr(_SCOPES, "stack", [])
    _SCOPES.stack = stack + [safe_mode_enabled() if value is None else bool(value)]
    try:
        yield
    finally:
        _SCOPES.stack = stack


def enable_unsafe_deserialization() -> None:
    """Turn safe mode off for the whole process, allowing Python lambdas to be loaded."""
    _DEFAULT["enabled"] = False


def dump_lambda(fn: types.FunctionType) -> dict:
    """Keras' saved form of a function's code: base64 of its marshalled bytecode.

    Returns `{"code": str, "defaults": list | None, "closure": list | None}`.
    """
    closure = None if not fn.__closure__ else [
        _dump_closure_value(cell.cell_contents) for cell in fn.__closure__]
    return {"code": base64.encodebytes(marshal.dumps(fn.__code__)).decode("ascii"),
            "defaults": None if fn.__defaults__ is None else list(fn.__defaults__),
            "closure": closure}


def load_lambda(code: str, defaults=None, closure=None, *, owner: str = "The file",
                safe_mode: bool | None = None) -> types.FunctionType:
    """Rebuild a function from `dump_lambda` output; refused while safe mode is on.

    Args:
        owner: who holds the lambda, for the error message (e.g. `"Lambda 'scale'"`).
        safe_mode: overrides the ambient setting when not None.
    """
    if safe_mode_enabled() if safe_mode is None else safe_mode:
        raise ValueError(
            f"{owner} holds a Python lambda saved as bytecode. Loading it would execute code "
            "from the file, which safe mode forbids. If you trust the file's source, pass "
            "`safe_mode=False` (e.g. `load_model(..., safe_mode=False)`) or call "
            "`kestrel.config.enable_unsafe_deserialization()`.")
    fn_code = marshal.loads(base64.b64decode(code.encode("ascii")))
    cells = None if closure is None else tuple(
        types.CellType(_load_closure_value(v)) for v in closure)
    return types.FunctionType(fn_code, _lambda_globals(), fn_code.co_name,
                              None if defaults is None else tuple(defaults), cells)


def _dump_closure_value(value):
    """A module the lambda closes over (`keras` inside a function) as Keras writes it: its
    name under `builtins.module` (Kestrel's modules under their Keras names), so the config
    stays JSON; any other value as it is."""
    if not isinstance(value, types.ModuleType):
        return value
    name = value.__name__
    if name == "kestrel" or name.startswith("kestrel."):
        name = "keras" + name[len("kestrel"):]
    return {"module": "builtins", "class_name": "module", "config": name,
            "registered_name": "module"}


def _load_closure_value(value):
    """The module a `_dump_closure_value` entry names (Keras' modules as Kestrel's)."""
    if not (isinstance(value, dict) and value.get("class_name") == "module"
            and value.get("module") == "builtins" and isinstance(value.get("config"), str)):
        return value
    name = value["config"]
    if name == "keras" or name.startswith("keras."):
        name = "kestrel" + name[len("keras"):]
    return importlib.import_module(name)


def _lambda_globals() -> dict:
    """Names a loaded lambda may use: builtins, torch, numpy (`np`) and kestrel (`keras`)."""
    import numpy as np
    import torch

    import kestrel

    return {"__builtins__": builtins, "torch": torch, "np": np, "numpy": np,
            "kestrel": kestrel, "keras": kestrel}
