"""`plot_model` / `model_to_dot`: draw a model's layer graph with pydot and Graphviz.

Each layer is a box (its name, class and optionally shapes, dtype, activation, trainability);
each edge is a tensor passed from one layer to the next. Nested models are drawn as one box,
or as a dashed cluster of their own layers with `expand_nested=True`.
"""
from __future__ import annotations

import html
import os
import shutil

_INSTALL_HINT = ("Install pydot with `pip install kestrel[plot]` (or `pip install pydot`) and "
                 "the Graphviz `dot` program with `apt-get install graphviz` (macOS: "
                 "`brew install graphviz`).")


def _pydot():
    try:
        import pydot
    except ImportError:
        raise ImportError(f"You must install pydot for model plotting to work. "
                          f"{_INSTALL_HINT}") from None
    return pydot


def _check_built(model) -> None:
    if not model.built:
        raise ValueError(f"Model '{model.name}' has not yet been built. Build the model first "
                         "by calling `build()` or by calling the model on a batch of data.")


def _is_graph(model) -> bool:
    """Functional and Sequential models have a layer graph; subclassed ones are one box."""
    from kestrel.models.functional import Functional
    from kestrel.models.sequential import Sequential

    return isinstance(model, (Functional, Sequential))


def _node_in(layer, model):
    """The call of `layer` that belongs to `model`'s graph (None when never called)."""
    nodes = layer._inbound_nodes
    owned = getattr(model, "_nodes", None)
    if owned is not None:
        ids = {id(n) for n in owned}
        nodes = [n for n in nodes if id(n) in ids]
        return nodes[0] if nodes else None
    return nodes[-1] if nodes else None  # Sequential rebuilds: the latest call is current


def _format(values) -> str:
    return str(values[0]) if len(values) == 1 else "[" + ", ".join(map(str, values)) + "]"


def _activation_name(activation) -> str:
    return getattr(activation, "name", None) or getattr(activation, "__name__", None) \
        or str(activation)


def _cell(text: str, bgcolor: str = "white", span: int = 1, color: str | None = None) -> str:
    font = f' color="{color}"' if color else ""
    size = 16 if bgcolor == "black" else 14
    return (f'<td colspan="{span}" bgcolor="{bgcolor}"><font point-size="{size}"{font}>'
            f"{text}</font></td>")


def _label(layer, node, opts: dict) -> str:
    """A Graphviz HTML-like label: a title row, then a row of detail cells."""
    cls = type(layer).__name__
    details = []
    outputs = node.output_tensors if node is not None else []
    if opts["show_shapes"]:
        if cls != "InputLayer":
            inputs = [t.shape for t in node.input_tensors] if node is not None else []
            details.append(_cell(f"Input shape: <b>{_format(inputs) if inputs else '?'}</b>"))
        shapes = _format([t.shape for t in outputs]) if outputs else "?"
        details.append(_cell(f"Output shape: <b>{shapes}</b>"))
    if opts["show_dtype"]:
        dtypes = _format([t.dtype for t in outputs]) if outputs else "?"
        details.append(_cell(f"Output dtype: <b>{dtypes}</b>"))
    if opts["show_trainable"] and layer.weights:
        details.append(_cell("<b>Trainable</b>", "forestgreen", color="white") if layer.trainable
                       else _cell("<b>Non-trainable</b>", "firebrick", color="white"))
    span = max(1, len(details))
    title = f"<b>{html.escape(layer.name)}</b> ({cls})" if opts["show_layer_names"] \
        else f"<b>{cls}</b>"
    rows = [_cell(title, "black", span, color="white")]
    activation = getattr(layer, "activation", None)
    if opts["show_layer_activations"] and activation is not None:
        name = html.escape(_activation_name(activation))
        rows.append(_cell(f"Activation: <b>{name}</b>", span=span))
    if details:
        rows.append("".join(details))
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return f'<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">{body}</table>>'


