"""`keras.utils.Config`: a dict of named values with attribute access, freezing and JSON."""
from __future__ import annotations

import difflib
import json

_OWN = frozenset({"_values", "_frozen"})


class Config:
    """Named values reachable as `config.key` and `config["key"]`; `freeze()` makes it read-only.

    Example:
        config = Config(learning_rate=0.1)
        config.seed = 123
        config.freeze()
    """

    def __init__(self, **kwargs):
        object.__setattr__(self, "_values", dict(kwargs))
        object.__setattr__(self, "_frozen", False)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def unfreeze(self) -> None:
        object.__setattr__(self, "_frozen", False)

    def _check_mutable(self) -> None:
        if self._frozen:
            raise ValueError("Cannot mutate attribute(s) because the config is frozen.")

    def as_dict(self) -> dict:
        return dict(self._values)

    def to_json(self) -> str:
        return json.dumps(self._values)

    def keys(self):
        return self._values.keys()

    def values(self):
        return self._values.values()

    def items(self):
        return self._values.items()

    def get(self, key, default=None):
        return self._values.get(key, default)

    def pop(self, *args):
        self._check_mutable()
        return self._values.pop(*args)

    def update(self, *args, **kwargs):
        self._check_mutable()
        self._values.update(*args, **kwargs)

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        message = f"Unknown attribute: '{name}'."
        close = difflib.get_close_matches(name, list(values), n=1, cutoff=0.7)
        if close:
            message += f" Did you mean '{close[0]}'?"
        raise AttributeError(message)

    def __setattr__(self, name, value):
        if name in _OWN or isinstance(getattr(type(self), name, None), property):
            raise AttributeError(f"Config attribute {name!r} cannot be set.")
        self._check_mutable()
        self._values[name] = value

    def __getitem__(self, key):
        return self._values[key]

    def __setitem__(self, key, value):
        self._check_mutable()
        self._values[key] = value

    def __delitem__(self, key):
        self._check_mutable()
        del self._values[key]

    def __contains__(self, key) -> bool:
        return key in self._values

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<Config {self.to_json()}>"
