"""Keras 1's `merge` function and `Merge` layer, which Keras 2.0 and 2.1 kept with a warning
(`keras.legacy.layers`): each `mode` is the Keras 2 merge layer that computes it (`"sum"` an
`Add`, `"concat"` a `Concatenate(axis=concat_axis)`, `"cos"` a normalized `Dot`, a function a
`Lambda`). Keras 1's merge of `Sequential` branches (`Merge([model1, model2])`) is refused:
Kestrel's `Sequential` has one input."""
from __future__ import annotations

import warnings

from kestrel.layers.core.activation import Lambda
from kestrel.layers.merging.concatenate import Concatenate
from kestrel.layers.merging.dot import Dot
from kestrel.layers.merging.elementwise import Add, Average, Maximum, Multiply

_ELEMENTWISE = {"sum": Add, "mul": Multiply, "ave": Average, "max": Maximum}
_MODES = ("sum", "mul", "concat", "ave", "cos", "dot", "max")


def _warn(what: str, stacklevel: int) -> None:
    warnings.warn(f"The {what} is deprecated and will be removed after 08/2017. Use instead "
                  "layers from `keras.layers.merge`, e.g. `add`, `concatenate`, etc.",
                  DeprecationWarning, stacklevel=stacklevel)


def _merge_layer(mode, concat_axis, dot_axes, output_shape, output_mask, arguments, name):
    if callable(mode):
        return Lambda(mode, output_shape=output_shape, mask=output_mask, arguments=arguments,
                      name=name)
    if mode in _ELEMENTWISE:
        return _ELEMENTWISE[mode](name=name)
    if mode == "concat":
        return Concatenate(axis=concat_axis, name=name)
    if mode in ("dot", "cos"):
        return Dot(axes=dot_axes, normalize=mode == "cos", name=name)
    raise ValueError(f"Invalid merge mode: {mode!r}. Expected one of {', '.join(_MODES)} or a "
                     "function of the list of tensors")


def Merge(layers=None, mode="sum", concat_axis=-1, dot_axes=-1,  # noqa: N802 - Keras 1's name
          output_shape=None, output_mask=None, arguments=None, node_indices=None,
          tensor_indices=None, name=None):
    """Keras 1's merge layer: the Keras 2 layer for `mode`, to call on a list of tensors.

    Example:
        >>> Merge(mode="concat", concat_axis=1)  # doctest: +SKIP
        <Concatenate name=concatenate, built=False>
    """
    _warn("`Merge` layer", stacklevel=3)
    if layers is not None:
        raise ValueError(
            "Merge(layers=[...]) merges Keras 1 Sequential branches, which Kestrel's "
            "Sequential (one input) cannot hold. Merge the branches' outputs in a functional "
            "model instead, e.g. Model([model1.input, model2.input], "
            "concatenate([model1.output, model2.output])).")
    return _merge_layer(mode, concat_axis, dot_axes, output_shape, output_mask, arguments,
                        name)


def merge(inputs, mode="sum", concat_axis=-1, dot_axes=-1, output_shape=None,
          output_mask=None, arguments=None, name=None):
    """Keras 1's merge function: `inputs` (a list of tensors) merged by `mode`.

    Example:
        >>> merge([Input((3,)), Input((3,))], mode="concat").shape  # doctest: +SKIP
        (None, 6)
    """
    _warn("`merge` function", stacklevel=4)  # called as `layers.merge(...)`
    return _merge_layer(mode, concat_axis, dot_axes, output_shape, output_mask, arguments,
                        name)(inputs)
