"""`clone_model`: the same architecture with new layers (and new, re-initialised weights)."""
from __future__ import annotations

from kestrel.layers.core.input_layer import Input, InputLayer
from kestrel.layers.node import KerasTensor, flatten, map_structure
from kestrel.models.functional import Functional
from kestrel.models.sequential import Sequential
from kestrel.ops.operation import FunctionOp


def _default_clone(layer):
    if isinstance(layer, FunctionOp):  # an op node's config names Keras' op class instead
        return FunctionOp(layer.function, bound=layer.bound, name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def _wrap_clone_function(clone_function, call_function, recursive: bool, cache: dict):
    """Clone each layer once (a shared layer stays shared); nested models recursively."""
    clone_function = clone_function or _default_clone

    def clone(layer):
        key = id(layer)  # identity of a live object during one cloning pass
        if key not in cache:
            if recursive and isinstance(layer, (Sequential, Functional)):
                cache[key] = clone_model(layer, clone_function=clone_function,
                                         call_function=None if isinstance(layer, Sequential)
                                         else call_function, recursive=True, _cache=cache)
            else:
                cache[key] = clone_function(layer)
        return cache[key]

    return clone


def clone_model(model, input_tensors=None, clone_function=None, call_function=None,
                recursive=False, **kwargs):
    """A new model with `model`'s architecture and fresh layers (weights are not copied).

    Args:
        model: A `Sequential` or functional `Model` (a subclassed model is cloned from its
            config, without `input_tensors`, `clone_function` or `call_function`).
        input_tensors: Symbolic inputs to build the clone on (same structure as `model.input`).
        clone_function: `layer -> new layer`, called on every non-input layer; defaults to
            `layer.__class__.from_config(layer.get_config())`.
        call_function: `(layer, *args, **kwargs) -> outputs`, replaces each layer call while
            rebuilding a functional graph (functional models only).
        recursive: Whether nested models are cloned layer by layer (through `clone_function`).

    Example:
    >>> import kestrel
    >>> model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(2)])
    >>> clone = kestrel.models.clone_model(model)
    >>> clone.layers[0] is model.layers[0], clone.layers[0].name == model.layers[0].name
    (False, True)
    """
    cache = kwargs.pop("_cache", None)
    if kwargs:
        raise ValueError(f"clone_model: unexpected keyword argument(s): {tuple(kwargs)}")
    clone = _wrap_clone_function(clone_function, call_function, recursive,
                                 {} if cache is None else cache)
    if isinstance(model, Sequential):
        if call_function is not None:
            raise ValueError("clone_model: `call_function` is not supported with Sequential "
                             "models, whose layers are only listed at construction; use it "
                             "with functional models. Received: call_function="
                             f"{getattr(call_function, '__name__', type(call_function).__name__)}")
        cloned = _clone_sequential(model, clone, input_tensors)
    elif isinstance(model, Functional):
        cloned = _clone_functional(model, clone, input_tensors, call_function)
    else:
        if clone_function is not None or input_tensors is not None or \
                call_function is not None:
            raise ValueError(
                "clone_model: `clone_function`, `call_function` and `input_tensors` are only "
                f"supported for Sequential or functional models. Received a model of type "
                f"'{type(model).__name__}'")
        return type(model).from_config(model.get_config())
    if getattr(model, "compiled", False):
        from kestrel.saving.training_config import compile_config, restore_compile

        restore_compile(cloned, compile_config(model))
    return cloned


def _clone_sequential(model: Sequential, clone, input_tensors) -> Sequential:
    layers = [clone(layer) for layer in model.layers]
    source = model._input_layer
    if input_tensors is not None:
        if isinstance(input_tensors, (list, tuple)):
            if len(input_tensors) != 1:
                raise ValueError("clone_model: `input_tensors` must contain a single tensor "
                                 f"for a Sequential model. Received: {len(input_tensors)}")
            input_tensors = input_tensors[0]
        if not isinstance(input_tensors, KerasTensor):
            raise ValueError("clone_model: `input_tensors` must be a KerasTensor. Received: "
                             f"{type(input_tensors).__name__}")
        layers.insert(0, Input(batch_shape=input_tensors.shape, dtype=input_tensors.dtype,
                               name=source.name if source is not None else None))
    elif source is not None:
        layers.insert(0, Input(batch_shape=source.batch_shape, dtype=source._input_dtype,
                               name=source.name))
    return Sequential(layers, name=model.name, trainable=model.trainable)


def _clone_functional(model: Functional, clone, input_tensors, call_function) -> Functional:
    if input_tensors is None:
        input_tensors = map_structure(
            lambda t: Input(batch_shape=t.shape, dtype=t.dtype, name=t.name),
            model._inputs_struct)
    new_inputs = flatten(input_tensors)
    if len(new_inputs) != len(model.inputs) or \
            not all(isinstance(t, KerasTensor) for t in new_inputs):
        raise ValueError("clone_model: `input_tensors` must be KerasTensors with the same "
                         f"structure as model.input ({len(model.inputs)} tensors). Received: "
                         f"{len(new_inputs)} entries")
    tensors = {id(old): new for old, new in zip(model.inputs, new_inputs)}

    def swap(value):
        return tensors[id(value)] if isinstance(value, KerasTensor) else value

    for node in model._nodes:
        if isinstance(node.layer, InputLayer):
            continue
        layer = clone(node.layer)
        args, kwargs = map_structure(swap, (node.call_args, node.call_kwargs))
        outputs = call_function(layer, *args, **kwargs) if call_function \
            else layer(*args, **kwargs)
        for old, new in zip(node.output_tensors, flatten(outputs)):
            tensors[id(old)] = new
    outputs = map_structure(swap, model._outputs_struct)
    cls = type(model) if _functional_like(type(model)) else Functional
    return cls(input_tensors, outputs, name=model.name)


def _functional_like(cls) -> bool:
    """Whether `cls(inputs, outputs, name=...)` builds a functional model of that class."""
    return cls is Functional or cls.__init__ is Functional.__init__
