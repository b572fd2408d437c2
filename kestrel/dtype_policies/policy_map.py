"""DTypePolicyMap: dtype policies keyed by layer path (exact, else a regex full match)."""
from __future__ import annotations

import re
from collections.abc import MutableMapping

from kestrel.mixed_precision import DTypePolicy


class DTypePolicyMap(DTypePolicy, MutableMapping):
    """A mapping from layer paths (or regexes over them) to dtype policies.

    Args:
        default_policy: the policy of paths that match no key (default: the global policy).
        policy_map: optional initial `{path or regex: policy}` dict.

    Example:
        >>> policies = DTypePolicyMap(default_policy="float32")
        >>> policies["encoder/.*"] = "bfloat16"
        >>> policies["encoder/dense"].name, policies["decoder"].name
        ('bfloat16', 'float32')
    """

    def __init__(self, default_policy=None, policy_map: dict | None = None):
        from kestrel import dtype_policies

        if isinstance(default_policy, DTypePolicyMap):
            raise ValueError("`default_policy` cannot be a `DTypePolicyMap`.")
        if policy_map is not None and not isinstance(policy_map, dict):
            raise TypeError("If specified, `policy_map` must be a dict. Received: policy_map "
                            f"of type {type(policy_map).__name__}")
        self._default_policy_arg = default_policy
        self._default_policy = dtype_policies.get(default_policy)
        self._policy_map = {k: dtype_policies.get(v) for k, v in (policy_map or {}).items()}

    @property
    def name(self) -> str:
        return f"map_{self.default_policy.name}"

    @property
    def default_policy(self) -> DTypePolicy:
        return self._default_policy

    @property
    def variable_dtype(self) -> str:
        return self.default_policy.variable_dtype

    @property
    def compute_dtype(self) -> str:
        return self.default_policy.compute_dtype

    @property
    def quantization_mode(self):
        return getattr(self.default_policy, "quantization_mode", None)

    def __getitem__(self, path: str) -> DTypePolicy:
        """The policy of `path`: an exact key, else the one regex key that fully matches it,
        else `default_policy`; a path matching several regexes is refused."""
        if path in self._policy_map:
            return self._policy_map[path]
        matches = [key for key in self._policy_map if re.fullmatch(key, path)]
        if len(matches) > 1:
            raise ValueError(
                f"Path '{path[:200]}' matches multiple dtype policy specification keys: "
                f"{matches[:10]}. Please make sure each path only matches at most one dtype "
                "policy specification key in the DTypePolicyMap.")
        return self._policy_map[matches[0]] if matches else self.default_policy

    def __setitem__(self, path: str, policy) -> None:
        from kestrel import dtype_policies

        if path in self._policy_map:
            raise ValueError(f"{path[:200]} already exist in the DTypePolicyMap with value "
                             f"{self._policy_map[path]}. Please make sure to not use "
                             "duplicated keys.")
        try:
            policy = dtype_policies.get(policy)
        except (ValueError, TypeError):
            raise ValueError("Cannot interpret the assigned value by "
                             "`keras.dtype_policies.get`. Received: value of type "
                             f"{type(policy).__name__}") from None
        self._policy_map[path] = policy

    def __delitem__(self, path: str):
        return self._policy_map.pop(path)

    def __contains__(self, path) -> bool:
        return path in self._policy_map

    def __len__(self) -> int:
        return len(self._policy_map)

    def __iter__(self):
        return iter(self._policy_map)

    def get_config(self) -> dict:
        """As Keras writes it; with no explicit default, entries defer to the global policy."""
        from kestrel import dtype_policies

        entries = {}
        for key, policy in self._policy_map.items():
            entry = dtype_policies.serialize(policy)
            if self._default_policy_arg is None:
                field = "source_name" if "source_name" in entry["config"] else "name"
                entry["config"] = {**entry["config"], field: None}
            entries[key] = entry
        default = self._default_policy_arg
        if isinstance(default, DTypePolicy):
            default = dtype_policies.serialize(default)
        return {"default_policy": default, "policy_map": entries}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        from kestrel import dtype_policies

        entries = {k: dtype_policies.deserialize(v) if isinstance(v, dict) else v
                   for k, v in (config.get("policy_map") or {}).items()}
        return cls(config.get("default_policy"), entries)

    def __eq__(self, other) -> bool:
        return isinstance(other, DTypePolicyMap) and other.get_config() == self.get_config()

    __hash__ = DTypePolicy.__hash__

    def __repr__(self) -> str:
        mapping = [(k, v.name) for k, v in self._policy_map.items()]
        return (f"<DTypePolicyMap default_policy={self.default_policy.name}, "
                f"mapping={mapping}>")
