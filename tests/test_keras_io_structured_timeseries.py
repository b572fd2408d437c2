"""keras.io examples on structured data and time series (TabTransformer, FeatureSpace,
imbalanced classification, decision forests, collaborative filtering, weather/traffic
forecasting, EEG, time-series classification and anomaly detection): the same code runs with
Kestrel and with real Keras (torch backend); layouts, summaries and values agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _summary(model):
    lines = []
    model.summary(line_length=80, print_fn=lambda line, **kw: lines.append(line))
    return "\n".join(lines).strip()


def _tabular_inputs(k):
    """tabtransformer: one scalar Input per feature, categorical ones embedded."""
    inputs = {n: k.layers.Input(name=n, shape=(), dtype="float32") for n in ("age", "race")}
    race = k.layers.Embedding(input_dim=3, output_dim=4)(inputs["race"])
    age = k.ops.expand_dims(inputs["age"], -1)
    features = k.layers.concatenate([race, age])
    return k.Model(inputs, k.layers.Dense(1, activation="sigmoid", name="sigmoid")(features))


def test_summary_writes_one_dimensional_shapes_as_keras(tmp_path):
    """tabtransformer: scalar-feature Inputs show `(None)` in the summary, as Keras prints."""
    texts = [_summary(_tabular_inputs(_fresh(lib))) for lib in (kestrel, keras)]
    assert "│ (None)   " in texts[1]
    assert texts[0] == texts[1]


def test_loading_a_graph_does_not_take_op_names(tmp_path):
    """tabtransformer saves the baseline, then builds the next model: its ops are numbered as
    if the load had not happened (a loaded op keeps its saved name)."""
    names = []
    for lib in (kestrel, keras):
        model = _tabular_inputs(_fresh(lib))
        model.save(tmp_path / f"{lib.__name__}.keras")
        loaded = lib.models.load_model(tmp_path / f"{lib.__name__}.keras")
        again = _tabular_inputs(lib)
        names.append(([op.name for op in loaded.operations], [op.name for op in again.operations]))
    assert names[0] == names[1]
    assert "expand_dims_1" in names[0][1]
