"""model.summary(): Keras 3's box-drawn table of layers, output shapes and parameter counts."""
from __future__ import annotations

import shutil
import textwrap

from kestrel.layers.node import flatten


def _format_size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.2f} GB"  # pragma: no cover


def _count(tensors) -> tuple[int, int]:
    numel = sum(t.numel() for t in tensors)
    return numel, sum(t.numel() * t.element_size() for t in tensors)


def _shape_text(layer, model_nodes) -> str:
    nodes = [n for n in layer._inbound_nodes if model_nodes is None or id(n) in model_nodes]
    if nodes:
        shapes = [t.shape for t in flatten(nodes[-1].outputs)]  # a shared layer: its last call
    else:
        shapes = _graph_output_shapes(layer) or _built_output_shapes(layer)
        if shapes is None:
            return "?"
    text = ["(" + ", ".join(str(d) for d in s) + ")" for s in shapes]  # Keras: (None) for (None,)
    if len(text) == 1:
        return text[0]
    # a model outside any graph writes its several outputs in parentheses, a node in brackets
    return ("[{}]" if nodes else "({})").format(", ".join(text))


def _graph_output_shapes(layer):
    """A functional or built Sequential model called in no graph: its own outputs' shapes."""
    from kestrel.models.model import Model

    outputs = getattr(layer, "outputs", None) if isinstance(layer, Model) else None
    return [t.shape for t in outputs] if isinstance(outputs, list) and outputs else None


def _built_output_shapes(layer):
    """A layer outside any graph (in a subclassed model), as Keras shows it: the output shapes
    its `compute_output_shape` gives for the shapes its build received (a layer that Keras
    builds at construction keeps none), else None."""
    build_config = layer.get_build_config() if layer.built else None
    if not build_config:
        return None
    try:
        if "shapes_dict" in build_config:  # a build of several shapes (query, value, ...)
            shape = layer.compute_output_shape(**build_config["shapes_dict"])
        else:
            shape = layer.compute_output_shape(tuple(build_config["input_shape"]))
    except Exception:  # noqa: BLE001 - NotImplementedError or a shape it cannot handle: "?"
        return None
    nested = isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple))
    return list(shape) if nested else [shape]


def _is_sequential_like(model) -> bool:
    nodes = getattr(model, "_nodes", None)
    if nodes is None:
        return True
    if len(model.inputs) > 1:
        return False
    layers = [n.layer for n in nodes]
    # one chain, as Keras judges by depth: outputs may be taken along it, but two ends (two
    # nodes nothing in the model reads) would share depth 0
    read = {id(parent) for n in nodes for parent in n.parent_nodes}
    return all(len(n.input_tensors) <= 1 for n in nodes) and \
        sum(id(n) not in read for n in nodes) == 1 and \
        all(sum(l is other for other in layers) == 1 for l in layers)


def _connections(layer, model_nodes) -> str:
    parts = []
    for node in layer._inbound_nodes:
        if id(node) not in model_nodes:
            continue
        for tensor in node.input_tensors:
            source, node_index, tensor_index = tensor._keras_history
            parts.append(f"{source.name}[{node_index}][{tensor_index}]")
    return ", ".join(parts) or "-"


def _column_widths(line_length: int, positions) -> list[int]:
    """Cell widths (padding included) as Keras' rich table lays them out in `line_length`."""
    if positions[-1] <= 1:
        bounds = [int(p * line_length) for p in positions]
    else:
        bounds = [int(p) for p in positions]
    widths = [b - a + 2 for a, b in zip([0] + bounds[:-1], bounds)]
    excess = sum(widths) - (line_length - len(widths) - 1)
    for index in range(len(widths)):  # rich shrinks every column evenly, rounding as it goes
        if excess <= 0:
            break
        cut = min(widths[index], round(excess / (len(widths) - index)))
        widths[index] -= cut
        excess -= cut
    return widths


def _console_text(lines: list[str]) -> str:
    """The lines as Keras' rich console renders them: each cropped to the terminal's width (a
    `line_length` wider than the terminal, or 80 columns when output is not one), each ended
    by a newline."""
    width = shutil.get_terminal_size().columns
    return "".join(line[:width] + "\n" for line in lines)


