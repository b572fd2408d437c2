"""`keras.config.set_max_epochs` / `set_max_steps_per_epoch` cap fit, evaluate and predict."""
import numpy as np
import pytest

import kestrel

X = np.random.RandomState(0).rand(64, 3).astype("float32")
Y = np.random.RandomState(1).rand(64, 1).astype("float32")


@pytest.fixture
def limits():
    yield kestrel.config
    kestrel.config.set_max_epochs(None)
    kestrel.config.set_max_steps_per_epoch(None)


class _Count(kestrel.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.train, self.test, self.predict = 0, 0, 0

    def on_train_batch_end(self, batch, logs=None):
        self.train += 1

    def on_test_batch_end(self, batch, logs=None):
        self.test += 1

    def on_predict_batch_end(self, batch, logs=None):
        self.predict += 1


def test_limits_cap_epochs_and_steps_with_keras_warnings(limits):
    model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(1)])
    model.compile("sgd", "mse")
    limits.set_max_epochs(2)
    limits.set_max_steps_per_epoch(3)
    count = _Count()
    with pytest.warns(UserWarning, match="Limiting epochs to 2"):
        history = model.fit(X, Y, batch_size=8, epochs=5, verbose=0, callbacks=[count])
    assert len(history.history["loss"]) == 2 and count.train == 6
    with pytest.warns(UserWarning, match="Limiting steps_per_epoch to 3"):
        model.evaluate(X, Y, batch_size=8, verbose=0, callbacks=[count])
        predictions = model.predict(X, batch_size=8, verbose=0, callbacks=[count])
    assert count.test == 3 and count.predict == 3 and len(predictions) == 24


def test_no_limits_by_default():
    model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(X, Y, batch_size=8, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
