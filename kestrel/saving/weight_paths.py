"""Where each weight of a model lives in Keras' files: group paths and weight names.

Keras 3 (`.weights.h5`, `.keras`) keys layers by structure: a model's `layers` become
`layers/<snake_case class name>[_N]`, sublayers sit under their attribute name, and each
layer's own variables are `vars/0..n`. Keras 2 (`.h5`) keys them by name:
`<layer>/<sublayer>/<weight>:0`.
"""
from __future__ import annotations

from torch import nn

from kestrel.layers.layer import Layer
from kestrel.layers.naming import to_snake_case


def is_graph_model(layer) -> bool:
    """True for Sequential and functional models, whose children are `model.layers`."""
    from kestrel.models.functional import Functional
    from kestrel.models.sequential import Sequential

    return isinstance(layer, (Sequential, Functional))


def own_weights(layer: Layer) -> list[str]:
    """A layer's own weight attributes as Keras 3 saves them: trainable, then non-trainable
    (or the fixed order a quantized layer saves its weights in)."""
    saved = getattr(layer, "_saved_weight_order", None)
    if saved is not None:
        return list(saved)
    order = layer._weight_order
    trainable = [a for a in order if isinstance(getattr(layer, a), nn.Parameter)]
    return trainable + [a for a in order if a not in trainable]


def _name_key(name: str) -> str:
    return f"~{name}" if name.startswith("_") else name


def _public_name(layer: Layer, key: str, child) -> str:
    """Keras visits public attributes first: `_query_dense` is saved as `query_dense` when a
    public attribute of that name returns the same sublayer."""
    public = key.lstrip("_")
    if public != key and public in dir(type(layer)):
        try:
            if getattr(layer, public) is child:
                return public
        except Exception:  # noqa: BLE001 - a property that cannot be read is simply not used
            return key
    return key


def _children(layer: Layer) -> list[tuple[str, object]]:
    """(attribute, sublayer or container of sublayers) in Keras' visiting order: attributes
    sorted by name, private ones last; a subclassed model's `layers` list is one of them."""
    if is_graph_model(layer):
        return [("layers", layer.layers)]
    from kestrel.models.model import Model

    children = {}
    for key, module in layer._modules.items():
        if not isinstance(module, Layer):
            continue
        attr, dot, _ = key.partition(".")
        if dot:  # a member of a list / dict / tuple attribute: the container is the child
            children.setdefault(attr, getattr(layer, attr, []))
        else:
            children[_public_name(layer, key, module)] = module
    if isinstance(layer, Model):
        children["layers"] = layer.layers
    return [(k, children[k]) for k in sorted(children, key=_name_key)]


def keras3_groups(model: Layer, skip=()) -> list[tuple[str, Layer]]:
    """(group path, layer) for every layer of `model` in the `.weights.h5` layout.

    The model itself is `""` (its own `vars/` at the root); a layer reached twice (shared) is
    listed once, at the first path, as Keras does. Layers in a container attribute are keyed
    by snake-case class name (`blocks/dense_1`), nested containers as `container[_N]`. The
    layers in `skip` are left out with everything below them (Keras' `objects_to_skip`).
    """
    out: list[tuple[str, Layer]] = []
    visited: set[int] = {id(layer) for layer in skip}

    def visit(layer: Layer, path: str) -> None:
        if id(layer) in visited:
            return
        visited.add(id(layer))
        out.append((path, layer))
        for attr, child in _children(layer):
            base = f"{path}/{attr}" if path else attr
            if isinstance(child, Layer):
                visit(child, base)
            else:
                visit_container(child, base)

    def visit_container(container, base: str) -> None:
        used: dict[str, int] = {}
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, Layer):
                visit(item, f"{base}/{_unique(to_snake_case(type(item).__name__), used)}")
            elif isinstance(item, (list, tuple, dict)):
                visit_container(item, f"{base}/{_unique('container', used)}")

    visit(model, "")
    return out


def _unique(name: str, used: dict[str, int]) -> str:
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _prefixes(layer: Layer) -> dict[int, str]:
    """Keras 2 name prefix of every (sub)layer: layer names joined by `/`; models add none."""
    prefixes: dict[int, str] = {}

    def visit(node: Layer, prefix: str) -> None:
        if id(node) in prefixes:
            return
        prefixes[id(node)] = prefix
        kids = node.layers if is_graph_model(node) else node._sublayers()
        for child in kids:
            visit(child, child.name if not prefix else f"{prefix}/{child.name}")

    visit(layer, "" if is_graph_model(layer) else layer.name)
    return prefixes


def legacy_weight_names(layer: Layer) -> list[tuple[str, Layer, str]]:
    """(Keras 2 weight name, owner, attribute) in Keras 2's `get_weights()` order.

    Example: `lstm/lstm_cell/kernel:0`; a nested model's names carry no model prefix.
    """
    prefixes = _prefixes(layer)
    out, used = [], set()
    for owner, attr in layer._legacy_weight_entries():
        prefix = prefixes.get(id(owner), owner.name)
        name = owner._keras_weight_names.get(attr, attr)
        base = f"{prefix}/{name}" if prefix else name
        name, n = base, 0
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        out.append((f"{name}:0", owner, attr))
    return out


def layout_of(model: Layer) -> dict[int, tuple | None]:
    """`id(tensor) -> (to_torch, to_keras)` or None, for every weight of `model`."""
    return {id(getattr(owner, attr)): owner._weight_layouts.get(attr)
            for owner, attr in model._weight_entries()}
