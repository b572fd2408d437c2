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
    for lib in (kestrel, keras):  # the scopes open at build time count, as in Keras
        with lib.name_scope("block"):
            created_inside = lib.layers.Dense(2, name="proj")
            built_inside = lib.layers.Dense(2, name="proj")
            built_inside.build((None, 3))
        created_inside.build((None, 3))
        assert created_inside.path == "proj"
        assert built_inside.path == "block/proj"


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


def _custom_step_model(lib):
    class Custom(lib.Model):
        def train_step(self, data):
            x, y = data
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
            self.zero_grad()
            loss.backward()
            self.optimizer.apply([v.value.grad for v in self.trainable_weights],
                                 self.trainable_weights)
            self._loss_tracker.update_state(loss)
            return self.compute_metrics(x, y, y_pred)

    inputs = lib.Input((4,))
    model = Custom(inputs, lib.layers.Dense(2)(inputs))
    model.compile(lib.optimizers.SGD(0.1), "mse", metrics=["mae"])
    return model


def test_compute_metrics_in_a_custom_train_step_matches_keras():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")
    ours, theirs = _custom_step_model(kestrel), _custom_step_model(keras)
    ours.set_weights(theirs.get_weights())
    assert (ours.run_eagerly, ours.jit_compile) == (False, False)
    a = ours.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history
    b = theirs.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history
    assert set(a) == set(b) == {"loss", "mae"}
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5)


def test_non_scalar_added_losses_are_summed():
    class Penalized(kestrel.layers.Layer):
        def call(self, x):
            self.add_loss(x.abs().mean(0))  # one value per feature, as Keras allows
            return x

    inputs = kestrel.Input((3,))
    model = kestrel.Model(inputs, Penalized()(inputs))
    model.compile("sgd")
    x = np.array([[1.0, -2.0, 3.0], [3.0, 2.0, -1.0]], "float32")
    assert model.evaluate(x, verbose=0) == 6.0


def test_one_output_in_a_list_is_returned_alone_as_keras():
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.arange(8) % 3
    for lib in (kestrel, keras):
        a = lib.Input((4,))
        model = lib.Model(inputs=[a], outputs=[lib.layers.Dense(3)(a)])
        assert isinstance(model.predict(x, verbose=0), np.ndarray)
        assert not isinstance(model(x), (list, tuple))
        model.compile("adam", lib.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=1, verbose=0)
        assert model.get_config()["output_layers"] == [[model.layers[-1].name, 0, 0]]
