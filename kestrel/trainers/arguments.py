"""Checks on the counting arguments of fit / evaluate / predict, before any batch runs."""
from __future__ import annotations

import math
import numbers

# argument -> smallest legal value. epochs=0 is legal, as in Keras 3: fit returns an empty
# History without training.
_MINIMUM = {"batch_size": 1, "epochs": 0, "initial_epoch": 0, "steps_per_epoch": 1,
            "validation_steps": 1, "validation_batch_size": 1, "steps": 1}
_REQUIRED = {"epochs", "initial_epoch"}  # the others may be None (their default applies)


def check_counts(fn: str, **values) -> None:
    """Raise a ValueError naming `fn` and the argument when a count is not a legal integer.

    Example:
        >>> check_counts("fit", batch_size=32, epochs=0)
        >>> check_counts("fit", batch_size=0)
        Traceback (most recent call last):
        ValueError: fit(): `batch_size` must be an integer >= 1 or None. Received: batch_size=0
    """
    for name, value in values.items():
        if value is None and name not in _REQUIRED:
            continue
        minimum = _MINIMUM[name]
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not integral or value < minimum:
            or_none = "" if name in _REQUIRED else " or None"
            raise ValueError(f"{fn}(): `{name}` must be an integer >= {minimum}{or_none}. "
                             f"Received: {name}={value!r:.40}")


def whole_steps(value):
    """A float step count rounded up, as tf.keras 2's loop ran `while step < steps` (its
    ImageDataGenerator docs pass `steps_per_epoch=len(x_train) / 32`); anything else as given.

    Example:
        >>> whole_steps(12.5), whole_steps(3.0), whole_steps(None)
        (13, 3, None)
    """
    if isinstance(value, float) and math.isfinite(value) and value > 0:
        return math.ceil(value)
    return value


def check_not_empty(fn: str, num_samples: int, name: str = "x") -> None:
    """Raise a ValueError when array data `name` given to `fn` holds no samples."""
    if num_samples == 0:
        raise ValueError(f"{fn}(): `{name}` is empty: it must hold at least one sample. "
                         f"Received: {name} with 0 samples")
