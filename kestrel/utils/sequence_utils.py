"""`keras.utils.pad_sequences`: pad or truncate a list of sequences into one NumPy array."""
from __future__ import annotations

import numpy as np


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pad sequences to the same length (`maxlen`, or the longest one's).

    Args:
        sequences: list of sequences (lists or arrays; items may themselves be arrays).
        maxlen: output length; longer sequences are truncated.
        dtype: output dtype; use `object` (or a NumPy string dtype) for strings.
        padding / truncating: `"pre"` or `"post"`: where values are added / removed.
        value: the padding value.

    Example:
        >>> pad_sequences([[1], [2, 3]])
        array([[0, 1],
               [2, 3]], dtype=int32)
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("pad_sequences: `sequences` must be iterable.")
    if padding not in ("pre", "post"):
        raise ValueError(f'pad_sequences: Padding type "{padding}" not understood')
    if truncating not in ("pre", "post"):
        raise ValueError(f'pad_sequences: Truncating type "{truncating}" not understood')
    lengths, sample_shape = [], None
    for x in sequences:
        try:
            lengths.append(len(x))
        except TypeError:
            raise ValueError("pad_sequences: `sequences` must be a list of iterables. Found "
                             f"a non-iterable of type {type(x).__name__}.") from None
        if sample_shape is None and len(x):
            sample_shape = np.asarray(x).shape[1:]
    sample_shape = sample_shape or ()
    if maxlen is None:
        maxlen = np.max(lengths) if lengths else 0
    is_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_str:
        raise ValueError(f"pad_sequences: `dtype` {dtype} is not compatible with `value`'s type: "
                         f"{type(value)}\nYou should set `dtype=object` for variable length "
                         "strings.")
    out = np.full((len(sequences), maxlen) + tuple(sample_shape), value, dtype=dtype)
    for idx, seq in enumerate(sequences):
        if not len(seq):
            continue
        trunc = np.asarray(seq[-maxlen:] if truncating == "pre" else seq[:maxlen], dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(f"pad_sequences: Shape of sample {trunc.shape[1:]} of sequence at "
                             f"position {idx} is different from expected shape {sample_shape}")
        if padding == "post":
            out[idx, :len(trunc)] = trunc
        else:
            out[idx, -len(trunc):] = trunc
    return out
