"""Keras' `exclude_from_weight_decay`: variables (or name patterns) that skip weight decay."""
from __future__ import annotations

import re

from kestrel.optimizers import foreach


class WeightDecayExclusion:
    """Mixin of an `Optimizer`: `exclude_from_weight_decay` and the decay it filters."""

    _exclude_ids: frozenset = frozenset()
    _exclude_pattern: re.Pattern | None = None

    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Skip weight decay for the variables in `var_list`, and for every variable whose
        name contains (as a regular expression) one of `var_names`; before `build()` only.

        Example: `optimizer.exclude_from_weight_decay(var_names=["bias", "gamma"])`.
        """
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay()` can only be configured before the optimizer "
                f"is built. Received: optimizer={self.name!r}")
        self._exclude_ids = frozenset(id(v) for v in var_list or ())
        self._exclude_pattern = re.compile("|".join(sorted(set(var_names)))) \
            if var_names else None

    def _use_weight_decay(self, variable) -> bool:
        """Whether `variable` gets weight decay (Keras matches patterns on `variable.name`)."""
        if id(variable) in self._exclude_ids:
            return False
        pattern = self._exclude_pattern
        return pattern is None or pattern.search(getattr(variable, "name", "")) is None

    def _decay_(self, params: list, learning_rate, weight_decay) -> None:
        """Decoupled weight decay on the params not excluded."""
        if weight_decay is None:
            return
        if self._exclude_ids or self._exclude_pattern is not None:
            params = [p for p in params if self._use_weight_decay(p)]
        if params:
            foreach.decay_(params, learning_rate, weight_decay)
