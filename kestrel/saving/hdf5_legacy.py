"""Keras 2's HDF5 layouts: `save_weights("x.h5")` and the whole-model legacy `.h5` file.

Weights are grouped by top-level layer name; each group's `weight_names` attribute lists its
datasets in `get_weights()` order. Readers follow `weight_names` literally, so files from
Keras 2 (`dense/kernel:0`) and Keras 3 (`seq/dense/kernel`) load alike.
"""
from __future__ import annotations

import json
import warnings

import h5py
import numpy as np

from kestrel.registry.bounds import load_json, short_repr
from kestrel.layers.weights import assign_keras_value, keras_value
from kestrel.saving.keras_weights import optimizer_state, restore_optimizer_state, to_numpy
from kestrel.saving.weight_paths import is_graph_model, legacy_weight_names

HEADER_LIMIT = 64512  # bytes an HDF5 object header can hold; longer lists are chunked
KERAS_VERSION = "3.15.1"  # the Keras release whose file layout Kestrel writes
BACKEND = "torch"


# ---------------------------------------------------------------------- attributes
def _decode(value):
    return value.decode("utf8") if isinstance(value, bytes) else value


def write_names(group, name: str, values: list[str]) -> None:
    """Store a list of strings as an attribute, split into `name0, name1, ...` if too long."""
    if not values:
        group.attrs[name] = np.zeros((0,))
        return
    data = np.array(values, dtype=h5py.string_dtype())
    chunks = 1
    while max(sum(len(v.encode()) for v in part) for part in np.array_split(data, chunks)) \
            > HEADER_LIMIT:
        chunks += 1
    if chunks == 1:
        group.attrs[name] = data
    else:
        for index, part in enumerate(np.array_split(data, chunks)):
            group.attrs[f"{name}{index}"] = part


def read_names(group, name: str) -> list[str]:
    """A string-list attribute, joining chunked `name0, name1, ...` parts."""
    if name in group.attrs:
        return [_decode(v) for v in np.atleast_1d(group.attrs[name])]
    out, index = [], 0
    while f"{name}{index}" in group.attrs:
        out.extend(_decode(v) for v in np.atleast_1d(group.attrs[f"{name}{index}"]))
        index += 1
    return out


def _read_subset(group) -> tuple[list[str], list[h5py.Dataset]]:
    """The names and datasets a group's `weight_names` lists; the data is read only when
    assigned, after its declared shape has been compared with the model's."""
    names = read_names(group, "weight_names")
    values = []
    for name in names:
        if not isinstance(group.get(name), h5py.Dataset):
            raise ValueError(f"The weights file is damaged: group '{group.name}' lists weight "
                             f"'{name}' but holds no such dataset.")
        values.append(group[name])
    return names, values


def _write_subset(group, entries: list[tuple[str, np.ndarray]]) -> None:
    write_names(group, "weight_names", [name for name, _ in entries])
    for name, value in entries:
        group.create_dataset(name, data=value)


# ---------------------------------------------------------------------- weights
def save_weights_to_group(group, model) -> None:
    """Write layout (a): `layer_names`, one group per layer, `top_level_model_weights`."""
    write_names(group, "layer_names", [layer.name for layer in model.layers])
    group.attrs["backend"] = BACKEND
    group.attrs["keras_version"] = KERAS_VERSION
    for layer in sorted(model.layers, key=lambda l: l.name):
        _write_subset(group.create_group(layer.name), [
            (name, to_numpy(keras_value(owner, attr)))
            for name, owner, attr in legacy_weight_names(layer)])
    _write_subset(group.create_group("top_level_model_weights"), [
        (f"{attr}:0", to_numpy(keras_value(model, attr))) for attr in model._weight_order])


def _fits(entries, values, label: str, skip_mismatch: bool) -> bool:
    """Whether file values fit a layer's weights; otherwise raise, or warn when skipping."""
    if len(values) != len(entries):
        message = (f"Weight count mismatch for {label}: the layer expects {len(entries)} "
                   f"weight(s), the file has {len(values)}.")
        if not skip_mismatch:
            raise ValueError(message)
        warnings.warn(f"Skipping loading weights for {label}: {message}", stacklevel=4)
        return False
    problems = []
    for (owner, attr), value in zip(entries, values):
        expected = tuple(keras_value(owner, attr).shape)
        if expected != tuple(value.shape):
            problems.append(f"weight {owner.name}/{attr} expects shape {expected}, the file "
                            f"has shape {tuple(value.shape)}")
    if problems:
        if not skip_mismatch:
            raise ValueError(f"Shape mismatch in {label}: " + "; ".join(problems) + ".")
        warnings.warn(f"Skipping loading weights for {label} due to a shape mismatch: "
                      + "; ".join(problems) + ".", stacklevel=4)
        return False
    return True


