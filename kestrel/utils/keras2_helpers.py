"""Small Keras 2 utilities that scripts import from `keras.utils.layer_utils`,
`keras.utils.generic_utils` and `keras.utils.conv_utils` (the argument checks and output
lengths of custom convolution layers)."""
from __future__ import annotations

import numpy as np

from kestrel import config
from kestrel.layers.convolutional import conv_utils as cu


def count_params(weights) -> int:
    """The number of scalars in `weights` (a list of Variables or arrays), each distinct
    weight counted once, as Keras 2's `layer_utils.count_params`.

    >>> count_params([np.zeros((3, 4)), np.zeros(4)])
    16
    """
    unique = {id(w): w for w in weights}.values()
    return int(sum(int(np.prod(tuple(w.shape))) for w in unique))


def to_list(x, allow_tuple: bool = False) -> list:
    """`x` if it is a list (or a tuple, with `allow_tuple`), else `[x]`.

    >>> to_list((1, 2)), to_list((1, 2), allow_tuple=True)
    ([(1, 2)], [1, 2])
    """
    if isinstance(x, list):
        return x
    if allow_tuple and isinstance(x, tuple):
        return list(x)
    return [x]


def convert_kernel(kernel) -> np.ndarray:
    """A convolution kernel `(*spatial, in, out)` with its spatial axes flipped: Keras 2's
    conversion between Theano's convolution and TensorFlow's cross-correlation."""
    kernel = np.asarray(kernel)
    flips = (slice(None, None, -1),) * (kernel.ndim - 2) + (slice(None), slice(None))
    return np.copy(kernel[flips])


def normalize_tuple(value, n: int, name: str) -> tuple:
    """`value` (an int or `n` ints) as a tuple of `n` ints, as Keras 2's
    `conv_utils.normalize_tuple`.

    >>> normalize_tuple(3, 2, "kernel_size"), normalize_tuple([1, 2], 2, "strides")
    ((3, 3), (1, 2))
    """
    items = (value,) * n if isinstance(value, (int, np.integer)) else tuple(value)
    if len(items) != n or not all(isinstance(v, (int, np.integer)) for v in items):
        raise ValueError(f"The `{name}` argument must be a tuple of {n} integers. "
                         f"Received: {value!r}")
    return tuple(int(v) for v in items)


def normalize_padding(value: str) -> str:
    """The lower-cased padding, one of `valid`, `same`, `causal` (Keras 2's check)."""
    padding = value.lower()
    if padding not in ("valid", "same", "causal"):
        raise ValueError("The `padding` argument must be one of \"valid\", \"same\" (or "
                         f"\"causal\" for Conv1D). Received: {value!r}")
    return padding


def normalize_data_format(value: str | None) -> str:
    """`value` lower-cased, checked, or the global image data format for None (Keras 2.1)."""
    return config.standardize_data_format(value)


def conv_output_length(input_length, filter_size: int, padding: str, stride: int,
                       dilation: int = 1):
    """The length a convolution gives along one axis (None stays None), as Keras 2's
    `conv_utils.conv_output_length`; padding is `same`, `valid`, `full` or `causal`.

    >>> conv_output_length(10, 3, "valid", 2), conv_output_length(10, 3, "same", 3)
    (4, 4)
    """
    if input_length is None:
        return None
    if padding not in ("causal", "full", "same", "valid"):
        raise ValueError("conv_output_length: padding must be one of ['causal', 'full', "
                         f"'same', 'valid']. Received: padding={padding!r}")
    if padding != "full":  # the convolution layers' own rule
        return cu.conv_output_length(input_length, filter_size, stride, dilation, padding)
    span = filter_size + (filter_size - 1) * (dilation - 1)
    return (input_length + span - 1 + stride - 1) // stride
