"""Keras 3 attribute names on layers and symbolic tensors, against real Keras 3."""
import os

import numpy as np
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402


class Counter(kestrel.layers.Layer):
    """A Keras 3-style layer: state made with add_variable, a tracked metric, compute_dtype."""

    def build(self, input_shape):
        self.count = self.add_variable((), "zeros", dtype="int32", trainable=False, name="count")
        self.scale = self.add_variable((input_shape[-1],), "ones", name="scale")
        self.seen = kestrel.metrics.Mean(name="seen")

    def call(self, x):
        self.count.assign_add(1)
        self.seen.update_state(x)
        return kestrel.ops.cast(x, self.compute_dtype) * self.scale


def test_variables_dtypes_metrics_and_path():
    layer = Counter(name="counter")
    layer(torch.ones(2, 3))
    assert [v.path for v in layer.trainable_variables] == ["counter/scale"]
    assert [v.path for v in layer.non_trainable_variables] == ["counter/count"]
    assert layer.metrics == [layer.seen] and len(layer.metrics_variables) == 2
    assert int(layer.count) == 1 and layer.path == "counter"
    assert (layer.compute_dtype, layer.variable_dtype, layer.input_dtype) == ("float32",) * 3
    mixed = kestrel.layers.Dense(2, dtype="mixed_bfloat16")
    theirs = keras.layers.Dense(2, dtype="mixed_bfloat16")
    assert (mixed.compute_dtype, mixed.variable_dtype, mixed.input_dtype) == \
        (theirs.compute_dtype, theirs.variable_dtype, theirs.input_dtype)


def test_path_is_set_once_built():
    for lib in (kestrel, keras):
        dense = lib.layers.Dense(2, name="proj")
        assert dense.path is None
        dense.build((None, 3))
        assert dense.path == "proj"
    with kestrel.name_scope("block"):
        scoped = kestrel.layers.Dense(2, name="proj")
    scoped.build((None, 3))
    assert scoped.path == "block/proj"


def test_model_variables_equal_weights():
    model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(2),
                                kestrel.layers.BatchNormalization()])
    assert all(a is b for a, b in zip(model.trainable_variables, model.trainable_weights))
    assert len(model.non_trainable_variables) == 2


def test_keras_tensor_reshape_and_squeeze():
    for lib in (kestrel, keras):
        x = lib.Input((1, 6))
        assert tuple(x.squeeze(1).shape) == (None, 6)
        assert tuple(x.reshape((-1, 2, 3)).shape) == (None, 2, 3)
    x = kestrel.Input((1, 6))
    model = kestrel.Model(x, x.squeeze(1).reshape((-1, 3, 2)))
    out = model(np.arange(12, dtype="float32").reshape(2, 1, 6))
    assert tuple(out.shape) == (2, 3, 2)
