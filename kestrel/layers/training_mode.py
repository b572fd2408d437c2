"""Whether a training mode is in force: an explicit `training=` argument of an enclosing layer
call, or the built-in steps of `fit` / `evaluate` / `predict`.

Keras resolves `training` as: the argument, else an outer call's, else the default of the
layer's `call` signature. Kestrel keeps the mode in each module's `training` flag; layers whose
Keras `call` defaults to `training=True` (the image augmentation layers) use that default only
when no mode is in force, so `augment(images)` called on its own augments, as in Keras.

Keras also hands a signature default on: inside one outermost layer call made with no mode in
force, the first layer that runs at a non-None default (`True` for the image preprocessing
layers, `False` for dropout, attention and recurrent layers, a user's `call(..., training=...)`)
sets the mode for the layers that run after it. `outermost` and `claim_default` do the same
with the outermost layer's flags: `model(images)` on a model that starts with `Resizing` or
`RandomFlip` runs its BatchNormalization and Dropout layers in training mode, as in Keras.
"""
from __future__ import annotations

import contextlib

_depth = 0  # how many mode-setting scopes are open
# the outermost layer call running with no mode in force: [layer, its flag before a claim, the
# claimed mode] (the last two None until a layer claims its default)
_outer: list | None = None
_graph_replays = True  # whether the running graph's nodes replay their defaults (enter_graph)


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


def idle() -> bool:
    """Whether no layer call is running and no mode is in force (a call now is outermost)."""
    return _outer is None and not _depth


def unclaimed() -> bool:
    """Whether an outermost call runs with no mode in force (a default may still be claimed)."""
    return _outer is not None and not _depth


def claimable() -> bool:
    """Whether an outermost call runs with no mode in force but one a default claimed, in a
    graph whose nodes replay their defaults (see `enter_graph`)."""
    return _outer is not None and _depth == (0 if _outer[2] is None else 1) and _graph_replays


def enter_graph() -> bool:
    """A model starts running its graph. Keras' nodes replay the `training` default each layer
    got when called on KerasTensors only in a graph called with no mode: one entered after a
    default was claimed (a Sequential inside a layer that runs after `RandomFlip`) gets that
    mode passed to all its layers. Returns what `leave_graph` restores."""
    global _graph_replays
    previous = _graph_replays
    _graph_replays = _outer is None or _outer[2] is None
    return previous


def leave_graph(previous: bool) -> None:
    global _graph_replays
    _graph_replays = previous


def claimed() -> bool | None:
    """The mode a layer's signature default set for the running outermost call, or None."""
    return None if _outer is None else _outer[2]


@contextlib.contextmanager
def outermost(layer):
    """Around an outermost layer call (see `idle`): a mode a layer claims inside holds until
    it returns, then `layer`'s flag comes back."""
    global _outer
    _outer = [layer, None, None]
    try:
        yield
    finally:
        record, _outer = _outer, None
        if record[2] is not None:
            leave()
            if layer.training != record[1]:
                layer.train(record[1])


def claim_default(training: bool, override: bool = False) -> None:
    """A layer runs at its signature default `training` in an outermost call with no mode in
    force (nor the outermost layer put in training mode by torch's `train()`): that mode holds
    for the layers that run after it (the outermost layer and its sublayers). The first claim
    holds for eager calls; in a model's graph, whose Keras nodes carry the default each layer
    got when called on KerasTensors, each claim `override`s."""
    from kestrel.variables import assignments_discarded

    if _outer is None or assignments_discarded():  # not in a symbolic call's placeholder run
        return
    layer = _outer[0]
    if _outer[2] is None:
        if _depth or layer.training:  # a mode in force, or torch's `model.train()` flag
            return
        _outer[1] = layer.training
        enter()
    elif not override or _depth != 1:
        return
    _outer[2] = bool(training)
    if layer.training != bool(training):
        layer.train(bool(training))
