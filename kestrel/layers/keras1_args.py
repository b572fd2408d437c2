"""Keras 1 call forms that Keras 2 still accepted, converted to Keras 2 arguments with Keras 2's
warnings: one table, `KERAS1_FORMS`, from a class or method name to its `Keras1Form`.

`Dense(output_dim=10, init="uniform")` becomes `Dense(units=10,
kernel_initializer="uniform")`, `Convolution2D(32, 3, 3, border_mode="same")` becomes
`Conv2D(32, (3, 3), padding="same")`, `fit(x, y, nb_epoch=2)` becomes `fit(x, y, epochs=2)`.

`Layer.__init_subclass__` wraps the `__init__` of the Kestrel classes named here
(`keras1_init`); `fit` and the generator methods take Keras 1's keywords in `**kwargs` and
convert them (`keras2_arguments`), so their own frames stay the only ones between a user and
the warnings they raise. A call with no Keras 1 argument goes straight through. This module imports nothing from Kestrel.

Three positional integers to `Conv2D` are Keras 1's `nb_filter, nb_row, nb_col` only in a call
that also names a Keras 1 keyword (`Convolution2D(32, 3, 3, border_mode="same")`); otherwise
they keep Keras 3's (and tf.keras 2's) meaning, `filters, kernel_size, strides`
(`Conv2D(32, 3, 2, padding="same")`), which Keras 2's legacy interface read differently.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np

DIM_ORDERINGS = {"tf": "channels_last", "th": "channels_first", "default": None}


class Keras1Form:
    """How one class's (or method's) Keras 1 arguments become Keras 2 ones.

    Args:
        renames: (Keras 1 keyword, Keras 2 keyword) pairs, applied in order.
        values: Keras 1 keyword -> {Keras 1 value: Keras 2 value}, applied before renaming.
        prepare: `(args, kwargs, notes) -> (args, converted)`, run first: positional forms and
            removed arguments; edits `kwargs`, appends warning texts to `notes`.
        watches: other keywords that `prepare` handles.
        plain_positionals: up to this many positional arguments never need `prepare`.
        notice: "update" (Keras 2's "Update your `X` call" warning) or "renamed" (`fit`'s).
    """
    __slots__ = ("renames", "values", "prepare", "plain_positionals", "notice", "keywords")

    def __init__(self, renames: tuple = (), values: dict | None = None,
                 prepare: Callable | None = None, watches: tuple = (),
                 plain_positionals: int = 1_000, notice: str = "update"):
        self.renames = renames
        self.values = values or {}
        self.prepare = prepare
        self.plain_positionals = plain_positionals
        self.notice = notice
        # every keyword that means a Keras 1 form may be in use
        self.keywords = frozenset(old for old, _ in renames) | frozenset(watches)

    def needs_conversion(self, args: tuple, kwargs: dict) -> bool:
        return len(args) > self.plain_positionals or not self.keywords.isdisjoint(kwargs)


# ------------------------------------------------------------------ preparations
def _drop_embedding_dropout(args, kwargs, notes):
    if "dropout" in kwargs:
        kwargs.pop("dropout")
        notes.append("The `dropout` argument is no longer support in `Embedding`. You can "
                     "apply a `keras.layers.SpatialDropout1D` layer right after the "
                     "`Embedding` layer to get the same behavior.")
    return args, False


def _forget_bias_init(kwargs, notes) -> bool:
    if "forget_bias_init" not in kwargs:
        return False
    if kwargs.pop("forget_bias_init") == "one":
        kwargs["unit_forget_bias"] = True
        return True
    notes.append("The `forget_bias_init` argument has been ignored. Use "
                 "`unit_forget_bias=True` instead to initialize with ones.")
    return False


def _input_dim_to_input_shape(kwargs) -> bool:
    if "input_dim" not in kwargs:
        return False
    length = kwargs.pop("input_length", None)
    kwargs["input_shape"] = (length, kwargs.pop("input_dim"))
    return True


def _prepare_recurrent(args, kwargs, notes):
    converted = _forget_bias_init(kwargs, notes)
    if _input_dim_to_input_shape(kwargs):
        notes.append("The `input_dim` and `input_length` arguments in recurrent layers are "
                     "deprecated. Use `input_shape` instead.")
        converted = True
    return args, converted


def _prepare_conv1d(args, kwargs, notes):
    return args, _input_dim_to_input_shape(kwargs)


def _are_ints(*values) -> bool:
    return all(isinstance(value, int) for value in values)


def _kernel_from_dims(args, kwargs, names: tuple, owner: str):
    """Joins Keras 1's per-dimension kernel sizes (integers after `nb_filter`, then the
    keywords `names`) into `kernel_size`, as Keras 2 did; other positional forms are Keras 3's
    (`Conv2D(8, (3, 3), 2, "same")`) and stay. Returns (args, converted)."""
    if len(args) > len(names) + 1 and _are_ints(*args[:len(names) + 1]):
        raise TypeError(f"Layer can receive at most {len(names) + 1} positional arguments.")
    dims = args[1:]
    missing = names[len(dims):]
    if not (_are_ints(*dims) and all(name in kwargs for name in missing)):
        _refuse_lone_dims(kwargs, names, owner)
        return args, False
    kernel = tuple(dims) + tuple(kwargs.pop(name) for name in missing)
    if not args:
        kwargs["kernel_size"] = kernel
        return args, True
    return [args[0], kernel], True


def _refuse_lone_dims(kwargs, names: tuple, owner: str) -> None:
    given = [name for name in names if name in kwargs]
    if given:
        absent = ", ".join(f"`{name}`" for name in names if name not in kwargs)
        raise TypeError(f"`{owner}` received `{given[0]}={kwargs[given[0]]!r}` without "
                        f"{absent}: pass every one of {names}, or `kernel_size`.")


def _prepare_conv2d(args, kwargs, notes, owner="Conv2D"):
    return _kernel_from_dims(args, kwargs, ("nb_row", "nb_col"), owner)


def _prepare_conv3d(args, kwargs, notes):
    return _kernel_from_dims(args, kwargs, ("kernel_dim1", "kernel_dim2", "kernel_dim3"),
                             "Conv3D")


def _prepare_separable_conv2d(args, kwargs, notes):
    converted = "init" in kwargs
    if converted:
        kwargs["depthwise_initializer"] = kwargs["pointwise_initializer"] = kwargs.pop("init")
    args, kernel_converted = _prepare_conv2d(args, kwargs, notes, "SeparableConv2D")
    return args, converted or kernel_converted


def _prepare_deconv2d(args, kwargs, notes):
    """Drops Keras 1's `output_shape` (fifth positional argument or keyword)."""
    converted = False
    if len(args) == 4 and isinstance(args[3], tuple):
        args, converted = args[:3], True
    if "output_shape" in kwargs:
        kwargs.pop("output_shape")
        converted = True
    args, kernel_converted = _prepare_conv2d(args, kwargs, notes, "Conv2DTranspose")
    return args, converted or kernel_converted


