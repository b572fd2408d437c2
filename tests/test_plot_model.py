"""plot_model / model_to_dot: graph structure, labels, nesting, file formats, clear errors."""
import builtins
import importlib
import re
import sys

import numpy as np
import pytest

pytest.importorskip("pydot")
matplotlib_image = pytest.importorskip("matplotlib.image")

import kestrel as keras  # noqa: E402
from kestrel import layers  # noqa: E402
from kestrel.layers.merging import Concatenate  # noqa: E402
from kestrel.utils.plot_model import model_to_dot, plot_model  # noqa: E402

# The module, not the function of the same name that kestrel.utils exports.
plot_module = importlib.import_module("kestrel.utils.plot_model")

needs_dot = pytest.mark.skipif(plot_module.shutil.which("dot") is None,
                               reason="Graphviz `dot` is not installed")


def _two_inputs():
    a = keras.Input(shape=(8,), name="in_a")
    b = keras.Input(shape=(4,), name="in_b")
    joined = Concatenate(name="join")([layers.Dense(3, activation="relu", name="da")(a),
                                       layers.Dense(3, name="db")(b)])
    return keras.Model([a, b], layers.Dense(1, name="score")(joined), name="two")


def _names(dot) -> dict:
    """node id -> layer name, read from the HTML labels."""
    nodes = {}
    for graph in [dot] + dot.get_subgraph_list():
        for node in graph.get_nodes():
            match = re.search(r"<b>([^<]+)</b> \(", node.get("label") or "")
            if match:
                nodes[node.get_name()] = match.group(1)
    return nodes


def _edges(dot) -> set:
    names = _names(dot)
    return {(names[e.get_source()], names[e.get_destination()]) for e in dot.get_edges()}


def test_functional_nodes_edges_and_shapes():
    model = _two_inputs()
    dot = model_to_dot(model, show_shapes=True, show_dtype=True)
    source = dot.to_string()
    for layer in model.layers:
        assert layer.name in source
    assert set(_names(dot).values()) == {"in_a", "in_b", "da", "db", "join", "score"}
    assert _edges(dot) == {("in_a", "da"), ("in_b", "db"), ("da", "join"), ("db", "join"),
                           ("join", "score")}
    assert "Input shape: <b>[(None, 3), (None, 3)]</b>" in source
    assert "Output shape: <b>(None, 1)</b>" in source and "float32" in source
    assert "(None, 8)" in source and "Input shape" not in _label(dot, "in_a")


def _label(dot, name):
    for node in dot.get_nodes():
        if f"<b>{name}</b>" in (node.get("label") or ""):
            return node.get("label")
    raise KeyError(name)


def test_options_change_the_labels():
    model = _two_inputs()
    plain = model_to_dot(model, show_layer_names=False).to_string()
    assert "<b>Dense</b>" in plain and "da" not in re.findall(r"<b>(\w+)</b>", plain)
    dot = model_to_dot(model, show_layer_activations=True, show_trainable=True, rankdir="LR",
                       dpi=72)
    assert "Activation: <b>relu</b>" in _label(dot, "da")
    assert "Trainable" in _label(dot, "score") and "Trainable" not in _label(dot, "in_a")
    model.get_layer("db").trainable = False
    assert "Non-trainable" in _label(model_to_dot(model, show_trainable=True), "db")
    assert dot.get("rankdir") == "LR" and str(dot.get("dpi")) == "72"


def test_sequential_chains_layers_and_nested_models_expand():
    inner = keras.Sequential([keras.Input(shape=(8,)), layers.Dense(5, name="i1"),
                              layers.Dense(3, name="i2")], name="inner")
    x = keras.Input(shape=(8,), name="x")
    outer = keras.Model(x, layers.Dense(1, name="head")(inner(x)), name="outer")
    assert _edges(model_to_dot(inner)) == {("i1", "i2")}
    assert _edges(model_to_dot(outer)) == {("x", "inner"), ("inner", "head")}
    expanded = model_to_dot(outer, expand_nested=True)
    cluster, = expanded.get_subgraph_list()
    assert cluster.get("label") == "inner"
    assert _edges(expanded) == {("x", "i1"), ("i2", "head")}
    assert {(_names(expanded)[e.get_source()], _names(expanded)[e.get_destination()])
            for e in cluster.get_edges()} == {("i1", "i2")}


def test_subclassed_model_is_one_box_and_unbuilt_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    with pytest.raises(ValueError, match="not yet been built"):
        model_to_dot(net)
    net.predict(np.zeros((1, 3), "float32"), verbose=0)
    assert list(_names(model_to_dot(net)).values()) == ["net"]


@needs_dot
@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_plot_model_writes_each_format(tmp_path, suffix):
    path = tmp_path / f"model.{suffix}"
    plot_model(_two_inputs(), to_file=path, show_shapes=True, dpi=96)
    data = path.read_bytes()
    if suffix == "png":
        image = matplotlib_image.imread(path)
        height, width = image.shape[:2]
        assert 200 < width < 3000 and 200 < height < 3000  # six boxes, two rows of inputs
    elif suffix == "svg":
        assert b"<svg" in data and b"Concatenate" in data
    else:
        assert data.startswith(b"%PDF")


@needs_dot
def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.png, \.svg or \.pdf"):
        plot_model(_two_inputs(), to_file=tmp_path / "model.docx")


def test_missing_pydot_or_graphviz_says_what_to_install(monkeypatch):
    model = _two_inputs()
    real_import = builtins.__import__

    def no_pydot(name, *args, **kwargs):
        if name == "pydot":
            raise ImportError("No module named 'pydot'")
        return real_import(name, *args, **kwargs)
    monkeypatch.delitem(sys.modules, "pydot", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_pydot)
    with pytest.raises(ImportError, match=r"pip install kestrel\[plot\].*apt-get install graphviz"):
        plot_model(model)
    monkeypatch.setattr(builtins, "__import__", real_import)
    monkeypatch.setattr(plot_module.shutil, "which", lambda name: None)
    with pytest.raises(ImportError, match=r"`dot` program.*apt-get install graphviz"):
        plot_model(model)
