"""Functional graphs to and from config: Keras 3 (`args`/`kwargs` nodes) and Keras 2 (lists)."""
from __future__ import annotations

import numpy as np
import torch

from kestrel.layers.core.input_layer import InputLayer
from kestrel.layers.node import KerasTensor, flatten, map_structure
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


def functional_config(model) -> dict:
    """Keras 3's Functional config: layers with `inbound_nodes`, `input_layers`, `output_layers`."""
    from kestrel.saving.keras_zip import compile_entry

    node_keys = {id(n) for n in model._nodes}
    # Node indices are renumbered per layer, counting only this model's nodes.
    reindex = {}
    for layer in model.operations:
        own = [n for n in layer._inbound_nodes if id(n) in node_keys]
        for new_index, node in enumerate(own):
            reindex[id(node)] = new_index

    def history(tensor: KerasTensor):
        layer, node_index, tensor_index = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        return [layer.name, reindex.get(id(node), node_index), tensor_index]

    def encode(value):
        if isinstance(value, KerasTensor):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": tuple(value.shape), "dtype": value.dtype,
                               "keras_history": history(value)}}
        if isinstance(value, (torch.Tensor, np.ndarray)):  # a constant argument: __tensor__
            return serialize_keras_object(value)
        if isinstance(value, slice):
            return {"class_name": "__slice__", "config": {
                "start": value.start, "stop": value.stop, "step": value.step}}
        if value is Ellipsis:
            return {"class_name": "__ellipsis__", "config": {}}
        return value

    layers = []
    for layer in model.operations:
        entry = serialize_keras_object(layer, "layers")
        build = layer.get_build_config()
        if build is not None:
            entry["build_config"] = build
        if hasattr(layer, "get_compile_config"):  # a nested model: as Keras, {} if not compiled
            entry["compile_config"] = compile_entry(layer)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [
            {"args": map_structure(encode, tuple(node.call_args)),  # tuples, as Keras
             "kwargs": map_structure(encode, node.call_kwargs)}
            for node in layer._inbound_nodes
            if id(node) in node_keys and node.input_tensors]
        layers.append(entry)

    def io_history(tensor: KerasTensor):
        ref = history(tensor)
        if hasattr(tensor._keras_history[0], "_init_graph"):
            ref[1] += 1  # Keras counts a nested functional model's own construction node here
        return ref

    def io(struct):  # nested as the model's inputs/outputs (`[heads, aux_heads]`), as Keras
        if isinstance(struct, dict):  # in the model's own key order, as Keras 3 writes it
            return {k: io(v) for k, v in struct.items()}
        if isinstance(struct, KerasTensor):  # as Keras: one `[name, node, index]`, not a list
            return io_history(struct)
        return [io(t) for t in struct]

    config = {"name": model.name, "trainable": model.trainable, "layers": layers,
              "input_layers": io(model._inputs_struct), "output_layers": io(model._outputs_struct)}
    if model._loss_tensors:  # Kestrel's own key: Keras 3 has no symbolic add_loss
        config["added_losses"] = io(model._loss_tensors)
    return config


def functional_from_config(cls, config: dict, custom_objects=None):
    """Rebuild a functional model, replaying every saved layer call in dependency order."""
    from kestrel.saving.model_config import deserialize_layer

    layers = {}
    pending = []  # (layer, node_config) in file order
    for entry in config["layers"]:
        layer = deserialize_layer(entry, custom_objects)
        layers[entry.get("name") or layer.name] = layer
        for node in entry.get("inbound_nodes", []):
            pending.append((layer, node))
    legacy = any(isinstance(node, list) for _, node in pending)
    graph = _Graph(layers, config["layers"], legacy)

    progress = True
    while pending and progress:
        progress = False
        for item in list(pending):
            layer, node = item
            try:
                args, kwargs = _decode_node(node, graph)
            except LookupError:
                continue
            graph.produced[_name_of(layers, layer)].append(layer(*args, **kwargs))
            pending.remove(item)
            progress = True
    if pending:
        names = sorted({layer.name for layer, _ in pending})
        raise ValueError(f"Functional config has layers whose inputs never appear: {names}")

    def lookup(ref):
        if not legacy and hasattr(layers.get(ref[0]), "_init_graph") and ref[1] > 0:
            ref = [ref[0], ref[1] - 1, *ref[2:]]  # Keras 3 counts the model's construction here
        return graph.lookup(ref)

    def io(spec):
        if isinstance(spec, dict):
            return {k: io(v) for k, v in spec.items()}
        if spec and not isinstance(spec[0], (list, tuple, dict)):
            return lookup(spec)
        return [io(s) for s in spec]
    inputs = io(config["input_layers"])
    outputs = io(config["output_layers"])
    if isinstance(outputs, list) and len(outputs) == 1 and isinstance(config["output_layers"][0], (list, tuple)) \
            and len(config["output_layers"]) == 1:
        outputs = outputs[0]
    if isinstance(inputs, list) and len(inputs) == 1:
        inputs = inputs[0]
    model = cls(inputs=inputs, outputs=outputs, name=config.get("name"),
                trainable=config.get("trainable", True))
    if config.get("added_losses"):
        model.add_loss([graph.lookup(spec) for spec in config["added_losses"]])
    return model


