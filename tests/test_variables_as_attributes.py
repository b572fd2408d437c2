"""Variables assigned as layer attributes are the layer's weights, as in Keras 3."""
import os

import numpy as np
import pytest
import torch

import kestrel

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")


def _counter_layer(lib):
    class Counting(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.scale = lib.Variable(np.ones((3,), "float32"), name="scale")
            self.calls = lib.Variable(0.0, trainable=False, name="calls")

        def build(self, input_shape):
            self.w = self.add_weight(name="kernel", shape=(input_shape[-1], 2))

        def call(self, inputs):
            self.calls.assign_add(1.0)
            return lib.ops.matmul(inputs * self.scale, self.w)

    return Counting(name="counting")


def test_attribute_variables_are_weights_in_keras_order():
    ours, theirs = _counter_layer(kestrel), _counter_layer(keras)
    x = np.ones((2, 3), "float32")
    ours(x), theirs(x)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    assert [w.name for w in ours.trainable_weights] == [w.name for w in theirs.trainable_weights]
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert float(ours.calls) == 1.0


def test_attribute_variables_train_save_and_load(tmp_path):
    inputs = kestrel.Input((3,))
    model = kestrel.Model(inputs, _counter_layer(kestrel)(inputs))
    model.compile("sgd", "mse")
    before = model.layers[1].scale.detach().clone()
    model.fit(np.random.rand(8, 3), np.random.rand(8, 2), epochs=1, batch_size=4, verbose=0)
    layer = model.layers[1]
    assert not torch.equal(layer.scale.detach(), before)  # trainable: the optimizer moved it
    assert float(layer.calls) >= 2.0                       # non-trainable state kept
    model.save_weights(tmp_path / "m.weights.h5")
    other = kestrel.Model(inputs2 := kestrel.Input((3,)), _counter_layer(kestrel)(inputs2))
    other.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_add_weight_assigned_under_another_name_is_not_counted_twice():
    layer = _counter_layer(kestrel)
    layer(np.ones((1, 3), "float32"))
    assert len(layer.weights) == 3


def test_weights_file_loads_in_keras(tmp_path):
    ours, theirs = _counter_layer(kestrel), _counter_layer(keras)
    x = np.random.RandomState(0).rand(2, 3).astype("float32")
    ours(x), theirs(x)
    ours_model = kestrel.Sequential([kestrel.Input((3,)), ours])
    theirs_model = keras.Sequential([keras.Input((3,)), theirs])
    ours_model.save_weights(tmp_path / "c.weights.h5")
    theirs_model.load_weights(tmp_path / "c.weights.h5")
    for a, b in zip(ours_model.get_weights(), theirs_model.get_weights()):
        np.testing.assert_array_equal(a, np.asarray(b))
