"""Pack and unpack the `(x, y, sample_weight)` batches that `train_step` and friends receive."""
from __future__ import annotations


def unpack_x_y_sample_weight(data) -> tuple:
    """`(x, y, sample_weight)` from `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`.

    Missing parts are None; a list is read as a tuple.

    Args:
        data: A batch as given to `train_step`, `test_step` or `predict_step`.

    Example:
        >>> unpack_x_y_sample_weight((1, 2))
        (1, 2, None)
    """
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError("unpack_x_y_sample_weight: data is expected to be `x`, `(x,)`, `(x, y)` "
                     f"or `(x, y, sample_weight)`. Received: a tuple of {len(data)} items")


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """The batch structure `fit` uses: `x` (or `(x,)` for a list/tuple `x`), `(x, y)` or
    `(x, y, sample_weight)`.

    Args:
        x: The model's inputs.
        y: Targets, or None.
        sample_weight: Per-sample weights, or None (ignored when `y` is None).

    Example:
        >>> pack_x_y_sample_weight(1, 2)
        (1, 2)
    """
    if y is None:
        return (x,) if isinstance(x, (tuple, list)) else x
    if sample_weight is None:
        return x, y
    return x, y, sample_weight


# Keras 2 imported these from `keras.utils.data_utils`; they live in their own modules now.
_KERAS2_NAMES = {"get_file": "kestrel.utils.file_utils",
                 "validate_file": "kestrel.utils.file_utils",
                 "Sequence": "kestrel.utils.py_dataset",
                 "pad_sequences": "kestrel.utils.sequence_utils",
                 "SequenceEnqueuer": "kestrel.utils.enqueuers",
                 "OrderedEnqueuer": "kestrel.utils.enqueuers",
                 "GeneratorEnqueuer": "kestrel.utils.enqueuers"}


def __getattr__(name):
    if name in _KERAS2_NAMES:
        import importlib

        return getattr(importlib.import_module(_KERAS2_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
