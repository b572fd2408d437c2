"""keras.io NLP examples, part b (transformer and switch-transformer classifiers, multi-label
classification, masked language modelling, text generation, IMDB LSTM, token classification):
the same code runs with Kestrel and with real Keras (torch backend) and agrees.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _router(k):
    """text_classification_with_switch_transformer: a Router adds a load-balancing loss."""
    class Router(k.layers.Layer):
        def __init__(self):
            super().__init__()
            self.route = k.layers.Dense(3)

        def call(self, inputs):
            probs = k.ops.softmax(self.route(inputs))
            self.add_loss(k.ops.mean(probs) * 9.0)
            return probs

    return Router


def test_symbolic_calls_leave_no_losses_as_keras():
    """Building a functional or subclassed model adds no `losses`; a real call adds them."""
    found = {}
    for k in (keras, kestrel):
        Router = _router(_fresh(k))
        inputs = k.Input((4,))
        model = k.Model(inputs, k.layers.Dense(2)(Router()(inputs)))
        after_build = len(model.losses)
        model(np.ones((2, 4), "float32"))
        after_call = [float(loss) for loss in model.losses]

        class Wrapper(k.Model):
            def __init__(self):
                super().__init__()
                self.router = Router()

            def call(self, x):
                return self.router(x)

        wrapper = Wrapper()
        wrapper.build((None, 4))
        found[k] = (after_build, after_call, len(wrapper.losses))
    assert found[kestrel] == found[keras]
    assert found[keras][:1] == (0,) and found[keras][1] == [3.0] and found[keras][2] == 0
