"""Keras' automatic mask arguments of a layer call.

A `call` taking `mask` receives the `_keras_mask` of its only tensor argument; with several
tensor arguments it receives none (an LSTM given `initial_state` ignores its input's mask, as
in Keras), and each `<name>_mask` argument `call` takes is filled from the tensor argument
`<name>` instead. A mask the caller passes stays.
"""
from __future__ import annotations

import inspect

import torch

from kestrel.layers.masks import mask_of
from kestrel.layers.node import KerasTensor, flatten

_CONTEXT_ARGUMENTS = frozenset({"training", "mask"})


def call_signature(call) -> inspect.Signature:
    """The signature of an unbound `call`, without `self`."""
    signature = inspect.signature(call)
    return signature.replace(parameters=list(signature.parameters.values())[1:])


def named_mask_arguments(signature: inspect.Signature) -> frozenset:
    """The `<name>_mask` parameters of a signature that also has a parameter `<name>`."""
    names = signature.parameters
    return frozenset(n for n in names if n.endswith("_mask") and n[:-5] in names)


def fill(layer, args: tuple, kwargs: dict):
    """`(kwargs, first, previous_mask)`: `kwargs` with the mask arguments Keras fills in, the
    first argument of the call (positional or not) and the mask its output mask starts from
    (the `mask` of the call, else the first argument's)."""
    takes_mask, named = layer._call_accepts_mask, layer._call_named_masks
    if len(args) == 1 and kwargs.keys() <= _CONTEXT_ARGUMENTS:
        first = args[0]  # the common call: one tensor argument
        mask = kwargs.get("mask")
        if mask is None:
            mask = mask_of(first)
            if takes_mask:
                kwargs["mask"] = mask
            return kwargs, first, mask
        if not named:  # a mask given (a model's node passes the graph's): nothing to fill
            return kwargs, first, mask
    try:
        bound = layer._call_signature.bind_partial(*args, **kwargs).arguments
    except TypeError:  # the call itself will say what is wrong
        first = args[0] if args else None
        return kwargs, first, kwargs.get("mask") if "mask" in kwargs else mask_of(first)
    first = next(iter(bound.values()), None)
    tensors = [(name, value) for name, value in bound.items() if _is_tensor_argument(value)]
    fillable = [name for name in ("mask", *named) if bound.get(name) is None
                and (name in kwargs or name not in bound)]  # not passed positionally
    if len(tensors) == 1 and takes_mask and "mask" in fillable:
        kwargs["mask"] = mask_of(tensors[0][1])
    elif len(tensors) > 1:
        for name, value in tensors:
            if name + "_mask" in fillable:
                kwargs[name + "_mask"] = mask_of(value)
    mask = kwargs.get("mask")
    return kwargs, first, mask if mask is not None else mask_of(first)


def _is_tensor_argument(value) -> bool:
    """A tensor, or a non-empty structure of tensors (and Nones), as Keras counts them."""
    if isinstance(value, (torch.Tensor, KerasTensor)):
        return True
    if not isinstance(value, (list, tuple, dict)) or not value:
        return False
    return all(v is None or isinstance(v, (torch.Tensor, KerasTensor)) for v in flatten(value))