def _prepare_conv_lstm2d(args, kwargs, notes):
    converted = _forget_bias_init(kwargs, notes)
    args, kernel_converted = _prepare_conv2d(args, kwargs, notes, "ConvLSTM2D")
    return args, converted or kernel_converted


def _prepare_batchnorm(args, kwargs, notes):
    if "mode" not in kwargs:
        return args, False
    if kwargs.pop("mode") != 0:
        raise TypeError("The `mode` argument of `BatchNormalization` no longer exists. "
                        "`mode=1` and `mode=2` are no longer supported.")
    return args, True


_PAD_KEYS = ("top_pad", "bottom_pad", "left_pad", "right_pad")


def _pads(padding: dict) -> tuple:
    top, bottom, left, right = (padding.get(key, 0) for key in _PAD_KEYS)
    return (top, bottom), (left, right)


def _prepare_zero_padding2d(args, kwargs, notes):
    """Keras 1's `{"top_pad": ..., "left_pad": ...}` padding as Keras 2's nested tuple."""
    padding = kwargs.get("padding")
    if isinstance(padding, dict) and set(padding) <= set(_PAD_KEYS):
        kwargs["padding"] = _pads(padding)
        notes.append("The `padding` argument in the Keras 2 API no longeraccepts dict types. "
                     "You can now input argument as: "
                     "`padding=(top_pad, bottom_pad, left_pad, right_pad)`.")
    elif len(args) == 1 and isinstance(args[0], dict) and set(args[0]) <= set(_PAD_KEYS):
        args = [_pads(args[0])]
        notes.append("The `padding` argument in the Keras 2 API no longeraccepts dict types. "
                     "You can now input argument as: "
                     "`padding=((top_pad, bottom_pad), (left_pad, right_pad))`")
    return args, False


