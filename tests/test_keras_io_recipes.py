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


def _mnist_model_class(lib):
    """packaging_keras_models_for_wide_distribution: "functional subclassing", a Model
    subclass whose constructor builds its graph and passes inputs and outputs up."""

    class MnistModel(lib.Model):
        def __init__(self, **kwargs):
            inputs = lib.layers.Input(shape=(None, None, 1), dtype="uint8")
            y = lib.layers.Rescaling(1 / 255.0)(inputs)
            y = lib.layers.Conv2D(4, 3, padding="same", activation="relu")(y)
            y = lib.layers.GlobalAveragePooling2D()(y)
            outputs = lib.layers.Dense(3, activation="softmax", name="classification_head")(y)
            super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    return MnistModel


def test_functional_subclassing_builds_a_graph_named_after_its_class(tmp_path):
    """The subclass is a functional model (layers, surgery on its graph) named after its
    class; its config is its constructor's (name, trainable, dtype) and it reloads by
    calling the class, from `from_config` and from a `.keras` file."""
    x = np.random.RandomState(0).randint(0, 255, (2, 6, 6, 1)).astype("uint8")
    seen = []
    for lib in (kestrel, keras):
        _fresh(lib)
        cls = _mnist_model_class(lib)
        model = cls()
        head = lib.layers.Dense(1, name="binary_head")(
            model.get_layer("classification_head").input)
        surgery = lib.Model(model.input, head)
        config = model.get_config()
        again = cls.from_config(config)
        model.save(tmp_path / f"{lib.__name__}.keras")
        loaded = lib.models.load_model(tmp_path / f"{lib.__name__}.keras",
                                       custom_objects={"MnistModel": cls})
        assert type(again) is cls and type(loaded) is cls
        np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0)),
                                   np.asarray(model.predict(x, verbose=0)), atol=1e-6)
        seen.append((model.name, again.name, sorted(config), [l.name for l in model.layers],
                     surgery.name, [l.name for l in surgery.layers]))
    assert seen[0] == seen[1]
    assert seen[1][0] == "mnist_model" and seen[1][2] == ["dtype", "name", "trainable"]


def test_flatten_layers_lists_nested_layers_in_keras_order():
    """float8_training_and_inference_with_transformer walks `model._flatten_layers()` to
    print the layers whose dtype policy quantization changed."""
    names = []
    for lib in (kestrel, keras):
        _fresh(lib)
        inner = lib.Sequential([lib.layers.Dense(2), lib.layers.Dense(3)], name="inner")
        inputs = lib.Input((4,))
        model = lib.Model(inputs, lib.layers.Dense(1)(inner(inputs)), name="outer")
        names.append([[layer.name for layer in model._flatten_layers(include_self=s,
                                                                     recursive=r)]
                      for s, r in ((True, True), (False, True), (True, False))])
    assert names[0] == names[1]
    assert names[1][0][:3] == ["outer", "input_layer", "inner"]
