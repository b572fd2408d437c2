"""Keras 1 convolution arguments (`nb_filter`, `nb_row`, `border_mode`, `subsample`, ...) and
the Keras 1 layers Keras 2 still converted: `AtrousConvolution1D`, `AtrousConvolution2D`
(`keras.legacy.layers`), which are Conv1D / Conv2D with `dilation_rate=atrous_rate`."""
from __future__ import annotations

import warnings

from kestrel.layers.convolutional.conv import Conv1D, Conv2D

_SHARED_NAMES = (
    ("nb_filter", "filters"), ("border_mode", "padding"), ("init", "kernel_initializer"),
    ("W_regularizer", "kernel_regularizer"), ("b_regularizer", "bias_regularizer"),
    ("W_constraint", "kernel_constraint"), ("b_constraint", "bias_constraint"),
    ("bias", "use_bias"))
# Keras 1 name -> Keras 2 name, per rank, as Keras 2's legacy interfaces converted them.
KERAS1_CONV_NAMES = {
    1: _SHARED_NAMES + (("filter_length", "kernel_size"), ("subsample_length", "strides")),
    2: _SHARED_NAMES + (("subsample", "strides"), ("dim_ordering", "data_format")),
}
DIM_ORDERINGS = {"tf": "channels_last", "th": "channels_first", "default": None}


def keras2_conv_kwargs(rank: int, owner: str, args: tuple, kwargs: dict) -> dict:
    """Keras 1 positional and keyword arguments of a `rank`-D convolution as Keras 2
    keywords; warns, as Keras 2 did, when a Keras 1 form was converted. The warning points
    at the caller of the public function that called this one."""
    kwargs = dict(kwargs)
    converted = _take_positionals(rank, owner, list(args), kwargs)
    if rank == 1 and "input_dim" in kwargs:
        kwargs["input_shape"] = (kwargs.pop("input_length", None), kwargs.pop("input_dim"))
        converted = True
    if kwargs.get("dim_ordering") in DIM_ORDERINGS:
        kwargs["dim_ordering"] = DIM_ORDERINGS[kwargs["dim_ordering"]]
    for old, new in KERAS1_CONV_NAMES[rank]:
        if old in kwargs:
            if new in kwargs:
                raise TypeError(f"For the `{new}` argument, the layer received both the legacy "
                                f"keyword argument `{old}` and the Keras 2 keyword argument "
                                f"`{new}`. Stick to the latter!")
            kwargs[new] = kwargs.pop(old)
            converted = True
    if converted:
        call = ", ".join(f"{name}={value!r}" for name, value in kwargs.items())
        warnings.warn(f"Update your `{owner}` call to the Keras 2 API: `{owner}({call})`",
                      stacklevel=4)
    return kwargs


def _take_positionals(rank: int, owner: str, args: list, kwargs: dict) -> bool:
    """Moves the positional arguments into `kwargs` as `filters` and `kernel_size`, with
    Keras 1's `nb_row, nb_col` (positional or keyword) joined into `kernel_size`. Returns
    whether a Keras 1 form was used."""
    limit = 3 if rank == 2 else 2
    if len(args) > limit:
        raise TypeError(f"`{owner}` can accept only {limit} positional arguments, but you "
                        f"passed the following positional arguments: {args}")
    if len(args) == 3:
        _set_once(owner, kwargs, "nb_col", args.pop())
    converted = False
    if rank == 2 and "nb_col" in kwargs:
        if len(args) == 2:
            row = args.pop()
        elif "nb_row" in kwargs:
            row = kwargs.pop("nb_row")
        else:
            raise TypeError(f"`{owner}` received `nb_col={kwargs['nb_col']!r}` without "
                            "`nb_row`: pass both, or `kernel_size`.")
        _set_once(owner, kwargs, "kernel_size", (row, kwargs.pop("nb_col")))
        converted = True
    for name, value in zip(("filters", "kernel_size"), args):
        _set_once(owner, kwargs, name, value)
    return converted


def _set_once(owner: str, kwargs: dict, name: str, value) -> None:
    if name in kwargs:
        raise TypeError(f"`{owner}` got multiple values for argument `{name}`.")
    kwargs[name] = value


def _atrous(layer_class, rank: int, owner: str, args: tuple, kwargs: dict):
    kwargs = dict(kwargs)
    kwargs["dilation_rate"] = kwargs.pop("atrous_rate", 1)
    warnings.warn(f"The `{owner}` layer has been deprecated. Use instead the "
                  f"`{layer_class.__name__}` layer with the `dilation_rate` argument.",
                  stacklevel=3)
    return layer_class(**keras2_conv_kwargs(rank, layer_class.__name__, args, kwargs))


def AtrousConvolution1D(*args, **kwargs) -> Conv1D:  # noqa: N802 - Keras 1's name
    """Keras 1's dilated 1D convolution: `Conv1D(..., dilation_rate=atrous_rate)`.

    Takes Keras 1 arguments (`nb_filter`, `filter_length`, `border_mode`,
    `subsample_length`, `init`, `W_regularizer`, ...) or Keras 2 ones.

    Example:
        >>> AtrousConvolution1D(8, 3, atrous_rate=2, border_mode="same").dilation_rate
        (2,)
    """
    return _atrous(Conv1D, 1, "AtrousConvolution1D", args, kwargs)


def AtrousConvolution2D(*args, **kwargs) -> Conv2D:  # noqa: N802 - Keras 1's name
    """Keras 1's dilated 2D convolution: `Conv2D(..., dilation_rate=atrous_rate)`.

    Takes Keras 1 arguments (`nb_filter, nb_row, nb_col`, `border_mode`, `subsample`,
    `dim_ordering`, `init`, `W_regularizer`, ...) or Keras 2 ones.

    Example:
        >>> AtrousConvolution2D(8, 3, 3, atrous_rate=(2, 1)).dilation_rate
        (2, 1)
    """
    return _atrous(Conv2D, 2, "AtrousConvolution2D", args, kwargs)
