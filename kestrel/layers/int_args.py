"""Integer hyperparameters as Keras reads them: any integral number, NumPy's included (Keras 2
scripts write `Dense(np.max(y_train) + 1)`), kept as a Python int so configs stay JSON."""
from __future__ import annotations

import numbers


def is_int(value) -> bool:
    """True for an integral number (Python or NumPy), False for a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(value, name: str, owner: str) -> int:
    """`value` as a positive Python int, or a ValueError naming `owner` and `name`."""
    if not is_int(value) or value <= 0:
        raise ValueError(
            f"{owner}: {name} must be a positive integer. Received: {name}={value!r}")
    return int(value)
