"""keras.io vision examples not replayed elsewhere (3D image classification, AODNet, focal
modulation networks, monocular depth estimation, AdaMatch, Barlow Twins, consistency training,
Forward-Forward), condensed to tiny random data and one or two epochs, their TensorFlow parts
written with keras.ops and torch autograd, as their Keras 3 versions would. The same code runs
with real Keras 3 (torch backend) and with Kestrel: layouts, configs, summaries, histories and
predictions (after copying Keras' weights) agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


def _both(replay, *args):
    """`replay(lib, *args)` with real Keras, then with Kestrel, each in a fresh seeded session."""
    return replay(_fresh(keras), *args), replay(_fresh(kestrel), *args)


def _numpy(x):
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)


def _assert_same_history(got, expected, rtol=1e-4, atol=1e-5):
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=atol, err_msg=key)


# ---------------------------------------------------------------- summary of a subclassed model
def _stateless_layers_summary(keras):
    """A subclassed model that calls stateless layers outside any graph."""
    layers = keras.layers

    class Stack(keras.Model):
        def __init__(self):
            super().__init__()
            self.parts = [layers.Flatten(), layers.Permute((2, 1)), layers.UpSampling1D(),
                          layers.ZeroPadding1D(), layers.Cropping1D(), layers.Rescaling(2.0),
                          layers.Dropout(0.1), layers.ReLU(), layers.Reshape((-1,)),
                          layers.GlobalAveragePooling1D(), layers.MaxPooling1D(2)]

        def call(self, x):
            return [part(x) for part in self.parts]

    model = Stack()
    model(np.ones((2, 4, 6), "float32"))
    return _summary(model)


def test_summary_shows_shapes_of_stateless_layers_keras_builds_on_call():
    """Keras records the build shapes of a layer without `build` that it does not build at
    construction (Flatten, Permute, UpSampling1D, ...), so the summary of a subclassed model
    shows their output shapes; Dropout, ReLU, Reshape and the poolings stay '?'."""
    expected, got = _both(_stateless_layers_summary)
    assert "(2, 24)" in got
    assert got == expected
