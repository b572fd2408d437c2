"""Output shapes of a layer call on symbolic tensors, found by running it on small zero tensors."""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from kestrel import config
from kestrel.backend import scopes
from kestrel.layers import graph_closures, training_mode
from kestrel.layers.node import KerasTensor, flatten, is_string_array, map_structure, shape_of

_PLACEHOLDERS = (17, 19)  # sizes standing in for unknown non-batch dimensions
_SMALL_PLACEHOLDERS = (2, 3)  # tried when a call fails at the usual sizes (e.g. positions
                              # `arange(length)` looked up in a short position embedding)


def infer_output_spec(layer, args, kwargs, vary_batch: bool = False):
    """Run `call` on small zero tensors (batch 1) to learn the output shapes and dtypes.

    Unknown sizes other than the batch get a placeholder; when there are any, a second run
    with another placeholder tells which output sizes depend on them (those become None).
    With `vary_batch` (ops, which may move or merge the batch axis) an unknown batch is
    varied too (1, then 2), so every output size that depends on it becomes None. A call that
    fails at the placeholder sizes is retried at small ones before its error is raised.
    """
    batch_unknown = any(isinstance(t, KerasTensor) and t.shape and t.shape[0] is None
                        for t in flatten((args, kwargs)))
    vary_batch = vary_batch and batch_unknown
    unknown = has_unknown_dims((args, kwargs), skip_batch=True)
    try:
        runs = _placeholder_runs(layer, args, kwargs, _PLACEHOLDERS, vary_batch, unknown)
    except Exception:
        runs = unknown and _small_placeholder_runs(layer, args, kwargs, vary_batch)
        if not runs:
            raise  # the error at the usual sizes
    merged = []
    for outs in zip(*[flatten(r) for r in runs]):
        _check_output(layer, outs[0])
        shape = [d if all(o.shape[i] == d for o in outs) else None
                 for i, d in enumerate(outs[0].shape)]
        if batch_unknown and not vary_batch and shape and shape[0] == 1:
            shape[0] = None
        merged.append(KerasTensor(shape, "string" if is_string_array(outs[0])
                                  else config.dtype_name(outs[0].dtype)))
    leaves = iter(merged)
    return map_structure(lambda t: next(leaves) if isinstance(t, torch.Tensor)
                         or is_string_array(t) else t, runs[0])


def _check_output(layer, output) -> None:
    """A symbolic call needs tensors out of `call`; Keras raises an AttributeError too."""
    if not hasattr(output, "shape"):
        raise AttributeError(
            f"Could not automatically infer the output shape / dtype of '{layer.name}' (of "
            f"type {type(layer).__name__}): its `call()` returned {output!r} where a tensor "
            f"was expected. Either `{type(layer).__name__}.call()` is incorrect, or implement "
            "`compute_output_spec()` / `compute_output_shape()`.")


def _placeholder_runs(layer, args, kwargs, sizes, vary_batch, unknown):
    runs = [run_on_placeholders(layer, args, kwargs, sizes[0])]
    if vary_batch or unknown:
        runs.append(run_on_placeholders(layer, args, kwargs, sizes[1],
                                        batch=2 if vary_batch else 1))
    return runs


def _small_placeholder_runs(layer, args, kwargs, vary_batch):
    try:
        return _placeholder_runs(layer, args, kwargs, _SMALL_PLACEHOLDERS, vary_batch, True)
    except Exception:  # noqa: BLE001 - the caller reports its own error
        return None


def symbolic_mask(first):
    """The `_keras_mask` of a KerasTensor (a list for a list of them), None when none has one."""
    if isinstance(first, (list, tuple)):
        masks = [getattr(t, "_keras_mask", None) for t in first]
        return None if all(m is None for m in masks) else masks
    return getattr(first, "_keras_mask", None)


