"""Keras 3's `.weights.h5` layout: weights found by structure and position, not by name.

```
layers/<snake_case class>[_N]/vars/{0,1,...}   @name = the layer's real name
layers/<lstm>/cell/vars/...                    sublayers under their attribute name
optimizer/vars/{0: iteration, 1: learning_rate, 2...: slots}
vars/                                          the model's own variables
```
"""
from __future__ import annotations

import warnings

import h5py
import numpy as np
import torch

from kestrel.layers.layer import Layer
from kestrel.layers.weights import assign_keras_value, keras_value
from kestrel.saving.weight_paths import keras3_groups, layout_of, own_weights


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.dtype is torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


# ---------------------------------------------------------------------- optimizer state
def optimizer_state(model, optimizer=None) -> list[tuple[str, np.ndarray]]:
    """(Keras 3 variable name, value) of a built optimizer (`model.optimizer` by default):
    iteration, learning rate, slots.

    Slots are converted to the Keras layout of their parameter.
    """
    optimizer = optimizer or getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):
        return []
    layouts = layout_of(model)
    slots = optimizer.slot_variables()
    names = optimizer.variable_names()
    head = optimizer.variables[: len(optimizer.variables) - len(slots)]
    out = [(f"{optimizer.name}/{name}", np.asarray(tensor.item(), dtype=dtype))
           for name, tensor, dtype in zip(names, head, (np.int32, np.float32))]
    for name, (index, _, tensor) in zip(names[len(names) - len(slots):], slots):
        layout = layouts.get(id(optimizer._params[index])) if index is not None else None
        value = layout[1](tensor) if layout else tensor
        out.append((f"{optimizer.name}/{name}", to_numpy(value)))
    return out


def attribute_optimizers(model, skip=()) -> list[tuple[str, object]]:
    """(group path, optimizer) of the optimizers that `model` and its layers hold as attributes
    (a GAN's `d_optimizer`), which Keras saves beside the layers; not `model.optimizer`, nor
    those in (or held by layers in) `skip`."""
    from kestrel.optimizers.optimizer import Optimizer

    found = []
    for path, layer in keras3_groups(model, skip):
        for attr in sorted(vars(layer)):
            value = vars(layer)[attr]
            if isinstance(value, Optimizer) and not (layer is model and attr == "optimizer") \
                    and not any(value is s for s in skip):
                found.append((f"{path}/{attr}" if path else attr, value))
    return found


def restore_optimizer_state(model, values: list, optimizer=None) -> bool:
    """Load Keras-layout optimizer values, arrays or HDF5 datasets (Keras 3 order; Keras 2's
    lacks the learning rate).

    Builds the optimizer on `model.trainable_weights` if needed. A state that does not fit
    is skipped with a warning (the optimizer starts fresh), as Keras does. Returns success.
    """
    optimizer = optimizer or model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_weights)
    slots = optimizer.slot_variables()
    n_head = len(optimizer.variables) - len(slots)
    largest = max((variable.numel() for variable in optimizer.variables), default=1)
    oversized = [tuple(v.shape) for v in values if np.prod(v.shape, dtype=object) > largest]
    if oversized:  # checked on the declared shapes, before any data is read
        warnings.warn(f"Skipping loading the optimizer state of '{optimizer.name}': the file "
                      f"declares a variable of shape {oversized[0]}, larger than any of the "
                      "optimizer's; the optimizer starts fresh.", stacklevel=3)
        return False
    values = [np.asarray(v) for v in values]
    if len(values) == len(slots) + 1 and n_head == 2:  # Keras 2: no learning_rate variable
        values.insert(1, np.asarray(optimizer.learning_rate, dtype=np.float32))
    elif len(values) == len(slots) + 2 and n_head == 1:  # saved rate; ours is a schedule
        del values[1]
    layouts = layout_of(model)
    try:
        if len(values) != len(slots) + n_head:
            raise ValueError(f"the file has {len(values)} optimizer variables, the optimizer "
                             f"has {len(slots) + n_head}")
        converted = values[:n_head]
        for (index, _, tensor), value in zip(slots, values[n_head:]):
            layout = layouts.get(id(optimizer._params[index])) if index is not None else None
            value = torch.as_tensor(value)
            converted.append(layout[0](value) if layout else value)
        optimizer.set_weights(converted)
    except ValueError as error:
        warnings.warn(f"Skipping loading the optimizer state of '{optimizer.name}' ({error}); "
                      "the optimizer starts fresh.", stacklevel=3)
        return False
    return True