class _Graph:
    """The tensors each layer has produced so far, found by a saved `[name, node, tensor]`."""

    def __init__(self, layers: dict, entries: list, legacy: bool):
        self.layers = layers
        self.produced: dict[str, list] = {name: [] for name in layers}
        for name, layer in layers.items():
            if isinstance(layer, InputLayer):
                self.produced[name].append(layer.output_tensor)  # an InputLayer's own node 0
        # Keras 2 numbers a nested model's calls from 1 (node 0 is its own construction).
        self.first_node = {e.get("name"): int(legacy and _own_first_node(e)) for e in entries}
        self.node_counts = {e.get("name"): len(e.get("inbound_nodes") or [None]) for e in entries}

    def lookup(self, ref):
        """The tensor `ref` names; LookupError while its layer has not made it yet."""
        name, node_index, tensor_index = ref[0], ref[1], ref[2]
        outputs = self.produced.get(name)
        if outputs is None:
            raise ValueError(f"Functional config names an unknown layer {name!r}.")
        node_index -= self.first_node.get(name, 0)
        if not 0 <= node_index < len(outputs):
            raise LookupError(ref)
        return flatten(outputs[node_index])[tensor_index]

    def is_reference(self, value) -> bool:
        """Whether a Keras 2 call value `[name, node, tensor(, kwargs)]` names a layer output."""
        if not (isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)
                and all(type(i) is int for i in value[1:3])
                and (len(value) == 3 or isinstance(value[3], dict))):
            return False
        first = self.first_node.get(value[0], 0)
        return value[0] in self.layers and 0 <= value[1] - first < self.node_counts[value[0]]


def _own_first_node(entry: dict) -> bool:
    """Whether Keras 2 gave this nested model a construction node: any model built on inputs."""
    if entry.get("class_name") in ("Functional", "Model"):
        return True
    inner = (entry.get("config") or {}).get("layers") or [{}]
    return entry.get("class_name") == "Sequential" and (
        inner[0].get("class_name") == "InputLayer"
        or "batch_input_shape" in (inner[0].get("config") or {}))


def _name_of(layers: dict, layer) -> str:
    for name, candidate in layers.items():
        if candidate is layer:
            return name
    raise KeyError(layer.name)


_CONSTANT = "_CONSTANT_VALUE"  # Keras 2's marker for a plain value in the first call argument


def _decode_node(node, graph: _Graph):
    """A saved call: Keras 3 `{"args", "kwargs"}` or Keras 2 `[[name, node, tensor, kwargs], ...]`."""
    if isinstance(node, dict):
        def decode(value):
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                return graph.lookup(value["config"]["keras_history"])
            if isinstance(value, dict) and value.get("class_name") == "__slice__":
                return slice(*(value["config"].get(k) for k in ("start", "stop", "step")))
            if isinstance(value, dict) and value.get("class_name") == "__ellipsis__":
                return Ellipsis
            if isinstance(value, dict) and value.get("class_name") in ("__tensor__", "__numpy__"):
                return deserialize_keras_object(value, "layers")
            if isinstance(value, dict):
                return {k: decode(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):  # lists from a file, tuples from get_config
                return type(value)(decode(v) for v in value)
            return value
        return tuple(decode(node.get("args", []))), decode(node.get("kwargs", {}))
    return _decode_legacy_node(node, graph)


def _decode_legacy_node(node: list, graph: _Graph):
    """Keras 2: the first call argument as entries that all carry the other arguments as kwargs.

    Other tensors (`value=`, `mask=[...]`, positional ones, stored under their parameter names)
    are `[name, node, tensor]` lists inside those kwargs; any other value stays as it is.
    """
    entries = []

    def collect(value):  # entries in order; lists flatten as in Keras 2, dicts keep their keys
        if isinstance(value, list) and value and isinstance(value[0], str):
            entries.append(value)
            return entry_tensor(value)
        if isinstance(value, dict):
            return {k: collect(v) for k, v in value.items()}
        return [t for item in value for t in _as_list(collect(item))]

    def entry_tensor(entry):
        return entry[2] if entry[0] == _CONSTANT else graph.lookup(entry)
    first = collect(node)
    saved = entries[-1][3] if entries and len(entries[-1]) > 3 and entries[-1][3] else {}

    def resolve(value):
        if graph.is_reference(value):
            return graph.lookup(value)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value
    if isinstance(first, list) and len(first) == 1:
        first = first[0]
    return (first,), {k: resolve(v) for k, v in saved.items()}


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]