def print_summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False,
                  show_trainable=False, layer_range=None) -> None:
    """Print a summary of `model` (also available as `model.summary()`).

    As Keras 3, a `print_fn` is called once, with the whole text (newline-ended lines)."""
    sequential_like = _is_sequential_like(model)
    header = ["Layer (type)", "Output Shape", "Param #"]
    if sequential_like:
        default_length = 88
        positions = positions or [0.45, 0.8, 1.0]
    else:
        default_length = 108
        positions = positions or [0.3, 0.56, 0.74, 1.0]
        header.append("Connected to")
    if show_trainable:
        header.append("Trainable")
        default_length += 12
        positions = [p * 0.9 for p in positions] + [1.0]
    # as Keras, no wider than the terminal (80 columns when output is not a terminal)
    default_length = min(default_length, shutil.get_terminal_size().columns - 4)
    line_length = line_length or default_length
    widths = _column_widths(line_length, positions)
    right, center = {2}, {len(header) - 1} if show_trainable else set()
    model_nodes = {id(n) for n in getattr(model, "_nodes", [])} or None

    rows = []
    layers = getattr(model, "operations", model.layers)
    if layer_range is not None:
        names = [l.name for l in layers]
        start, end = names.index(layer_range[0]), names.index(layer_range[1]) + 1
        layers = layers[start:end]

    def add_rows(items, level=0):
        prefix = "   " * level + "└ " if level else ""
        for layer in items:
            built = layer.built
            identity = getattr(layer, "keras_identity", None)  # op nodes: Keras' op class
            kind = identity[1] if identity else type(layer).__name__
            row = [f"{prefix}{layer.name} ({kind})",
                   _shape_text(layer, None if prefix else model_nodes),
                   f"{layer.count_params():,}" if built else "0 (unbuilt)"]
            if not sequential_like:
                row.append(_connections(layer, model_nodes or set()))
            if show_trainable:
                row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
            rows.append(row)
            if expand_nested and hasattr(layer, "layers") and layer is not model:
                add_rows(getattr(layer, "operations", layer.layers), level + 1)

    add_rows(layers)

    def line(left, fill, sep, end):
        return left + sep.join(fill * w for w in widths) + end

    def cells(values, wrap=True):
        columns = []
        for index, (value, width) in enumerate(zip(values, widths)):
            inner = width - 2
            chunks = textwrap.wrap(value, inner, break_on_hyphens=False, break_long_words=False) \
                if wrap else [value]
            columns.append([c if len(c) <= inner else c[:inner - 1] + "…" for c in chunks] or [""])
        height = max(len(c) for c in columns)
        lines = []
        for i in range(height):
            parts = []
            for index, (column, width) in enumerate(zip(columns, widths)):
                text = column[i] if i < len(column) else ""
                if index in center:
                    pad = width - 2 - len(text)
                    text = " " * (pad // 2) + text + " " * (pad - pad // 2)
                else:
                    text = text.rjust(width - 2) if index in right else text.ljust(width - 2)
                parts.append(f" {text} ")
            lines.append(parts)
        return lines

    printed = []
    out = printed.append
    out(f'Model: "{model.name}"')
    out(line("┏", "━", "┳", "┓"))
    for parts in cells(header):
        out("┃" + "┃".join(parts) + "┃")
    out(line("┡", "━", "╇", "┩"))
    for index, row in enumerate(rows):
        for parts in cells(row):
            out("│" + "│".join(parts) + "│")
        if index < len(rows) - 1:
            out(line("├", "─", "┼", "┤"))
    out(line("└", "─", "┴", "┘"))

    printed.extend(_totals(model))

    text = _console_text(printed)
    if print_fn is None:
        print(text, end="")
    else:
        print_fn(text)


def _totals(model) -> list[str]:
    """The parameter-count lines under the table."""
    trainable, trainable_bytes = _count(model.trainable_weights)
    frozen, frozen_bytes = _count(model.non_trainable_weights)
    optimizer_vars = _optimizer_tensors(model)
    opt, opt_bytes = _count(optimizer_vars)
    total, total_bytes = trainable + frozen + opt, trainable_bytes + frozen_bytes + opt_bytes
    lines = [f" Total params: {total:,} ({_format_size(total_bytes)})",
             f" Trainable params: {trainable:,} ({_format_size(trainable_bytes)})",
             f" Non-trainable params: {frozen:,} ({_format_size(frozen_bytes)})"]
    if optimizer_vars:
        lines.append(f" Optimizer params: {opt:,} ({_format_size(opt_bytes)})")
    return lines


def _optimizer_tensors(model) -> list:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):
        return []
    import torch

    return [v for v in optimizer.variables if isinstance(v, torch.Tensor)]
