"""Functional graphs to and from config: Keras 3 (`args`/`kwargs` nodes) and Keras 2 (lists)."""
from __future__ import annotations

from kestrel.layers.core.input_layer import InputLayer
from kestrel.layers.node import KerasTensor, flatten, map_structure
from kestrel.saving.serialization import serialize_keras_object


def functional_config(model) -> dict:
    """Keras 3's Functional config: layers with `inbound_nodes`, `input_layers`, `output_layers`."""
    node_keys = {id(n) for n in model._nodes}
    # Node indices are renumbered per layer, counting only this model's nodes.
    reindex = {}
    for layer in model.layers:
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
                    "config": {"shape": list(value.shape), "dtype": value.dtype,
                               "keras_history": history(value)}}
        if isinstance(value, slice):
            return {"class_name": "__slice__", "config": {
                "start": value.start, "stop": value.stop, "step": value.step}}
        if value is Ellipsis:
            return {"class_name": "__ellipsis__", "config": {}}
        return value

    layers = []
    for layer in model.layers:
        entry = serialize_keras_object(layer, "layers")
        entry["name"] = layer.name
        build = layer.get_build_config()
        if build is not None and not hasattr(layer, "_init_graph"):
            entry["build_config"] = build
        entry["inbound_nodes"] = [
            {"args": map_structure(encode, list(node.call_args)),
             "kwargs": map_structure(encode, node.call_kwargs)}
            for node in layer._inbound_nodes
            if id(node) in node_keys and node.input_tensors]
        layers.append(entry)

    def io(struct):
        if isinstance(struct, dict):
            return {k: history(v) for k, v in struct.items()}
        if isinstance(struct, KerasTensor):
            return [history(struct)]
        return [history(t) for t in struct]

    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": io(model._inputs_struct), "output_layers": io(model._outputs_struct)}


def functional_from_config(cls, config: dict, custom_objects=None):
    """Rebuild a functional model, replaying every saved layer call in dependency order."""
    from kestrel.models.model import Model
    from kestrel.saving.model_config import deserialize_layer

    layers = {}
    pending = []  # (layer, node_config) in file order
    for entry in config["layers"]:
        layer = deserialize_layer(entry, custom_objects)
        name = entry.get("name") or layer.name
        layers[name] = layer
        for node in entry.get("inbound_nodes", []):
            pending.append((layer, node))
    produced: dict[str, list] = {name: [] for name in layers}
    for name, layer in layers.items():
        if isinstance(layer, InputLayer):
            produced[name].append(layer.output_tensor)  # an InputLayer's own node 0

    def lookup(ref):
        name, node_index, tensor_index = ref[0], ref[1], ref[2]
        outputs = produced.get(name)
        if outputs is None:
            raise ValueError(f"Functional config names an unknown layer {name!r}.")
        if node_index >= len(outputs) and isinstance(layers[name], Model) and node_index:
            node_index -= 1  # Keras 2 counts a nested model's own construction node first
        if node_index >= len(outputs):
            raise LookupError(ref)
        return flatten(outputs[node_index])[tensor_index]

    progress = True
    while pending and progress:
        progress = False
        for item in list(pending):
            layer, node = item
            try:
                args, kwargs = _decode_node(node, lookup)
            except LookupError:
                continue
            outputs = layer(*args, **kwargs)
            produced[_name_of(layers, layer)].append(outputs)
            pending.remove(item)
            progress = True
    if pending:
        names = sorted({layer.name for layer, _ in pending})
        raise ValueError(f"Functional config has layers whose inputs never appear: {names}")

    def io(spec):
        if isinstance(spec, dict):
            return {k: lookup(v) for k, v in spec.items()}
        if spec and not isinstance(spec[0], (list, tuple)):
            return lookup(spec)
        tensors = [lookup(s) for s in spec]
        return tensors
    inputs = io(config["input_layers"])
    outputs = io(config["output_layers"])
    if isinstance(outputs, list) and len(outputs) == 1 and isinstance(config["output_layers"][0], (list, tuple)) \
            and len(config["output_layers"]) == 1:
        outputs = outputs[0]
    if isinstance(inputs, list) and len(inputs) == 1:
        inputs = inputs[0]
    return cls(inputs=inputs, outputs=outputs, name=config.get("name"),
               trainable=config.get("trainable", True))


def _name_of(layers: dict, layer) -> str:
    for name, candidate in layers.items():
        if candidate is layer:
            return name
    raise KeyError(layer.name)


def _decode_node(node, lookup):
    """A saved call: Keras 3 `{"args", "kwargs"}` or Keras 2 `[[name, node, tensor, kwargs], ...]`."""
    if isinstance(node, dict):
        def decode(value):
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                return lookup(value["config"]["keras_history"])
            if isinstance(value, dict) and value.get("class_name") == "__slice__":
                return slice(*(value["config"].get(k) for k in ("start", "stop", "step")))
            if isinstance(value, dict) and value.get("class_name") == "__ellipsis__":
                return Ellipsis
            if isinstance(value, dict):
                return {k: decode(v) for k, v in value.items()}
            if isinstance(value, list):
                return [decode(v) for v in value]
            return value
        return tuple(decode(node.get("args", []))), decode(node.get("kwargs", {}))
    tensors = [lookup(ref) for ref in node]
    kwargs = dict(node[0][3]) if node and len(node[0]) > 3 and node[0][3] else {}
    return (tensors[0] if len(tensors) == 1 else tensors,), kwargs
