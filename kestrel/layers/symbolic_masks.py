"""Masks of symbolic calls as Keras 3 builds them: `compute_mask` run on the KerasTensors.

The ops a `compute_mask` calls are then recorded in the graph (`Embedding(mask_zero=True)` adds
a `not_equal` node), and the mask a consumer's call is given becomes its node's `mask` argument,
so summaries ("Connected to"), configs and model execution follow the mask's own path. A
`compute_mask` that cannot run on KerasTensors (raw torch calls) keeps the placeholder path of
`shape_inference.attach_output_masks`, whose masks have no history and are not recorded.
"""
from __future__ import annotations

from kestrel.layers.node import KerasTensor, flatten


def records_mask_ops(cls) -> bool:
    """Whether the `compute_mask` in use by `cls` is run on KerasTensors: a user's (which may
    call `kestrel.ops`), or one of Kestrel's that declares `_mask_ops_recorded` (it calls the ops
    Keras' own layer records)."""
    owner = next(k for k in cls.__mro__ if "compute_mask" in k.__dict__)
    return owner.__dict__.get("_mask_ops_recorded", False) or \
        not (owner.__module__ or "").startswith("kestrel.")


def attach_recorded_masks(layer, first, previous_mask, outputs) -> bool:
    """Set the `_keras_mask` of symbolic `outputs` from `layer.compute_mask(first,
    previous_mask)` run on the KerasTensors themselves. False (nothing set) where that call
    fails or gives anything but None, a mask passed through, or recorded KerasTensors."""
    passed = {id(m) for m in flatten(previous_mask) if isinstance(m, KerasTensor)}
    try:
        masks = layer.compute_mask(first, previous_mask)
    except Exception:  # noqa: BLE001 - e.g. torch functions given a KerasTensor
        return False
    flat_masks = flatten(masks)
    if not all(m is None or isinstance(m, KerasTensor) and (
            id(m) in passed or m._keras_history is not None) for m in flat_masks):
        return False
    for out, mask in zip(flatten(outputs), flat_masks):
        if isinstance(out, KerasTensor) and mask is not None:
            out._keras_mask = mask
    return True
