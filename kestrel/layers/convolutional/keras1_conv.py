"""The Keras 1 layers Keras 2 still converted: `AtrousConvolution1D`, `AtrousConvolution2D`
(`keras.legacy.layers`), which are Conv1D / Conv2D with `dilation_rate=atrous_rate`. Their
Keras 1 arguments (`nb_filter`, `nb_row`, `border_mode`, ...) go through the one table of
`kestrel.layers.keras1_args`."""
from __future__ import annotations

import warnings

from kestrel.layers import keras1_args
from kestrel.layers.convolutional.conv import Conv1D, Conv2D

_KERAS2_POSITIONALS = ("filters", "kernel_size")


def _atrous(layer_class, owner: str, args: tuple, kwargs: dict):
    kwargs = dict(kwargs)
    kwargs["dilation_rate"] = kwargs.pop("atrous_rate", 1)
    warnings.warn(f"The `{owner}` layer has been deprecated. Use instead the "
                  f"`{layer_class.__name__}` layer with the `dilation_rate` argument.",
                  stacklevel=3)
    args, kwargs = keras1_args.to_keras2(layer_class.__name__, args, kwargs, stacklevel=3)
    if len(args) > len(_KERAS2_POSITIONALS):
        raise TypeError(f"`{layer_class.__name__}` can accept only {len(_KERAS2_POSITIONALS)} "
                        f"positional arguments {_KERAS2_POSITIONALS}, but you passed the "
                        f"following positional arguments: {args}")
    return layer_class(*args, **kwargs)


def AtrousConvolution1D(*args, **kwargs) -> Conv1D:  # noqa: N802 - Keras 1's name
    """Keras 1's dilated 1D convolution: `Conv1D(..., dilation_rate=atrous_rate)`.

    Takes Keras 1 arguments (`nb_filter`, `filter_length`, `border_mode`,
    `subsample_length`, `init`, `W_regularizer`, ...) or Keras 2 ones.

    Example:
        >>> AtrousConvolution1D(8, 3, atrous_rate=2, border_mode="same").dilation_rate
        (2,)
    """
    return _atrous(Conv1D, "AtrousConvolution1D", args, kwargs)


def AtrousConvolution2D(*args, **kwargs) -> Conv2D:  # noqa: N802 - Keras 1's name
    """Keras 1's dilated 2D convolution: `Conv2D(..., dilation_rate=atrous_rate)`.

    Takes Keras 1 arguments (`nb_filter, nb_row, nb_col`, `border_mode`, `subsample`,
    `dim_ordering`, `init`, `W_regularizer`, ...) or Keras 2 ones.

    Example:
        >>> AtrousConvolution2D(8, 3, 3, atrous_rate=(2, 1)).dilation_rate
        (2, 1)
    """
    return _atrous(Conv2D, "AtrousConvolution2D", args, kwargs)