def _pairs(group, model, by_name: bool):
    """(layer, saved layer name, label) pairs to load, by layer name or by position."""
    names = read_names(group, "layer_names")
    if not names and "layer_names" not in group.attrs and "layer_names0" not in group.attrs:
        raise ValueError(f"'{group.file.filename}' is an HDF5 file but not a Keras weights "
                         "file: it has no `layer_names` attribute.")
    for name in names:
        if name not in group:
            raise ValueError(f"The weights file is damaged: layer '{name}' is listed in "
                             "`layer_names` but has no group.")
    if by_name:
        index: dict[str, list] = {}
        for layer in model.layers:
            index.setdefault(layer.name, []).append(layer)
        return [(layer, name, f"layer #{k} (named {name})")
                for k, name in enumerate(names) for layer in index.get(name, [])]
    layers = [layer for layer in model.layers if layer.weights]
    saved = [name for name in names if read_names(group[name], "weight_names")]
    if len(layers) != len(saved):
        raise ValueError(
            f"Layer count mismatch when loading weights from '{group.file.filename}': the "
            f"model has {len(layers)} layers with weights {[l.name for l in layers]}, the "
            f"file has {len(saved)}: {saved}. Build the same architecture, or pass "
            "by_name=True to load matching layer names only.")
    return [(layer, name, f"layer #{k} (named {layer.name}"
             + (f", saved as {name})" if name != layer.name else ")"))
            for k, (layer, name) in enumerate(zip(layers, saved))]


def load_weights_from_group(group, model, by_name: bool = False,
                            skip_mismatch: bool = False) -> None:
    """Read layout (a) into `model`: by layer order (topology) or by layer name.

    Every layer is checked before any weight is assigned, so a mismatch (without
    `skip_mismatch`) leaves the model unchanged.
    """
    plan = []
    for layer, name, label in _pairs(group, model, by_name):
        entries = layer._legacy_weight_entries()
        _, values = _read_subset(group[name])
        if _fits(entries, values, label, skip_mismatch):
            plan.append((entries, values))
    if "top_level_model_weights" in group:
        _, values = _read_subset(group["top_level_model_weights"])
        entries = [(model, attr) for attr in model._weight_order]
        if (values or entries) and _fits(entries, values, f"the top-level weights of model "
                                         f"'{model.name}'", skip_mismatch):
            plan.append((entries, values))
    for entries, values in plan:
        for (owner, attr), value in zip(entries, values):
            assign_keras_value(owner, attr, np.asarray(value))


# ---------------------------------------------------------------------- whole model
def legacy_model_config(model) -> dict:
    """`{"class_name", "config"}` as Keras 3 writes it into a legacy `.h5` file."""
    from kestrel.saving.model_config import model_to_dict

    entry = model_to_dict(model)
    config = dict(entry["config"])
    if isinstance(config.get("layers"), list):
        config["layers"] = [
            {k: v for k, v in layer.items() if k not in ("module", "registered_name",
                                                        "build_config")}
            for layer in config["layers"]]
    legacy = {"class_name": entry.get("registered_name") or entry["class_name"],
              "config": config}
    if not is_graph_model(model) and entry.get("build_config"):
        legacy["build_config"] = entry["build_config"]  # a subclassed model must be built
    return legacy


def save_model(model, filepath, include_optimizer: bool = True) -> None:
    """Write a whole-model legacy `.h5`: config, training config, weights, optimizer state."""
    from kestrel.saving.training_config import training_config

    with h5py.File(filepath, "w") as file:
        file.attrs["backend"] = BACKEND
        file.attrs["keras_version"] = KERAS_VERSION
        file.attrs["model_config"] = json.dumps(legacy_model_config(model), default=json_default)
        compiled = getattr(model, "compiled", False) and model.optimizer is not None
        if include_optimizer and compiled:
            file.attrs["training_config"] = json.dumps(training_config(model), default=json_default)
        save_weights_to_group(file.create_group("model_weights"), model)
        state = optimizer_state(model) if include_optimizer else []
        if state:
            _write_subset(file.create_group("optimizer_weights"), state)


def load_model(file: h5py.File, build, compile: bool, custom_objects=None):
    """Rebuild a model from an open legacy `.h5`; `build(config)` makes it from its config."""
    from kestrel.saving.training_config import restore_compile

    raw = file.attrs.get("model_config")
    if raw is None:
        raise ValueError(
            f"No model config found in '{file.filename}': it holds weights only. Create the "
            "model in code and call `model.load_weights()` instead.")
    model = build(_parse_json(raw, "model_config", file.filename))
    if "model_weights" not in file:
        raise ValueError(f"'{file.filename}' has a model config but no `model_weights` group.")
    load_weights_from_group(file["model_weights"], model)
    raw_training = file.attrs.get("training_config")
    if compile and raw_training is not None:
        restore_compile(model, _parse_json(raw_training, "training_config", file.filename), custom_objects)
        if "optimizer_weights" in file:
            _, values = _read_subset(file["optimizer_weights"])
            restore_optimizer_state(model, values)
    return model


def _parse_json(raw, what: str, filename: str):
    raw = _decode(raw)
    if not isinstance(raw, str):
        raise ValueError(f"'{filename}': the `{what}` attribute is not a JSON string.")
    return load_json(raw, f"'{filename}': the `{what}` attribute")


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Cannot store {short_repr(value)} (of type {type(value).__name__}) in a JSON config.")
