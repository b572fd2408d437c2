"""Functional graphs with op nodes are written and read as Keras 3 writes them (op classes)."""
import json
import os

import numpy as np
import pytest

import kestrel

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

X = np.random.RandomState(0).rand(2, 3, 4).astype("float32")


def _graph(lib):
    a = lib.Input((3, 4))
    b = lib.layers.Dense(4)(a)
    c = a + b
    d = lib.ops.mean(c, axis=-1)
    e = lib.ops.concatenate([d[:, None], d[:, None] * 2], axis=1)
    f = lib.ops.cast(lib.ops.nn.relu(lib.ops.expand_dims(e, 1)), "float16")
    g = lib.ops.clip(lib.ops.sum(lib.ops.image.resize(lib.ops.expand_dims(c, -1), (6, 8)),
                                 axis=(1, 2, 3)), 0.1, 0.5)
    m = lib.ops.reshape(c, (-1, 12))
    h = lib.ops.where(m > 0.5, m, 0.0)
    i = lib.ops.image.rgb_to_grayscale(lib.ops.reshape(m, (-1, 2, 2, 3)))
    return lib.Model(a, [f, g, h, i])


def _same_predictions(first, second):
    for p, q in zip(first.predict(X, verbose=0), second.predict(X, verbose=0)):
        assert p.dtype == q.dtype
        np.testing.assert_allclose(np.asarray(p, "float32"), np.asarray(q, "float32"),
                                   rtol=1e-6, atol=1e-6)


def test_keras_graph_with_ops_loads_in_kestrel():
    theirs = _graph(keras)
    ours = kestrel.models.model_from_json(theirs.to_json())
    ours.set_weights(theirs.get_weights())
    _same_predictions(ours, theirs)


def test_kestrel_graph_with_ops_loads_in_keras_with_keras_class_names():
    ours = _graph(kestrel)
    config = json.loads(ours.to_json())["config"]["layers"]
    theirs_config = json.loads(_graph(keras).to_json())["config"]["layers"]
    assert [e["class_name"] for e in config] == [e["class_name"] for e in theirs_config]
    assert [e["module"] for e in config] == [e["module"] for e in theirs_config]
    mean = next(e for e in config if e["class_name"] == "Mean")
    assert mean["config"]["axis"] == -1
    theirs = keras.models.model_from_json(ours.to_json())
    theirs.set_weights(ours.get_weights())
    _same_predictions(ours, theirs)


def test_op_nodes_are_operations_not_layers_and_summarize_as_keras_classes():
    ours, theirs = _graph(kestrel), _graph(keras)
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    assert len(ours.operations) == len(theirs.operations)
    lines = []
    ours.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(Mean)" in text and "(RGBToGrayscale)" in text and "FunctionOp" not in text


def test_keras_file_with_ops_round_trips_through_dot_keras(tmp_path):
    theirs = _graph(keras)
    theirs.save(tmp_path / "ops.keras")
    ours = kestrel.models.load_model(tmp_path / "ops.keras")
    _same_predictions(ours, theirs)
    ours.save(tmp_path / "back.keras")
    _same_predictions(keras.models.load_model(tmp_path / "back.keras"), theirs)


def test_unknown_keras_op_class_is_refused():
    entry = {"module": "keras.src.ops.numpy", "class_name": "System",
             "config": {"name": "evil"}, "inbound_nodes": []}
    with pytest.raises(ValueError, match="Unknown Keras op class 'System'"):
        kestrel.models.model_from_json(json.dumps({
            "class_name": "Functional", "config": {"name": "m", "layers": [entry],
                                                   "input_layers": [], "output_layers": []}}))
