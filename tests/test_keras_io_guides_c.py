"""The keras.io guides (quantization, RNNs, subclassing, callbacks, ...), run with Kestrel and
with real Keras 3 (torch backend): what differed, pinned against Keras."""
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (real Keras 3: the reference)

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402


def _numpy(lib, x):
    return np.asarray(lib.ops.convert_to_numpy(x))


def _percentile_quantizer(lib):
    """customizing_quantization: a Quantizer subclass scaled by a percentile of |x|."""

    class PercentileQuantizer(lib.quantizers.Quantizer):
        def __init__(self, percentile=99.9, value_range=(-127, 127), output_dtype="int8"):
            super().__init__(output_dtype=output_dtype)
            self.percentile, self.value_range = percentile, value_range

        def __call__(self, x, axis, to_numpy=False):
            ops = lib.ops
            top = ops.quantile(ops.abs(x), self.percentile / 100, axis=axis, keepdims=True)
            scale = ops.divide(self.value_range[1], ops.add(top, 1e-7))
            q = ops.clip(ops.round(ops.multiply(x, scale)), *self.value_range)
            return ops.cast(q, self.output_dtype), scale

        def get_config(self):
            return {"percentile": self.percentile, "value_range": self.value_range,
                    "output_dtype": self.output_dtype}

    return PercentileQuantizer


def _custom_quantized_outputs(lib, weights):
    lib = fresh(lib)
    q = lib.quantizers
    configs = [
        q.Int8QuantizationConfig(weight_quantizer=q.AbsMaxQuantizer(value_range=(-100, 100),
                                                                    axis=0),
                                 activation_quantizer=q.AbsMaxQuantizer(value_range=(-100, 100))),
        q.Int8QuantizationConfig(activation_quantizer=None),
        q.Int8QuantizationConfig(weight_quantizer=q.AbsMaxQuantizer(axis=0),
                                 activation_quantizer=_percentile_quantizer(lib)(90.0)),
        q.Int4QuantizationConfig(weight_quantizer=q.AbsMaxQuantizer(value_range=(-8, 7), axis=0),
                                 activation_quantizer=q.AbsMaxQuantizer(), block_size=None),
    ]
    x = np.random.default_rng(1).normal(size=(4, 10)).astype("float32")
    found = []
    for config in configs:
        model = lib.Sequential([lib.Input((10,)), lib.layers.Dense(8, activation="relu"),
                                lib.layers.Dense(1)])
        model.set_weights(weights)
        model.quantize(config=config)
        dense = model.layers[0]
        kernel = [w for w in dense.weights if w.path.endswith("/kernel")][0]  # int4: packed
        found.append((_numpy(lib, kernel), _numpy(lib, dense.kernel_scale),
                      type(dense.inputs_quantizer).__name__, _numpy(lib, model(x))))
    return found


def test_custom_quantizers_of_a_quantization_config_quantize_as_keras():
    weights = [np.random.default_rng(0).normal(size=s).astype("float32")
               for s in [(10, 8), (8,), (8, 1), (1,)]]
    ours, theirs = (_custom_quantized_outputs(lib, weights) for lib in (kestrel, keras))
    for (k, s, name, y), (k2, s2, name2, y2) in zip(ours, theirs):
        np.testing.assert_array_equal(k, k2)
        np.testing.assert_allclose(s, s2, rtol=1e-6)
        assert name == name2
        np.testing.assert_allclose(y, y2, rtol=1e-5, atol=1e-6)


def _reloaded_config(lib, tmp_path):
    lib = fresh(lib)
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2, name="d")])
    model.quantize("int8")
    path = str(tmp_path / f"{lib.__name__}.keras")
    model.save(path)
    return lib.saving.load_model(path).get_layer("d").get_config()["quantization_config"]


def test_a_reloaded_quantized_layer_keeps_its_quantization_config_as_keras(tmp_path):
    ours = _reloaded_config(kestrel, tmp_path)
    theirs = _reloaded_config(keras, tmp_path)
    assert ours == theirs and ours["class_name"] == "Int8QuantizationConfig"


def _scheduled_rates(lib):
    """training_with_built_in_methods: an optimizer on a schedule prints its current rate."""
    schedule = lib.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.96,
                                                         staircase=True)
    optimizer = lib.optimizers.RMSprop(learning_rate=schedule)
    return float(optimizer.learning_rate), "%.10f" % optimizer.learning_rate


def test_a_scheduled_learning_rate_reads_in_float32_as_keras():
    assert _scheduled_rates(kestrel) == _scheduled_rates(keras) == (
        0.10000000149011612, "0.1000000015")


def _guide_train_step_history(lib):
    """custom_train_step_in_torch: a train_step updating `self.metrics` with sample weights."""
    import torch

    class CustomModel(lib.Model):
        def train_step(self, data):
            x, y, sample_weight = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            loss.backward()
            gradients = [v.value.grad for v in self.trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, self.trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

    lib = fresh(lib)
    inputs = lib.Input((4,))
    model = CustomModel(inputs, lib.layers.Dense(1)(inputs))
    model.set_weights([np.full((4, 1), 0.1, "float32"), np.zeros(1, "float32")])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    x, y, w = rng.random((8, 4)), rng.random((8, 1)), rng.random((8, 1))
    history = model.fit(x, y, sample_weight=w, batch_size=4, epochs=2, shuffle=False,
                        verbose=0).history
    return history, [m.name for m in model.metrics]


def test_a_custom_train_step_updates_the_compiled_metrics_container_as_keras():
    (ours, our_names), (theirs, their_names) = (_guide_train_step_history(lib)
                                                for lib in (kestrel, keras))
    assert our_names == their_names == ["loss", "compile_metrics"]
    assert list(ours) == list(theirs) == ["mae", "loss"]  # Keras' order of the nested logs
    for key in theirs:  # "mae" was given as an unweighted metric: the weights skip it
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5)


def _symbolic_call_error(lib):
    """customizing_saving_and_serialization: a layer built for 8 features called on 4."""

    class Projection(lib.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(8, 2))

        def call(self, inputs):
            return lib.ops.matmul(inputs, self.w)

    layer = Projection()
    layer.build((None, 8))
    try:
        layer(lib.Input((4,)))
    except Exception as error:  # noqa: BLE001 - the class is what is compared
        return type(error)


def test_a_failing_symbolic_call_keeps_the_error_class_as_keras():
    assert _symbolic_call_error(kestrel) is _symbolic_call_error(keras) is RuntimeError


def test_a_learning_rate_converts_to_a_float32_array_as_keras():
    """writing_your_own_callbacks: a scheduler callback reads the optimizer's rate as NumPy."""
    ours, theirs = (lib.ops.convert_to_numpy(lib.optimizers.SGD(0.1).learning_rate)
                    for lib in (kestrel, keras))
    assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape == ()
    assert float(ours) == float(theirs)