def _prepare_generator_method(args, kwargs, notes):
    """`samples_per_epoch` as `steps_per_epoch`: divided by the generator's `batch_size` when
    it has one, else kept (Keras 2 warned that the meaning changed)."""
    if len(args) >= 2 or "samples_per_epoch" not in kwargs:
        return args, False
    samples = kwargs.pop("samples_per_epoch")
    generator = args[0] if args else kwargs.get("generator")
    if hasattr(generator, "batch_size"):
        kwargs["steps_per_epoch"] = samples // generator.batch_size
    else:
        notes.append("The semantics of the Keras 2 argument  `steps_per_epoch` is not the "
                     "same as the Keras 1 argument `samples_per_epoch`. `steps_per_epoch` is "
                     "the number of batches to draw from the generator at each epoch. Update "
                     "your method calls accordingly.")
        kwargs["steps_per_epoch"] = samples
    return args, True


# ------------------------------------------------------------------ the table
_DATA_FORMAT = (("dim_ordering", "data_format"),)
_DIM_VALUES = {"dim_ordering": DIM_ORDERINGS}
_WEIGHT_ARGS = (("W_regularizer", "kernel_regularizer"), ("b_regularizer", "bias_regularizer"),
                ("W_constraint", "kernel_constraint"), ("b_constraint", "bias_constraint"),
                ("bias", "use_bias"))
_CONV_ARGS = (("nb_filter", "filters"), ("subsample", "strides"), ("border_mode", "padding"),
              ("dim_ordering", "data_format"), ("init", "kernel_initializer")) + _WEIGHT_ARGS

_RATE = Keras1Form(renames=(("p", "rate"),))
_POOLING_ND = Keras1Form(renames=(("border_mode", "padding"),) + _DATA_FORMAT,
                         values=_DIM_VALUES)
_DATA_FORMAT_ONLY = Keras1Form(renames=_DATA_FORMAT, values=_DIM_VALUES)
_SPATIAL_DROPOUT_ND = Keras1Form(renames=(("p", "rate"),) + _DATA_FORMAT, values=_DIM_VALUES)
_RECURRENT = Keras1Form(
    renames=(("output_dim", "units"), ("init", "kernel_initializer"),
             ("inner_init", "recurrent_initializer"),
             ("inner_activation", "recurrent_activation"),
             ("W_regularizer", "kernel_regularizer"), ("b_regularizer", "bias_regularizer"),
             ("U_regularizer", "recurrent_regularizer"), ("dropout_W", "dropout"),
             ("dropout_U", "recurrent_dropout"), ("consume_less", "implementation")),
    values={"consume_less": {"cpu": 0, "mem": 1, "gpu": 2}},
    prepare=_prepare_recurrent, watches=("forget_bias_init", "input_dim"))
_CONV2D = Keras1Form(renames=_CONV_ARGS, values=_DIM_VALUES, prepare=_prepare_conv2d,
                     watches=("nb_row", "nb_col"))
_GENERATOR_METHOD = Keras1Form(
    renames=(("samples_per_epoch", "steps_per_epoch"), ("val_samples", "steps"),
             ("nb_epoch", "epochs"), ("nb_val_samples", "validation_steps"),
             ("nb_worker", "workers"), ("pickle_safe", "use_multiprocessing"),
             ("max_q_size", "max_queue_size")),
    prepare=_prepare_generator_method)