class _Drawer:
    """Adds boxes and edges for one top-level model; node ids are stable, in draw order."""

    def __init__(self, pydot, opts: dict, expand_nested: bool):
        self.pydot, self.opts, self.expand = pydot, opts, expand_nested
        self.ids: dict[int, str] = {}

    def node_id(self, layer) -> str:
        return self.ids.setdefault(id(layer), f"layer_{len(self.ids)}")

    def add_box(self, graph, layer, model) -> None:
        node = self.pydot.Node(self.node_id(layer), label=_label(layer, _node_in(layer, model),
                                                                 self.opts))
        node.set("fontname", "Helvetica")
        node.set("margin", "0")
        graph.add_node(node)

    def add_edge(self, graph, source, destination, tensor_index=0, input_index=0) -> None:
        if self.expand:  # an edge touching a nested model goes to the layer inside it
            while _is_graph(source) and source.layers:
                outputs = getattr(source, "outputs", None)
                if outputs:
                    source, _, tensor_index = outputs[tensor_index]._keras_history
                else:
                    source, tensor_index = source.layers[-1], 0
            while _is_graph(destination) and destination.layers:
                if hasattr(destination, "_nodes"):  # functional: its InputLayer is drawn
                    destination = destination.inputs[input_index]._keras_history[0]
                else:  # Sequential: its InputLayer is not drawn
                    destination = destination.layers[0]
                input_index = 0
        src, dst = self.node_id(source), self.node_id(destination)
        if not graph.get_edge(src, dst):
            edge = self.pydot.Edge(src, dst)
            edge.set("penwidth", "2")
            graph.add_edge(edge)

    def draw(self, graph, model) -> None:
        """Boxes (or clusters) for the layers of `model`, then the edges between them."""
        if not _is_graph(model):
            self.add_box(graph, model, model)
            return
        layers = getattr(model, "operations", model.layers)
        for layer in layers:
            if self.expand and _is_graph(layer):
                cluster = self.pydot.Cluster(self.node_id(layer), style="dashed",
                                             label=layer.name, labeljust="l")
                self.draw(cluster, layer)
                graph.add_subgraph(cluster)
            else:
                self.add_box(graph, layer, model)
        owned = getattr(model, "_nodes", None)
        if owned is None:  # Sequential: each layer feeds the next
            for source, destination in zip(layers, layers[1:]):
                self.add_edge(graph, source, destination)
            return
        owned_ids = {id(n) for n in owned}
        for layer in layers:
            for node in layer._inbound_nodes:
                if id(node) not in owned_ids:
                    continue
                for input_index, tensor in enumerate(node.input_tensors):
                    source, _, tensor_index = tensor._keras_history
                    self.add_edge(graph, source, layer, tensor_index, input_index)


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True,
                 rankdir="TB", expand_nested=False, dpi=200, subgraph=False,
                 show_layer_activations=False, show_trainable=False, splines="ortho"):
    """The model's layer graph as a `pydot.Dot` (a `pydot.Cluster` with `subgraph=True`).

    Args:
        model: a built Kestrel model.
        show_shapes: show each layer's input and output shapes.
        show_dtype: show each layer's output dtype.
        show_layer_names: show layer names (else only class names).
        rankdir: `"TB"` (vertical) or `"LR"` (horizontal).
        expand_nested: draw nested models as clusters of their layers.
        dpi: image resolution in dots per inch.
        subgraph: return a dashed `pydot.Cluster` to embed in another graph.
        show_layer_activations: show the activation of layers that have one.
        show_trainable: mark layers with weights as trainable or not.
        splines: how Graphviz draws edges (`"ortho"`, `"spline"`, `"line"`, ...).
    """
    _check_built(model)
    pydot = _pydot()
    if subgraph:
        graph = pydot.Cluster(model.name, style="dashed", label=model.name, labeljust="l")
    else:
        graph = pydot.Dot(graph_type="digraph")
        for key, value in (("rankdir", rankdir), ("concentrate", True), ("dpi", dpi),
                           ("splines", splines)):
            graph.set(key, value)
        graph.set_node_defaults(shape="record")
    opts = {"show_shapes": show_shapes, "show_dtype": show_dtype,
            "show_layer_names": show_layer_names,
            "show_layer_activations": show_layer_activations, "show_trainable": show_trainable}
    _Drawer(pydot, opts, expand_nested).draw(graph, model)
    return graph


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=False, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False, splines="ortho"):
    """Draw the model's layer graph into `to_file`; the suffix picks the format (png, svg, pdf).

    Args: as `model_to_dot`, plus `to_file`, the image path (PNG when it has no suffix).

    Returns:
        An `IPython.display.Image` of the file when IPython is installed (not for PDF).
    """
    _check_built(model)
    pydot = _pydot()
    if shutil.which("dot") is None:
        raise ImportError(f"You must install Graphviz for plot_model to work: its `dot` "
                          f"program was not found on PATH. {_INSTALL_HINT}")
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:].lower() or "png"
    formats = pydot.Dot().formats
    if extension not in formats:
        raise ValueError(f"plot_model cannot write '.{extension}' files; use a suffix such as "
                         f".png, .svg or .pdf (Graphviz formats: {sorted(formats)}). "
                         f"Received: to_file={to_file}")
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                       show_layer_names=show_layer_names, rankdir=rankdir,
                       expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations,
                       show_trainable=show_trainable, splines=splines)
    dot.write(to_file, format=extension)
    if extension == "pdf":
        return None
    try:
        from IPython import display
    except ImportError:
        return None
    return display.Image(filename=to_file)
