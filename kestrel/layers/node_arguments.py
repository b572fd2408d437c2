"""The keyword arguments of a symbolic call's node: those Keras 3's node records, and those a
model run passes on.

Keras' `Layer.__call__` fills the call's `training` (the caller's, else the default of its
`call` signature, where not None) and its mask arguments (`mask` from the only tensor argument,
else `<name>_mask` from each tensor argument `<name>`; None included) into the kwargs dict its
node then records, unless it first replaced that dict by a converted copy. Kestrel's node
records the same (configs and `.keras` files match Keras'); a model run passes on only the
arguments the call would not fill in again by itself, so such a node keeps the plain path.
"""
from __future__ import annotations

from kestrel.layers.node import KerasTensor, flatten, map_structure


def recorded_kwargs(layer, args: tuple, kwargs: dict, filled: dict) -> dict:
    """The keyword arguments a node records: the caller's, plus (where Keras' node keeps the
    dict its call fills) the `training` default of the layer's `call` and the masks the call
    filled in (`filled`). A placeholder-path mask, with no graph history, stays out: the
    call fills it again when the model runs."""
    if not _keras_keeps_filled_arguments(layer, args, kwargs):
        return kwargs
    recorded = dict(kwargs)
    default = layer._keras_training_default
    if layer._call_accepts_training and "training" not in kwargs and default is not None:
        recorded["training"] = default
    mask_names = {"mask", *layer._call_named_masks}
    for name, mask in filled.items():
        if name in mask_names and kwargs.get(name) is None and _in_graph(mask):
            recorded[name] = _structured(mask, args) if name == "mask" else mask
    return recorded


def run_kwargs(layer, kwargs: dict) -> dict:
    """The recorded keyword arguments a model run passes to the layer: without those the call
    fills in by itself (`training` None or at the default of the layer's `call`, a mask
    argument of None or of Nones), whether recorded by Kestrel or read from a Keras file."""
    if not kwargs:
        return kwargs
    mask_names = {"mask", *layer._call_named_masks}
    default = layer._keras_training_default
    return {name: value for name, value in kwargs.items()
            if not (name in mask_names and _no_mask(value)
                    or name == "training" and (value is None or value is default))}


def _keras_keeps_filled_arguments(layer, args: tuple, kwargs: dict) -> bool:
    """Keras' node records the very kwargs dict its `__call__` fills, unless that call first
    replaced it by a converted copy: it does so for a layer converting its inputs, except on
    a call with one KerasTensor of the layer's compute dtype and no keyword arguments (so
    `LSTM()(x)` records its mask; `MultiHeadAttention()(q, v)` and `Embedding` on integers do
    not). Functional models, `RandomFlip`, `RandomCrop` and `Pipeline` convert nothing in
    Keras; subclassed models and `Sequential` do (Kestrel's models cast nothing themselves)."""
    if not layer._keras_converts_inputs:
        return True
    return not kwargs and len(args) == 1 and isinstance(args[0], KerasTensor) \
        and args[0].dtype == layer.compute_dtype


def _structured(mask, args: tuple):
    """The `mask` of a call on one list (or dict) of tensors in Keras' form: one entry per
    tensor, so `[None, None]` where no tensor has a mask (Kestrel's fill then gives None)."""
    if mask is None and len(args) == 1 and isinstance(args[0], (list, tuple, dict)):
        return map_structure(lambda _: None, args[0])
    return mask


def _no_mask(mask) -> bool:
    """None, or a structure of Nones only (`[None, None]`)."""
    return all(m is None for m in flatten(mask))


def _in_graph(mask) -> bool:
    """Whether a filled mask (or structure of masks) can be recorded: each tensor in it has a
    graph history (None, no mask, is recorded as it is)."""
    return all(m is None or isinstance(m, KerasTensor) and m._keras_history is not None
               for m in flatten(mask))
