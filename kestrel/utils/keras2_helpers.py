"""Small Keras 2 utilities that scripts import from `keras.utils.layer_utils`,
`keras.utils.generic_utils` and `keras.utils.conv_utils`."""
from __future__ import annotations

import numpy as np


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
