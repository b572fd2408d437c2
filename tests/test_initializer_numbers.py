"""Initial weights are Keras' numbers: after the same `clear_session()` + `set_random_seed()`,
Kestrel and real Keras (torch backend) build models with equal `get_weights()`."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402

RANDOM_INITIALIZERS = [
    ("RandomNormal", {}), ("RandomNormal", {"mean": 1.0, "stddev": 0.3, "seed": 4}),
    ("RandomUniform", {}), ("RandomUniform", {"minval": -2.0, "maxval": 3.0, "seed": 4}),
    ("TruncatedNormal", {}), ("TruncatedNormal", {"mean": 0.5, "stddev": 2.0, "seed": 9}),
    ("Orthogonal", {}), ("Orthogonal", {"gain": 2.0, "seed": 3}),
    ("GlorotUniform", {}), ("GlorotNormal", {}), ("HeUniform", {}), ("HeNormal", {}),
    ("LecunUniform", {}), ("LecunNormal", {}),
    ("VarianceScaling", {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}),
    ("VarianceScaling", {"mode": "fan_avg", "distribution": "uniform", "seed": 5}),
    ("VarianceScaling", {"scale": 0.5, "distribution": "normal"}),
    ("VarianceScaling", {"input_axes": [0], "output_axes": [-1]}),
]


def _same_weights(build):
    expected = build(fresh(keras)).get_weights()
    got = build(fresh(kestrel)).get_weights()
    assert [w.shape for w in got] == [w.shape for w in expected]
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name, kwargs", RANDOM_INITIALIZERS)
def test_each_initializer_draws_keras_values(name, kwargs):
    def draws(lib):
        init = getattr(lib.initializers, name)(**kwargs)
        # one initializer gives the same values on every call, as in Keras
        return [np.asarray(init(shape)) for shape in [(3, 5), (5, 3), (2, 2, 3, 4), (3, 5)]]

    got, expected = draws(fresh(kestrel)), draws(fresh(keras))
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)
    np.testing.assert_array_equal(got[0], got[3])


def test_unseeded_initializer_keeps_seed_none_in_config():
    fresh(kestrel)
    init = kestrel.initializers.GlorotUniform()
    assert init.get_config()["seed"] is None and isinstance(init.seed, int)
    assert kestrel.initializers.RandomNormal(seed=3).get_config()["seed"] == 3
    # a copy made from the config takes a new seed, as Keras' does
    clone = kestrel.initializers.get(kestrel.initializers.serialize(init))
    assert not np.allclose(np.asarray(clone((4, 4))), np.asarray(init((4, 4))))


def test_set_random_seed_not_torch_manual_seed_decides_initial_weights():
    fresh(kestrel)
    a = kestrel.layers.Dense(3)
    a.build((None, 4))
    fresh(kestrel)
    torch.manual_seed(123)
    b = kestrel.layers.Dense(3)
    b.build((None, 4))
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])


def test_sequential_mlp_with_dropout():
    _same_weights(lambda k: k.Sequential([
        k.Input((8,)), k.layers.Dense(16, activation="relu"), k.layers.Dropout(0.2),
        k.layers.Dense(8, kernel_initializer="he_normal", bias_initializer="random_normal"),
        k.layers.Dense(4)]))


def test_cnn_kernels_drawn_in_keras_layout():
    def build(k):
        L = k.layers
        return k.Sequential([
            k.Input((10, 10, 3)), L.Conv2D(4, 3), L.BatchNormalization(),
            L.DepthwiseConv2D(3, depth_multiplier=2), L.SeparableConv2D(3, 3),
            L.Conv2DTranspose(2, 3, kernel_initializer="orthogonal"), L.Flatten(), L.Dense(3)])

    _same_weights(build)


def test_conv1d_conv3d_and_conv_lstm():
    _same_weights(lambda k: k.Sequential([
        k.Input((3, 5, 5, 2)), k.layers.ConvLSTM2D(2, 3, return_sequences=True),
        k.layers.Conv3D(2, 2), k.layers.Reshape((-1, 2)), k.layers.Conv1D(2, 2),
        k.layers.Flatten(), k.layers.Dense(2)]))


def test_embedding_and_recurrent_layers():
    """Orthogonal recurrent kernels, the cells' SeedGenerators (SimpleRNN's made before its
    initializers, LSTM's and GRU's after) and Bidirectional's copies take Keras' seeds."""
    def build(k):
        L = k.layers
        return k.Sequential([
            k.Input((5,), dtype="int32"), L.Embedding(20, 6), L.LSTM(4, return_sequences=True),
            L.GRU(3, return_sequences=True), L.SimpleRNN(2, return_sequences=True, dropout=0.1),
            L.Bidirectional(L.LSTM(2)), L.Dense(1)])

    _same_weights(build)


def test_attention_projections():
    """Each projection gets its own copy of the initializer, with EinsumDense's fans; the
    attention dropout takes its seed between the value and output projections."""
    def build(k):
        L = k.layers
        x = k.Input((4, 6))
        y = L.MultiHeadAttention(2, 3)(x, x)
        y = L.MultiHeadAttention(2, 3, dropout=0.1, use_gate=True)(y, y)
        y = L.GroupQueryAttention(4, 2, 2, dropout=0.2)(y, y)
        y = L.EinsumDense("abc,cd->abd", (4, 3), bias_axes="d")(L.LayerNormalization()(y))
        return k.Model(x, L.Dense(2)(y))

    _same_weights(build)


def test_augmentation_layers_before_the_model_take_keras_seeds():
    """Keras' random image layers make a SeedGenerator at construction (RandomCrop also fixes
    its own seed, shown in its config; RandAugment makes nine sub-layers): the layers built
    after them get Keras' initial weights."""
    def build(k):
        L = k.layers
        augment = k.Sequential([L.RandomFlip(), L.RandomRotation(0.1), L.RandomCrop(6, 6),
                                L.RandAugment(value_range=(0, 1)), L.RandomContrast(0.2)])
        return k.Sequential([k.Input((8, 8, 3)), augment, L.Conv2D(2, 3), L.Flatten(),
                             L.Dense(2)])

    _same_weights(build)
    crop_seed = [fresh(lib).layers.RandomCrop(2, 2).get_config()["seed"]
                 for lib in (kestrel, keras)]
    assert crop_seed[0] == crop_seed[1] is not None