# ---------------------------------------------------------------------- own variables
def save_own_variables(layer: Layer, store) -> None:
    """`Layer.save_own_variables`: the layer's own weights, Keras layout, as "0", "1", ..."""
    for index, attr in enumerate(own_weights(layer)):
        store[str(index)] = keras_value(layer, attr).detach()


def load_own_variables(layer: Layer, store) -> None:
    """`Layer.load_own_variables`: assign "0", "1", ... of `store` to the own weights."""
    attrs = own_weights(layer)
    if len(store.keys()) != len(attrs):
        if not attrs and not layer.built:
            raise ValueError(
                f"Layer '{layer.name}' was never built and thus it doesn't have any "
                f"variables. However the weights file lists {len(store.keys())} variables "
                "for this layer. Its `build()` (or `build_from_config()`) must create all "
                "of its state, including that of its sublayers.")
        raise ValueError(f"Layer '{layer.name}' expected {len(attrs)} variables, but received "
                         f"{len(store.keys())} variables during loading. Expected: "
                         f"{[getattr(layer, a).name for a in attrs]}")
    for index, attr in enumerate(attrs):
        assign_keras_value(layer, attr, np.asarray(store[str(index)]))


def _custom(layer: Layer, method: str) -> bool:
    """Whether `layer`'s class overrides `method` (then files go through it)."""
    return getattr(type(layer), method) is not getattr(Layer, method)


def _write_value(group: h5py.Group, key: str, value) -> None:
    if isinstance(value, torch.Tensor):
        dataset = group.create_dataset(key, data=to_numpy(value))
        if value.dtype is torch.bfloat16:
            dataset.attrs["dtype"] = "bfloat16"
    else:
        group.create_dataset(key, data=np.asarray(value))


# ---------------------------------------------------------------------- writing
def write_weights(file: h5py.File, model, include_optimizer: bool = True,
                  objects_to_skip=()) -> None:
    """Write every layer's variables (and a built optimizer's) into an open HDF5 file; a
    layer that overrides `save_own_variables` writes its own store. The layers and
    optimizers in `objects_to_skip` (and all below them) are left out, as Keras."""
    for path, layer in keras3_groups(model, objects_to_skip):
        group = file.create_group(f"{path}/vars" if path else "vars")
        group.attrs["name"] = layer.name
        if _custom(layer, "save_own_variables"):
            store = {}
            layer.save_own_variables(store)
            for key, value in store.items():
                _write_value(group, str(key), value)
            continue
        for index, attr in enumerate(own_weights(layer)):
            _write_value(group, str(index), keras_value(layer, attr))
    for path, optimizer in attribute_optimizers(model, objects_to_skip):
        _write_optimizer(file, path, optimizer, optimizer_state(model, optimizer))
    if include_optimizer and not _model_optimizer_skipped(model, objects_to_skip):
        _write_optimizer(file, "optimizer", getattr(model, "optimizer", None),
                         optimizer_state(model))


def _model_optimizer_skipped(model, objects_to_skip) -> bool:
    """Whether `objects_to_skip` holds the model or its `optimizer`."""
    optimizer = getattr(model, "optimizer", None)
    return any(o is model or optimizer is not None and o is optimizer for o in objects_to_skip)


def _write_optimizer(file: h5py.File, path: str, optimizer, state: list) -> None:
    if state:
        group = file.create_group(f"{path}/vars")
        group.attrs["name"] = optimizer.name
        for index, (_, value) in enumerate(state):
            group.create_dataset(str(index), data=value)


# ---------------------------------------------------------------------- reading
def _resolve(file: h5py.File, path: str):
    """The group at `path`, tolerating `_attr`/`attr` spellings and Keras 2.13's names."""
    group = file
    for part in path.split("/") if path else []:
        for candidate in (part, part.lstrip("_"), f"_{part}",
                          "_layer_checkpoint_dependencies" if part == "layers" else None):
            if candidate and candidate in group and isinstance(group[candidate], h5py.Group):
                group = group[candidate]
                break
        else:
            return None
    vars_group = group.get("vars")
    return vars_group if isinstance(vars_group, h5py.Group) else None


