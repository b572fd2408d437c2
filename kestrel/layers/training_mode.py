"""Whether a training mode is in force: an explicit `training=` argument of an enclosing layer
call, or the built-in steps of `fit` / `evaluate` / `predict`.

Keras resolves `training` as: the argument, else an outer call's, else the default of the
layer's `call` signature. Kestrel keeps the mode in each module's `training` flag; layers whose
Keras `call` defaults to `training=True` (the image augmentation layers) use that default only
when no mode is in force, so `augment(images)` called on its own augments, as in Keras.
"""
from __future__ import annotations

import contextlib

_depth = 0  # how many mode-setting scopes are open


def active() -> bool:
    """Whether an enclosing call or built-in step has set the training mode."""
    return _depth > 0


def enter() -> None:
    global _depth
    _depth += 1


def leave() -> None:
    global _depth
    _depth -= 1


@contextlib.contextmanager
def mode(layer, training: bool):
    """`layer` and its sublayers in training (or inference) mode, in force for the calls
    inside, as Keras' built-in steps call `model(x, training=...)`."""
    previous = layer.training
    if previous != training:
        layer.train(training)
    enter()
    try:
        yield
    finally:
        leave()
        if previous != training:
            layer.train(previous)


@contextlib.contextmanager
def step(model, training: bool):
    """The mode of a built-in step. Keras' steps call `model(x, training=...)` only when the
    model's `call` takes `training`, else `model(x)`: then no mode is in force and its layers
    run at their defaults (inference; augmentation layers augment)."""
    if model._call_accepts_training:
        with mode(model, training):
            yield
        return
    previous = model.training
    if previous:
        model.train(False)
    try:
        yield
    finally:
        if previous:
            model.train(True)