KERAS1_FORMS: dict[str, Keras1Form] = {
    "Dense": Keras1Form(renames=(("output_dim", "units"), ("init", "kernel_initializer"))
                        + _WEIGHT_ARGS),
    "Dropout": _RATE, "GaussianDropout": _RATE, "SpatialDropout1D": _RATE,
    "SpatialDropout2D": _SPATIAL_DROPOUT_ND, "SpatialDropout3D": _SPATIAL_DROPOUT_ND,
    "GaussianNoise": Keras1Form(renames=(("sigma", "stddev"),)),
    "PReLU": Keras1Form(renames=(("init", "alpha_initializer"),)),
    "Embedding": Keras1Form(
        renames=(("init", "embeddings_initializer"), ("W_regularizer", "embeddings_regularizer"),
                 ("W_constraint", "embeddings_constraint")),
        prepare=_drop_embedding_dropout, watches=("dropout",)),
    "BatchNormalization": Keras1Form(
        renames=(("beta_init", "beta_initializer"), ("gamma_init", "gamma_initializer")),
        prepare=_prepare_batchnorm, watches=("mode",)),
    "SimpleRNN": _RECURRENT, "GRU": _RECURRENT, "LSTM": _RECURRENT,
    **dict.fromkeys(("MaxPooling1D", "AveragePooling1D"), Keras1Form(
        renames=(("pool_length", "pool_size"), ("stride", "strides"),
                 ("border_mode", "padding")))),
    **dict.fromkeys(("MaxPooling2D", "AveragePooling2D", "MaxPooling3D", "AveragePooling3D"),
                    _POOLING_ND),
    **dict.fromkeys(("GlobalMaxPooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling3D",
                     "GlobalAveragePooling3D", "UpSampling2D", "UpSampling3D", "ZeroPadding3D",
                     "Cropping2D", "Cropping3D"), _DATA_FORMAT_ONLY),
    "UpSampling1D": Keras1Form(renames=(("length", "size"),)),
    "ZeroPadding2D": Keras1Form(renames=_DATA_FORMAT, values=_DIM_VALUES,
                                prepare=_prepare_zero_padding2d, watches=("padding",),
                                plain_positionals=0),
    "Conv1D": Keras1Form(
        renames=(("nb_filter", "filters"), ("filter_length", "kernel_size"),
                 ("subsample_length", "strides"), ("border_mode", "padding"),
                 ("init", "kernel_initializer")) + _WEIGHT_ARGS,
        prepare=_prepare_conv1d, watches=("input_dim",)),
    "Conv2D": _CONV2D,
    "Conv3D": Keras1Form(renames=_CONV_ARGS, values=_DIM_VALUES, prepare=_prepare_conv3d,
                         watches=("kernel_dim1", "kernel_dim2", "kernel_dim3")),
    "SeparableConv2D": Keras1Form(
        renames=tuple(pair for pair in _CONV_ARGS if pair[0] in (
            "nb_filter", "subsample", "border_mode", "dim_ordering", "b_regularizer",
            "b_constraint", "bias")),
        values=_DIM_VALUES, prepare=_prepare_separable_conv2d,
        watches=("init", "nb_row", "nb_col")),
    "Conv2DTranspose": Keras1Form(renames=_CONV_ARGS, values=_DIM_VALUES,
                                  prepare=_prepare_deconv2d,
                                  watches=("output_shape", "nb_row", "nb_col")),
    "ConvLSTM2D": Keras1Form(
        renames=_CONV_ARGS[:5] + (("inner_init", "recurrent_initializer"),
                                  ("W_regularizer", "kernel_regularizer"),
                                  ("U_regularizer", "recurrent_regularizer"),
                                  ("b_regularizer", "bias_regularizer"),
                                  ("inner_activation", "recurrent_activation"),
                                  ("dropout_W", "dropout"), ("dropout_U", "recurrent_dropout"),
                                  ("bias", "use_bias")),
        values=_DIM_VALUES, prepare=_prepare_conv_lstm2d,
        watches=("forget_bias_init", "nb_row", "nb_col")),
    "InputLayer": Keras1Form(renames=(("input_dtype", "dtype"),)),
    "fit": Keras1Form(renames=(("nb_epoch", "epochs"),), notice="renamed"),
    "fit_generator": _GENERATOR_METHOD, "evaluate_generator": _GENERATOR_METHOD,
    "predict_generator": _GENERATOR_METHOD,
}


