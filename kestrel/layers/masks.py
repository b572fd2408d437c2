"""Keras masks travel with tensors as a `_keras_mask` attribute."""
from __future__ import annotations

import torch


def mask_of(inputs):
    """The `_keras_mask` of a tensor or KerasTensor (a list for a list of them; None when none
    has one)."""
    if isinstance(inputs, (list, tuple)):
        masks = [getattr(t, "_keras_mask", None) for t in inputs]
        return None if all(m is None for m in masks) else masks
    return getattr(inputs, "_keras_mask", None)


def set_mask(outputs, mask) -> None:
    if isinstance(outputs, torch.Tensor):
        outputs._keras_mask = mask
    elif isinstance(outputs, (list, tuple)):
        masks = mask if isinstance(mask, (list, tuple)) else [mask]  # Keras: zip to the shorter
        for out, m in zip(outputs, masks):
            if isinstance(out, torch.Tensor) and m is not None:
                out._keras_mask = m
