"""Rematerialization (gradient checkpointing): `keras.remat` and `keras.RematScope`.

A layer created inside a `RematScope` recomputes its forward pass during backward instead of
keeping its intermediate activations (torch's non-reentrant `checkpoint`), trading compute for
memory. The scope's mode is captured when the layer is created, as in Keras, and applies only
while gradients are recorded.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

_MODES = ("full", "activations", "larger_than", "list_of_layers", None)
_STACK: list["RematScope"] = []


class RematMode(NamedTuple):
    mode: str | None
    output_size_threshold: int
    layer_names: list


def remat(f):
    """`f` recomputed during backward instead of storing its activations.

    Example:
        >>> dense = kestrel.layers.Dense(8)
        >>> y = kestrel.remat(dense)(torch.ones(2, 4, requires_grad=True))
    """
    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        return checkpoint(f, *args, use_reentrant=False, **kwargs)

    return wrapped


class RematScope:
    """Layers created inside this scope are rematerialized during backward.

    Args:
        mode: `"full"` (every layer), `"activations"` (only the `activation` of layers that
            have one), `"larger_than"` (layers whose output has more than
            `output_size_threshold` elements), `"list_of_layers"` (layers named in `layer_names`), or None (off).
        output_size_threshold: the size limit of `"larger_than"`. Defaults to 1024.
        layer_names: the names for `"list_of_layers"`.

    Example:
        >>> with kestrel.RematScope(mode="full"):
        ...     block = kestrel.layers.Dense(512, activation="relu")
    """

    def __init__(self, mode="full", output_size_threshold=1024, layer_names=None):
        if mode not in _MODES:
            raise ValueError(f"RematScope: invalid mode {mode!r:.60}. Supported modes are: "
                             "'full', 'activations', 'larger_than', 'list_of_layers', or None.")
        self.mode = mode
        self.output_size_threshold = output_size_threshold
        self.layer_names = list(layer_names or [])

    def __enter__(self):
        _STACK.append(self)
        return self

    def __exit__(self, *exc):
        _STACK.remove(self)


def current_remat_mode() -> RematMode | None:
    """The innermost active scope's settings, or None outside any scope."""
    if not _STACK:
        return None
    scope = _STACK[-1]
    return RematMode(scope.mode, scope.output_size_threshold, scope.layer_names)


def install(layer) -> None:
    """Make `layer` rematerialize as the active scope says (called when a layer is created)."""
    mode = current_remat_mode()
    if mode is None or mode.mode is None:
        return
    layer._remat_mode = mode
    layer.forward = functools.partial(_forward, layer, type(layer).forward)


def _forward(layer, forward, *args, **kwargs):
    if not torch.is_grad_enabled():
        return forward(layer, *args, **kwargs)
    mode = layer._remat_mode
    if mode.mode == "activations":
        return _with_remat_activation(layer, forward, args, kwargs)
    if mode.mode == "full" or (mode.mode == "list_of_layers" and layer.name in mode.layer_names) \
            or (mode.mode == "larger_than"
                and _output_size(layer, args) > mode.output_size_threshold):
        return checkpoint(forward, layer, *args, use_reentrant=False, **kwargs)
    return forward(layer, *args, **kwargs)


def _with_remat_activation(layer, forward, args, kwargs):
    activation = getattr(layer, "activation", None)
    if activation is None or not callable(activation):
        return forward(layer, *args, **kwargs)
    layer.__dict__["activation"] = remat(activation)
    try:
        return forward(layer, *args, **kwargs)
    finally:
        layer.__dict__["activation"] = activation


def _output_size(layer, args) -> int:
    """Elements of the layer's output for these inputs (0 when the shape is not known)."""
    if not args or not isinstance(args[0], torch.Tensor):
        return 0
    try:
        shape = layer.compute_output_shape(tuple(args[0].shape))
    except Exception:  # noqa: BLE001 - a layer without shape inference is not rematerialized
        return 0
    if isinstance(shape, (tuple, list)) and all(isinstance(d, int) or d is None for d in shape):
        return math.prod(d or 1 for d in shape)
    return 0