# ------------------------------------------------------------------ conversion
def to_keras2(owner: str, args, kwargs: dict, form: Keras1Form | None = None,
              stacklevel: int = 1) -> tuple[list, dict]:
    """`owner`'s Keras 1 positional and keyword arguments as Keras 2 ones (by `form`, else by
    the table's entry for `owner`), warning as Keras 2 did; `stacklevel` 1 is the caller."""
    form = form or KERAS1_FORMS[owner]
    args, kwargs, notes = list(args), dict(kwargs), []
    converted = False
    if form.prepare is not None:
        args, converted = form.prepare(args, kwargs, notes)
    for name, table in form.values.items():
        if isinstance(kwargs.get(name), str) and kwargs[name] in table:
            kwargs[name] = table[kwargs[name]]
    for old, new in form.renames:
        if old in kwargs:
            value = kwargs.pop(old)
            if new in kwargs:
                raise TypeError(f"For the `{new}` argument, the layer received both the legacy "
                                f"keyword argument `{old}` and the Keras 2 keyword argument "
                                f"`{new}`. Stick to the latter!")
            kwargs[new] = value
            converted = True
            if form.notice == "renamed":
                notes.append(f"The `{old}` argument in `{owner}` has been renamed `{new}`.")
    if converted and form.notice == "update":
        notes.append(f"Update your `{owner}` call to the Keras 2 API: "
                     f"{_keras2_call(owner, args, kwargs)}")
    for note in notes:
        warnings.warn(note, stacklevel=stacklevel + 1)
    return args, kwargs


def _keras2_call(owner: str, args, kwargs: dict) -> str:
    """The call as Keras 2's warning showed it: strings double-quoted, other values cut to ten
    characters, arrays as `array`."""
    shown = [_shown(value) for value in args]
    shown += [f"{name}={_shown(value)}" for name, value in kwargs.items()]
    return f"`{owner}({', '.join(shown)})`"


def _shown(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    text = "array" if isinstance(value, np.ndarray) else str(value)
    return text[:10] + "..." if len(text) > 10 else text


def keras1_init(init: Callable, owner_form: Keras1Form) -> Callable:
    """`init` (a layer's `__init__`) taking the Keras 1 form `owner_form` too; warnings name
    the class being built, as Keras 2's did."""
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if owner_form.needs_conversion(args, kwargs):
            args, kwargs = to_keras2(type(self).__name__, args, kwargs, owner_form,
                                     stacklevel=2)
        init(self, *args, **kwargs)
    return __init__


def keras2_arguments(owner: str, arguments: dict) -> dict:
    """The arguments of model method `owner` (`fit`, `fit_generator`, ...: its `locals()`,
    with Keras 1's keywords in `keras1`) as Keras 2 ones, for the method to call itself again
    with: the converted keywords override its defaults, as Keras 2's conversions did. Warns as
    Keras 2 did, pointing at the method's caller; any other keyword is Python's TypeError."""
    form = KERAS1_FORMS[owner]
    extra = arguments["keras1"]
    unknown = sorted(set(extra) - form.keywords)
    if unknown:
        raise TypeError(f"{owner}() got an unexpected keyword argument '{unknown[0]}'")
    generator = arguments.get("generator")
    _, converted = to_keras2(owner, [] if generator is None else [generator], extra, form,
                             stacklevel=3)
    return {**{k: v for k, v in arguments.items() if k not in ("self", "keras1")}, **converted}
