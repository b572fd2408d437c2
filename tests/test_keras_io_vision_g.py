"""keras.io vision examples (part g: patch_convnet, mnist_moe, next_frame_prediction,
oxford_pets segmentation, ...): the same miniature code runs with Kestrel and with real Keras
(torch backend); layouts, values and training behaviour agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _two_output_model(k):
    """patch_convnet: a subclassed model returns (logits, attention weights); its
    compute_loss and compute_metrics overrides pick the logits."""

    class TwoOutputs(k.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = k.layers.Dense(3)

        def call(self, x):
            logits = self.dense(x)
            return logits, k.ops.softmax(logits)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return super().compute_loss(x, y, y_pred[0], sample_weight)

        def compute_metrics(self, x, y, y_pred, sample_weight=None):
            return super().compute_metrics(x, y, y_pred[0], sample_weight)

    return TwoOutputs()


def test_fit_and_evaluate_call_a_compute_metrics_override():
    """patch_convnet: fit and evaluate update the metrics through the model's own
    compute_metrics, as Keras' built-in steps do (it sees the whole output tuple)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.integers(0, 3, (8, 1))
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        model = _two_output_model(k)
        model.compile(optimizer="adam",
                      loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[k.metrics.SparseCategoricalAccuracy(name="accuracy"),
                               k.metrics.SparseTopKCategoricalAccuracy(2, name="top2")])
        history = model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), verbose=0)
        got[lib] = history.history, model.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(got[kestrel][0]) == sorted(got[keras][0])
    for key, values in got[keras][0].items():
        np.testing.assert_allclose(got[kestrel][0][key], values, rtol=1e-5, atol=1e-6)
    assert got[kestrel][1].keys() == got[keras][1].keys()
    np.testing.assert_allclose(list(got[kestrel][1].values()), list(got[keras][1].values()),
                               rtol=1e-5)
