"""`compile()` fixes which layers train, until the next `compile()`.

This is Keras' documented contract ("the `trainable` values at the time the model is compiled
are preserved until `compile()` is called again"), which Keras 2 scripts rely on: a GAN compiles
its discriminator, sets `discriminator.trainable = False`, compiles the combined model, and the
discriminator's own `train_on_batch` still updates it. `fit` and `train_on_batch` run with the
flags recorded at compile time and put back the flags they changed afterwards.
"""
from __future__ import annotations

from contextlib import contextmanager

from torch import nn

from kestrel.layers.layer import Layer


def record(model) -> list[tuple[Layer, bool]]:
    """Each layer of `model` (itself included) with its own `trainable` flag."""
    return [(m, m._trainable) for m in model.modules() if isinstance(m, Layer)]


def _set_own_flag(layer: Layer, value: bool) -> None:
    """`layer`'s own flag and its own parameters, not its sublayers' (they have their own)."""
    layer._trainable = value
    for attr in layer._weight_order:
        tensor = getattr(layer, attr)
        if isinstance(tensor, nn.Parameter):
            tensor.requires_grad_(value)


@contextmanager
def compiled_trainable_state(model):
    """Run the block with the trainable flags `model` had when it was compiled."""
    changed = [(layer, flag) for layer, flag in getattr(model, "_compiled_trainable", ())
               if layer._trainable != flag]
    for layer, flag in changed:
        _set_own_flag(layer, flag)
    try:
        yield
    finally:
        for layer, flag in changed:
            if layer._trainable == flag:  # left alone meanwhile: back to the user's value
                _set_own_flag(layer, not flag)
