"""`class_weight` (`{class index: weight}`) turned into per-sample weights, as Keras does."""
from __future__ import annotations

import numbers

import torch


class ClassWeights:
    """A validated `class_weight` dict and its lookup table, built once per `fit`.

    Args:
        class_weight: `{class index: weight}`; integer keys (or strings of digits).

    Example:
        >>> weights = ClassWeights({0: 1.0, 1: 3.0})
        >>> weights(torch.tensor([1, 0]), None).tolist()
        [3.0, 1.0]
    """

    def __init__(self, class_weight: dict):
        if not isinstance(class_weight, dict):
            raise ValueError("`class_weight` must be a dict {class index: weight}. "
                             f"Received: class_weight of type {type(class_weight).__name__}")
        self.classes = sorted(_class_index(key) for key in class_weight)
        size = self.classes[-1] + 1 if self.classes else 0
        self._values = [1.0] * size
        for key, value in class_weight.items():
            self._values[_class_index(key)] = float(value)
        self._tables: dict = {}

    def _table(self, device) -> torch.Tensor:
        table = self._tables.get(device)
        if table is None:
            table = self._tables[device] = torch.tensor(self._values, device=device)
        return table

    def check(self, y) -> None:
        """Raise a ValueError if `y` holds a class without a weight (reads `y` once)."""
        present = set(_indices(y).unique().tolist())
        missing = sorted(present.difference(self.classes))
        if missing:
            raise ValueError(
                f"`class_weight` must have a weight for every class in `y`: classes "
                f"{_short(missing)} are missing. Received: class_weight keys="
                f"{_short(self.classes)}, classes in y={_short(sorted(present))}")

    def __call__(self, y, sample_weight):
        """Per-sample weights for the labels `y` (one-hot or class indices), times
        `sample_weight` when given."""
        if isinstance(y, (list, tuple, dict)):
            raise ValueError("`class_weight` is only supported for models with a single output.")
        index = _indices(y)
        try:
            weights = self._table(y.device)[index]
        except IndexError:  # a class beyond the largest key: say which (error path only)
            self.check(y)
            raise
        return weights if sample_weight is None else weights * sample_weight


def _class_index(key) -> int:
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    raise ValueError("`class_weight` keys must be class indices (integers >= 0). "
                     f"Received: class_weight key {key!r:.40}")


def _indices(y: torch.Tensor) -> torch.Tensor:
    if y.dtype == torch.bool:  # binary labels given as booleans
        y = y.long()
    if y.dim() > 1 and y.shape[-1] > 1:
        return y.argmax(dim=-1)
    return y.reshape(y.shape[0], -1)[:, 0].round().long()


def _short(values: list) -> str:
    """At most ten values of a list, for an error message."""
    if len(values) <= 10:
        return str(values)
    return "[" + ", ".join(str(v) for v in values[:10]) + ", ...]"
