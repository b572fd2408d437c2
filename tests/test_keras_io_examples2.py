"""keras.io examples (part 2) whose patterns once differed from Keras 3: the same code runs with
Kestrel and with real Keras (torch backend); names, shapes, parameter counts and logs must agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _endpoint_model(k):
    """endpoint_layer_pattern: a layer owns a metric and adds its loss."""
    class LogisticEndpoint(k.layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.loss_fn = k.losses.BinaryCrossentropy(from_logits=True)
            self.accuracy_metric = k.metrics.BinaryAccuracy(name="accuracy")

        def call(self, logits, targets=None):
            if targets is not None:
                self.add_loss(self.loss_fn(targets, logits))
                self.accuracy_metric.update_state(targets, logits)
            return k.ops.sigmoid(logits)

    inputs = k.Input((6,), name="inputs")
    targets = k.Input((1,), name="targets")
    preds = LogisticEndpoint()(k.layers.Dense(1)(inputs), targets)
    model = k.Model([inputs, targets], preds)
    model.compile(k.optimizers.Adam(1e-3))
    return model


def test_sublayer_metrics_are_logged():
    rng = np.random.default_rng(0)
    data = {"inputs": rng.random((8, 6)), "targets": (rng.random((8, 1)) > 0.5) * 1.0}
    logs = {}
    for k in (kestrel, keras):
        model = _endpoint_model(_fresh(k))
        history = model.fit(data, epochs=1, batch_size=4, verbose=0)
        logs[k.__name__] = sorted(history.history)
        assert [m.name for m in model.metrics][-1] == "accuracy"
    assert logs["kestrel"] == logs["keras"] == ["accuracy", "loss"]


def _trainer(k):
    """trainer_pattern: a Model whose train_step calls only a wrapped model (torch style)."""
    class MyTrainer(k.Model):
        def __init__(self, model):
            super().__init__()
            self.model = model
            self.loss_fn = k.losses.SparseCategoricalCrossentropy()
            self.accuracy_metric = k.metrics.SparseCategoricalAccuracy()

        @property
        def metrics(self):
            return [self.accuracy_metric]

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self.model(x, training=True)
            self.loss_fn(y, y_pred).backward()
            weights = list(self.trainable_weights)
            with torch.no_grad():
                self.optimizer.apply([v.value.grad for v in weights], weights)
            self.accuracy_metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

        def call(self, x):
            return self.model(x)

    inner = k.Sequential([k.Input((4, 4)), k.layers.Flatten(),
                          k.layers.Dense(3, activation="softmax")])
    trainer = MyTrainer(inner)
    trainer.compile(optimizer=k.optimizers.SGD())
    return trainer


def test_trainer_wrapping_a_model_is_built_by_fit():
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 4, 4)).astype("float32"), rng.integers(0, 3, 8)
    counts = {}
    for k in (kestrel, keras):
        trainer = _trainer(_fresh(k))
        history = trainer.fit(x, y, epochs=1, batch_size=4, verbose=0)
        assert list(history.history) == ["sparse_categorical_accuracy"]
        counts[k.__name__] = (trainer.built, trainer.count_params())
    assert counts["kestrel"] == counts["keras"] == (True, 51)


def test_steps_without_batch_size_cover_the_data():
    """timeseries_anomaly_detection under set_max_steps_per_epoch(2): predict sees every sample."""
    x = np.zeros((113, 3), "float32")
    for k in (kestrel, keras):
        model = _fresh(k).Sequential([k.Input((3,)), k.layers.Dense(2)])
        k.config.set_max_steps_per_epoch(2)
        try:
            assert model.predict(x, verbose=0).shape == (113, 2)
            assert model.predict(x, steps=3, verbose=0).shape == (113, 2)
        finally:
            k.config.set_max_steps_per_epoch(None)
