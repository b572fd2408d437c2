"""A user's layer whose `call` takes `training` gets the mode in force, as in Keras: fit's
train step passes True, evaluate/predict False, an outer `training=` its value, and a plain
call leaves the signature's default."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402

X = np.ones((4, 3), "float32")
Y = np.ones((4, 1), "float32")


def _models(lib, seen):
    class Probe(lib.layers.Layer):
        def call(self, x, training=None):
            seen.append(training)
            return x

    class Subclassed(lib.Model):
        def __init__(self):
            super().__init__()
            self.probe = Probe()
            self.dense = lib.layers.Dense(1)

        def call(self, x, training=None):
            return self.dense(self.probe(x))

    inputs = lib.Input((3,))
    functional = lib.Model(inputs, lib.layers.Dense(1)(Probe()(inputs)))
    return {"functional": functional, "subclassed": Subclassed()}


def _trace(lib, kind):
    """What the probe saw in fit's last step, predict, a plain call and an explicit one."""
    seen = []
    model = _models(fresh(lib), seen)[kind]
    model.compile("sgd", "mse")
    model.fit(X, Y, epochs=1, verbose=0)
    trace = {"fit": seen[-1]}
    for label, run in (("evaluate", lambda: model.evaluate(X, Y, verbose=0)),
                       ("predict", lambda: model.predict(X, verbose=0)),
                       ("call", lambda: model(X)),
                       ("call_true", lambda: model(X, training=True)),
                       ("call_false", lambda: model(X, training=False))):
        seen.clear()
        run()
        trace[label] = seen[-1]
    return trace


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_user_layers_see_the_mode_in_force_as_keras(kind):
    ours, theirs = _trace(kestrel, kind), _trace(keras, kind)
    assert ours == theirs
    assert ours["fit"] is True and ours["predict"] is False and ours["call"] is None


def test_keras2_dropout_written_with_in_train_phase_drops_during_fit():
    k = fresh(kestrel)
    K = k.backend
    kept = []

    class CustomDropout(k.layers.Layer):
        def call(self, x, training=None):
            out = K.in_train_phase(lambda: x * 0.0, x, training=training)
            kept.append(float(K.sum(out)))
            return out

    inputs = k.Input((3,))
    model = k.Model(inputs, k.layers.Dense(1)(CustomDropout()(inputs)))
    model.compile("sgd", "mse")
    model.fit(X, Y, epochs=1, verbose=0)
    assert kept[-1] == 0.0  # training: the "dropped" branch
    kept.clear()
    model.predict(X, verbose=0)
    assert kept[-1] == float(X.sum())


def _dropped_in_custom_step(lib, run):
    """Whether Dropout(0.999) dropped anything in a train_step that calls the model plainly."""
    seen = []

    class Custom(lib.Model):
        def __init__(self):
            super().__init__()
            self.drop = lib.layers.Dropout(0.999)
            self.dense = lib.layers.Dense(1)

        def call(self, x, training=None):
            return self.dense(self.drop(x, training=training))

        def train_step(self, data):
            x = data[0]  # Keras' train_on_batch passes (x, y, sample_weight)
            seen.append(float(lib.ops.sum(self.drop(lib.ops.convert_to_tensor(x)))))
            return {}

    model = Custom()
    model(X)
    model.compile("sgd", "mse")
    run(model)
    return seen[-1] != float(X.sum())


@pytest.mark.parametrize("run", [lambda m: m.fit(X, Y, epochs=1, verbose=0),
                                 lambda m: m.train_on_batch(X, Y)], ids=["fit", "train_on_batch"])
def test_a_custom_train_step_calls_layers_in_inference_as_keras(run):
    assert _dropped_in_custom_step(fresh(kestrel), run) is False
    assert _dropped_in_custom_step(fresh(keras), run) is False
