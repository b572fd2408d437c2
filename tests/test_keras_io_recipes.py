"""keras.io keras_recipes, structured_data and timeseries examples not covered elsewhere
(knowledge distillation recipes, memory-efficient embeddings, mixture of experts, ...): the
same code runs with Kestrel and with real Keras (torch backend); configs, layouts and values
agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _config_keys(lib, make):
    return [list(layer.get_config()) for layer in make(lib.layers)]


def test_quantizable_layers_write_quantization_config_last_as_keras():
    """better_knowledge_distillation prints the classifier's config: `quantization_config`
    closes Dense / Embedding / EinsumDense configs, and a set activity regularizer follows
    `dtype` (where Keras' base Layer writes it)."""
    def make(L):
        return [L.Dense(2), L.Embedding(3, 2), L.EinsumDense("ab,bc->ac", 4),
                L.ReversibleEmbedding(3, 2), L.Dense(2, activity_regularizer="l2"),
                L.Embedding(3, 2, activity_regularizer="l1"), L.Dropout(0.1,
                activity_regularizer="l1"), L.ActivityRegularization(0.1)]
    ours, theirs = _config_keys(kestrel, make), _config_keys(keras, make)
    assert theirs[0][-1] == "quantization_config" and theirs[4][3] == "activity_regularizer"
    assert ours == theirs


def test_convolution_and_recurrent_configs_keep_keras_key_order():
    """Configs written to JSON (`to_json`, a `.keras` file) list keys in Keras' order."""
    def make(L):
        return [L.Conv2D(2, 3), L.Conv1D(2, 3, activity_regularizer="l1"),
                L.SeparableConv2D(2, 3), L.DepthwiseConv2D(3), L.Conv2DTranspose(2, 3),
                L.LSTM(2), L.GRU(2, activity_regularizer="l2"), L.LSTMCell(2), L.GRUCell(2),
                L.SimpleRNNCell(2), L.ConvLSTM2D(2, 3)]
    ours, theirs = _config_keys(kestrel, make), _config_keys(keras, make)
    assert theirs[0][3:5] == ["filters", "kernel_size"]
    assert ours == theirs


class _Doubler:
    """A custom layer class for the lib given (mixture_of_experts' MoE layers stand-in)."""

    @staticmethod
    def make(lib):
        class Doubler(lib.layers.Layer):
            def call(self, x):
                return x * 2

        return Doubler


def test_loading_an_unregistered_custom_layer_raises_type_error_as_keras(tmp_path):
    """mixture_of_experts / packaging recipe: loading without custom_objects is a TypeError
    in Keras 3 (Kestrel's error is a ValueError too, as Keras 2 raised)."""
    raised = []
    for lib in (kestrel, keras):
        inputs = lib.Input((3,))
        model = lib.Model(inputs, _Doubler.make(lib)()(inputs))
        path = tmp_path / f"{lib.__name__}.keras"
        model.save(path)
        for load in (lambda: lib.models.load_model(path),
                     lambda: lib.models.model_from_json(model.to_json())):
            try:
                load()
            except Exception as error:  # noqa: BLE001 - the type is what is compared
                raised.append(error)
    assert all(isinstance(error, TypeError) for error in raised) and len(raised) == 4
    assert isinstance(raised[0], ValueError) and "Doubler" in str(raised[0])


def test_add_weight_refuses_a_shape_that_is_not_integers_as_keras():
    """mixture_of_experts' Conv2DMoE reloaded from its config gets kernel_size as a list,
    which ends in its weight shape: Keras raises ValueError, not TypeError."""
    for lib in (kestrel, keras):
        layer = lib.layers.Layer(name="moe")
        assert tuple(layer.add_weight(shape=(np.int64(2), 3)).shape) == (2, 3)
        for shape in (([3, 3], 2), (2.0,), (-1,), "ab"):
            try:
                layer.add_weight(name="w", shape=shape)
                raise AssertionError(f"{lib.__name__} accepted shape={shape!r}")
            except ValueError:
                pass
