"""keras.io structured-data and time-series examples, second batch (structured data from
scratch, GRN/VSN classification, wide & deep & cross, feature engineering, Boston housing,
anomaly detection, customer lifetime value, EEG, timeseries transformers and LSTMs): the same
miniature code runs with Kestrel and with real Keras (torch backend); layouts, summaries,
configs, warnings and values agree.
"""
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _summary(model):
    lines = []
    model.summary(line_length=80, print_fn=lambda line, **kw: lines.append(line))
    return "\n".join(lines).strip()


def _heart_model(k):
    """structured_data_classification_from_scratch: a dict of inputs, some of them normalized
    (intermediate tensors), given in unsorted key order to a layer taking the dict."""
    layers = k.layers

    class Classifier(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(1, activation="sigmoid")

        def call(self, inputs):
            return self.dense(layers.concatenate(list(inputs.values())))

        def build(self, input_shape):
            self.built = True

    inputs = {"sex": layers.Input(name="sex", shape=(2,)),
              "age": layers.Dense(1)(layers.Input(name="age_raw", shape=(1,))),
              "cp": layers.Input(name="cp", shape=(3,))}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = k.Model(inputs, Classifier()(inputs))
    return model, [str(w.message) for w in caught]


def test_dict_inputs_with_intermediate_tensors_as_keras():
    """Keys unlike the tensors' names warn; layers, `Connected to` (dict arguments in sorted
    key order, kept Inputs on their new node) and the config's input_layers match Keras."""
    results = []
    for lib in (kestrel, keras):
        model, messages = _heart_model(_fresh(lib))
        results.append((messages, [l.name for l in model.layers], _summary(model),
                        model.get_config()["input_layers"]))
    assert len(results[1][0]) == 1 and "Received key 'age'" in results[1][0][0]
    assert "cp[1][0]" in results[1][2]
    assert results[0] == results[1]
