"""Graph tensors read inside a layer's `call` or a loss function, as Keras 2 scripts read them.

In Keras 2's graph mode a custom layer or loss could use any tensor of the functional graph,
not only its arguments: the variational autoencoders of "Deep Learning with Python" (a
`CustomVariationalLayer` calling `self.add_loss`) and of the Keras blog (a compiled `vae_loss`)
read `z_mean` and `z_log_var` there, and got the values of the batch being run. Kestrel gives
them the same values:

- while a layer's output shape is inferred on placeholders, an op that meets such a tensor
  gets a placeholder of its shape, and the layer is marked `_closes_over_graph`;
- while a model holding such a layer (or compiled with such a loss) runs, an op that meets
  one computes it from the model's inputs of this run (a sub-model from the inputs to the
  tensor, cached; its value is reused within the run).

Only tensors made before the run began are given values: a graph built during the run (a
sublayer's `build` making a model of its own) stays symbolic.
"""
from __future__ import annotations

import weakref

from kestrel.layers.node import KerasTensor

_ACTIVE: list = []  # the open runs, innermost last
_SUB_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class _Run:
    """An open run; `value` gives a graph tensor's value in it, or None."""

    def __init__(self):
        self.first_new = KerasTensor.created  # tensors made from here on are the run's own

    def value(self, tensor: KerasTensor):
        if getattr(tensor, "_serial", self.first_new) >= self.first_new:
            return None
        return self._value(tensor)


class _PlaceholderRun(_Run):
    """A layer's `call` on placeholders: graph tensors become placeholders of their shape."""

    def __init__(self, layer, make):
        super().__init__()
        self.layer = layer
        self.make = make

    def _value(self, tensor: KerasTensor):
        self.layer._closes_over_graph = True
        return self.make(tensor)


class _GraphRun(_Run):
    """A model run on `inputs`: graph tensors computed from those inputs are their values."""

    def __init__(self, model, inputs, training):
        super().__init__()
        self.model = model
        self.inputs = inputs
        self.training = training
        self.values: dict[int, tuple] = {}  # id(tensor) -> (tensor, value or None)

    def _value(self, tensor: KerasTensor):
        if id(tensor) not in self.values:
            sub_model = _sub_model(self.model, tensor)
            value = None if sub_model is None else \
                sub_model(self.inputs, training=self.training)
            self.values[id(tensor)] = (tensor, value)
        return self.values[id(tensor)][1]


def _sub_model(model, tensor: KerasTensor):
    """The model from `model`'s inputs to `tensor` (None when they do not compute it)."""
    from kestrel.models.model import Model

    cache = _SUB_MODELS.setdefault(model, {})
    if id(tensor) not in cache:
        try:
            sub_model = Model(inputs=model._inputs_struct, outputs=tensor)
        except ValueError:  # another graph's tensor: it stays symbolic
            sub_model = None
        cache[id(tensor)] = (tensor, sub_model)
    return cache[id(tensor)][1]


class _Open:
    def __init__(self, run):
        self.run = run

    def __enter__(self):
        _ACTIVE.append(self.run)

    def __exit__(self, *exc):
        _ACTIVE.remove(self.run)
        return False


def placeholder_run(layer, make) -> _Open:
    """The context of a placeholder run of `layer`'s `call` (`make` builds a placeholder)."""
    return _Open(_PlaceholderRun(layer, make))


def model_run(model, inputs, training=None) -> _Open:
    """The context of `model`'s run on `inputs`."""
    return _Open(_GraphRun(model, inputs, training))


def values_for(args: tuple, kwargs: dict):
    """`(args, kwargs)` with the graph tensors (also inside lists and tuples) replaced by their
    values in the innermost open run that has them; None outside runs or when one has none."""
    if not _ACTIVE:
        return None
    missing = []

    def value(item):
        if type(item) is KerasTensor:
            found = _value(item)
            if found is None:
                missing.append(item)
            return found
        if type(item) in (list, tuple) and any(type(v) is KerasTensor for v in item):
            return type(item)(value(v) for v in item)
        return item

    args = tuple(value(a) for a in args)
    kwargs = {k: value(v) for k, v in kwargs.items()}
    return None if missing else (args, kwargs)


def _value(tensor: KerasTensor):
    for run in reversed(_ACTIVE):
        found = run.value(tensor)
        if found is not None:
            return found
    return None


def references_graph_tensors(fn) -> bool:
    """Whether a plain function reads a graph tensor through its closure or its globals (a
    Keras 2 loss such as the Keras blog's `vae_loss`)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    cells = [cell.cell_contents for cell in fn.__closure__ or () if _filled(cell)]
    named = [fn.__globals__.get(name) for name in code.co_names]
    return any(isinstance(value, KerasTensor) for value in cells + named)


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True