def _position(key: str) -> int:
    return int(key) if key.isdigit() else -1


def _mismatch(message: str, skip_mismatch: bool) -> None:
    if not skip_mismatch:
        raise ValueError(message)
    warnings.warn(f"Skipping loading weights: {message}", stacklevel=4)


def read_weights(file: h5py.File, model, skip_mismatch: bool = False,
                 load_optimizer: bool = False, objects_to_skip=()) -> None:
    """Load a `.weights.h5` layout into `model`, layer by layer in structural order.

    Every layer is checked before any weight is assigned, so a mismatch (without
    `skip_mismatch`) leaves the model unchanged. The layers and optimizers in
    `objects_to_skip` (and all below them) keep their values, as Keras.
    """
    used, plan, custom = _skipped_groups(file, model, objects_to_skip), [], []
    for path, layer in keras3_groups(model, objects_to_skip):
        attrs = own_weights(layer)
        group = _resolve(file, path)
        where = f"{path}/vars" if path else "vars"
        if group is not None:
            used.add(group.name)
        if _custom(layer, "load_own_variables"):  # the layer checks its own store
            custom.append((layer, group))
            continue
        saved = [group[k] for k in sorted(group, key=_position)] if group is not None else []
        if len(saved) != len(attrs):
            _mismatch(f"layer '{layer.name}' ({type(layer).__name__}) expects {len(attrs)} "
                      f"weights {attrs}, but the file has {len(saved)} at '{where}'.",
                      skip_mismatch)
            continue
        expected = [tuple(keras_value(layer, a).shape) for a in attrs]
        received = [tuple(d.shape) for d in saved]
        if expected != received:
            _mismatch(f"shape mismatch in layer '{layer.name}': the model expects shapes "
                      f"{expected} for {attrs}, the file has {received} at '{where}'.",
                      skip_mismatch)
            continue
        plan.append((layer, attrs, saved))
    attribute_states = []
    for path, optimizer in attribute_optimizers(model, objects_to_skip):
        group = _resolve(file, path)
        if isinstance(group, h5py.Group):
            used.add(group.name)
            attribute_states.append((optimizer, [group[k] for k in sorted(group, key=_position)]))
    _check_unused(file, used, skip_mismatch)
    for optimizer, values in attribute_states:  # an unbuilt one has no slots to fill yet
        if optimizer.built and values:
            restore_optimizer_state(model, values, optimizer)
    for layer, attrs, saved in plan:
        for attr, dataset in zip(attrs, saved):
            assign_keras_value(layer, attr, np.asarray(dataset))
    for layer, group in custom:
        layer.load_own_variables({key: np.asarray(group[key]) for key in group}
                                 if group is not None else {})
    if load_optimizer and getattr(model, "optimizer", None) is not None \
            and not _model_optimizer_skipped(model, objects_to_skip):
        group = file.get("optimizer/vars")
        if isinstance(group, h5py.Group) and len(group):
            restore_optimizer_state(model, [group[k] for k in sorted(group, key=_position)])


def _skipped_groups(file: h5py.File, model, objects_to_skip) -> set[str]:
    """The file's groups of the layers and attribute optimizers `objects_to_skip` leaves out
    (their saved weights are not extra)."""
    if not objects_to_skip:
        return set()

    def paths(skip):
        return {path for path, _ in keras3_groups(model, skip) + attribute_optimizers(model, skip)}

    groups = (_resolve(file, path) for path in paths(()) - paths(objects_to_skip))
    return {group.name for group in groups if group is not None}


def _check_unused(file: h5py.File, used: set, skip_mismatch: bool) -> None:
    """Weights in the file that no layer of the model took mean the structures differ."""
    extra = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and name.rsplit("/", 1)[-1] == "vars" and len(obj) \
                and not name.startswith("optimizer/") and obj.name not in used:
            extra.append(f"{name} (@name={obj.attrs.get('name', '?')})")
    file.visititems(visit)
    if extra:
        _mismatch(f"the file holds weights that no layer of the model matches: {extra}. "
                  "Keras 3 weight files are matched by structure: the model must have the "
                  "same layers, in the same order, as the saved one.", skip_mismatch)