def attach_output_masks(layer, first, outputs) -> None:
    """Give symbolic outputs the `_keras_mask` that `layer.compute_mask` would give real ones.

    The mask is computed on placeholders (the input's mask, if any, all True); its sizes that
    match an unknown size of the output become None.
    """
    if not layer.supports_masking:
        return
    masks_in = symbolic_mask(first)
    if masks_in is None and layer._unmasked_in_unmasked_out:
        return
    device = layer._device()

    def make(t, dtype=None):
        if not isinstance(t, KerasTensor):
            return t
        shape = [_PLACEHOLDERS[0] if d is None else d for d in t.shape]
        if t.shape and t.shape[0] is None:
            shape[0] = 1
        if t.dtype == "string":
            return np.full(shape, "", dtype=object)
        return torch.ones(shape, dtype=dtype or config.to_torch_dtype(t.dtype), device=device)

    symbolic = {}  # id(placeholder) -> (placeholder, the input's mask it stands for)

    def make_mask(m):
        placeholder = make(m, torch.bool)
        symbolic[id(placeholder)] = (placeholder, m)
        return placeholder

    try:
        with torch.no_grad():
            out_masks = layer.compute_mask(map_structure(make, first),
                                           map_structure(make_mask, masks_in))
    except Exception:  # noqa: BLE001 - a mask that cannot be inferred stays unknown symbolically
        return
    for out, mask in zip(flatten(outputs), flatten(out_masks)):
        if isinstance(out, KerasTensor) and id(mask) in symbolic:
            out._keras_mask = symbolic[id(mask)][1]  # passed through: the same tensor, as Keras
        elif isinstance(out, KerasTensor) and isinstance(mask, torch.Tensor):
            shape = [None if i < len(out.shape) and out.shape[i] is None else d
                     for i, d in enumerate(mask.shape)]
            out._keras_mask = KerasTensor(shape, "bool")


def run_on_placeholders(layer, args, kwargs, size, batch: int = 1):
    device = layer._device()

    def make(t):
        if not isinstance(t, KerasTensor):
            return t
        shape = [size if d is None else d for d in t.shape]
        if t.shape and t.shape[0] is None:
            shape[0] = batch
        if t.dtype == "string":
            return np.full(shape, "", dtype=object)
        return torch.zeros(shape, dtype=config.to_torch_dtype(t.dtype), device=device)

    call_kwargs = dict(kwargs)
    if layer._call_accepts_training:
        call_kwargs["training"] = False
    try:  # in inference, as Keras' symbolic pass: a `call` not passing `training` on leaves
        # its sublayers at their defaults, so BatchNormalization keeps its moving stats
        with torch.no_grad(), training_mode.mode(layer, False), _autocast(layer, device), \
                scopes.SymbolicScope(), graph_closures.placeholder_run(layer, make):
            outputs = layer.call(*_cast_first(layer, map_structure(make, args)),
                                 **map_structure(make, call_kwargs))
            if layer._autocast_dtype is None:
                return outputs
            from kestrel.layers.layer import in_compute_dtype

            return in_compute_dtype(layer, outputs)
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001 - reported with the layer's name
        raise _same_kind(error, (
            f"Exception encountered when calling {type(layer).__name__} '{layer.name}': "
            f"{error}. Received: input shape={shape_of(args[0]) if args else None}")) from error


def _same_kind(error: Exception, message: str) -> Exception:
    """`message` in an exception of `error`'s class (a RuntimeError where that class takes
    other arguments), as Keras re-raises what a symbolic call hit."""
    try:
        return type(error)(message)
    except Exception:  # noqa: BLE001 - e.g. an exception class with required arguments
        return RuntimeError(message)


def _autocast(layer, device):
    """The autocast `__call__` runs the layer's `call` under (mixed policies), else nothing."""
    dtype = layer._autocast_dtype
    if dtype is None or device.type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _cast_first(layer, args: tuple) -> tuple:
    """`args` with the floating first input cast as `Layer.__call__` casts it."""
    first = args[0] if args else None
    if not (layer.autocast and layer._convert_input_args and type(first) is torch.Tensor
            and first.is_floating_point()):
        return args
    return (first.to(layer._input_cast_dtype()),) + tuple(args[1:])


def has_unknown_dims(structure, skip_batch: bool = False) -> bool:
    start = 1 if skip_batch else 0
    return any(isinstance(t, KerasTensor) and None in t.shape[start:] for t in flatten(structure))


def shapes_to_keras_tensors(shape, dtype):
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [shapes_to_keras_tensors(s, dtype) for s in shape]
    return KerasTensor(shape, dtype)


def _map_shapes(shape, leaf):
    """Apply `leaf` (tuple or list) to every shape of a shape, a list or a dict of shapes."""
    if isinstance(shape, dict):
        return {k: _map_shapes(v, leaf) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple, dict)):
        return [_map_shapes(s, leaf) for s in shape]
    return leaf(shape)


def to_shape_tuple(shape):
    """Shapes as tuples (how layers receive them)."""
    return _map_shapes(shape, tuple)


def to_shape_list(shape):
    """Shapes as lists (how configs store them)."""
    return _map_shapes(shape, list)
