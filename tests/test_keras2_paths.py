"""Keras 2 module paths import the same objects as the Keras 3 ones."""
import importlib

import pytest

import kestrel


@pytest.mark.parametrize("module, name, expected", [
    ("kestrel.layers.core", "Dense", lambda: kestrel.layers.Dense),
    ("kestrel.layers.recurrent", "LSTM", lambda: kestrel.layers.LSTM),
    ("kestrel.layers.merge", "concatenate", lambda: kestrel.layers.concatenate),
    ("kestrel.layers.embeddings", "Embedding", lambda: kestrel.layers.Embedding),
    ("kestrel.layers.wrappers", "Bidirectional", lambda: kestrel.layers.Bidirectional),
    ("kestrel.layers.noise", "GaussianNoise", lambda: kestrel.layers.GaussianNoise),
    ("kestrel.layers.convolutional_recurrent", "ConvLSTM2D", lambda: kestrel.layers.ConvLSTM2D),
    ("kestrel.engine.topology", "Input", lambda: kestrel.Input),
    ("kestrel.engine.training", "Model", lambda: kestrel.Model),
    ("kestrel.engine.input_layer", "InputLayer", lambda: kestrel.layers.InputLayer),
    ("kestrel.utils.generic_utils", "get_custom_objects",
     lambda: kestrel.saving.get_custom_objects),
    ("kestrel.utils.vis_utils", "plot_model", lambda: kestrel.utils.plot_model),
])
def test_keras2_path_resolves(module, name, expected):
    assert getattr(importlib.import_module(module), name) is expected()


def test_unknown_name_on_an_alias_is_an_import_error():
    with pytest.raises(ImportError, match="Bogus"):
        exec("from kestrel.layers.noise import Bogus", {})
