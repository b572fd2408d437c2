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


def test_dot_keeps_axes_as_given_and_raises_keras_error_types():
    """pointnet_segmentation: Dot(axes=(2, 1)) keeps the tuple in its config, as Keras; a
    wrong type of axes is a TypeError, a wrong length a ValueError."""
    import pytest

    for lib in (keras, kestrel):
        assert lib.layers.Dot(axes=(2, 1)).get_config()["axes"] == (2, 1)
        assert lib.layers.Dot(axes=[2, 1]).get_config()["axes"] == [2, 1]
        with pytest.raises(TypeError):
            lib.layers.Dot(axes="2")
        with pytest.raises(ValueError):
            lib.layers.Dot(axes=(1, 2, 3))


def test_pointnet_segmentation_head_trains_as_keras():
    """pointnet_segmentation: transformation blocks (Dot with axes=(2, 1), an activity
    regularizer on a Constant-biased Dense), MaxPool1D over all points then ops.tile, float64
    point clouds and a LearningRateScheduler: logs and predictions agree with Keras."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6, 3))
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, (8, 6))]
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        ops = k.ops

        class Orthogonal(k.regularizers.Regularizer):
            def __call__(self, w):
                w = ops.reshape(w, (-1, 3, 3))
                xxt = ops.reshape(ops.tensordot(w, w, axes=(2, 2)), (-1, 3, 3))
                return ops.sum(0.001 * ops.square(xxt - ops.eye(3)))

        points = k.Input((None, 3))
        h = k.layers.Conv1D(4, 1)(points)
        h = k.layers.BatchNormalization(momentum=0.0)(h)
        h = k.layers.GlobalMaxPooling1D()(h)
        t = k.layers.Dense(9, kernel_initializer="zeros",
                           bias_initializer=k.initializers.Constant(np.eye(3).flatten()),
                           activity_regularizer=Orthogonal())(h)
        t = k.layers.Reshape((3, 3))(t)
        h = k.layers.Dot(axes=(2, 1))([points, t])
        h = k.layers.Conv1D(4, 1, activation="relu")(h)
        g = ops.tile(k.layers.MaxPool1D(pool_size=6)(h), [1, 6, 1])
        h = k.layers.Concatenate()([h, g])
        model = k.Model(points, k.layers.Conv1D(3, 1, activation="softmax")(h))
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        schedule = k.callbacks.LearningRateScheduler(lambda epoch: 0.01 * 0.5 ** epoch)
        history = model.fit(x, y, batch_size=4, epochs=2, validation_data=(x[:4], y[:4]),
                            callbacks=[schedule], verbose=0)
        got[lib] = history.history, model.predict(x[:2], verbose=0)
    for key, values in got[keras][0].items():
        np.testing.assert_allclose(got[kestrel][0][key], values, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[kestrel][1], got[keras][1], rtol=1e-4, atol=1e-6)


def test_symbolic_reshape_of_batch_into_groups():
    """semantic_image_clustering: `ops.reshape(x, (-1, k, c))` on a batch of unknown size
    (neighbours flattened into the batch, then regrouped) gives Keras' shapes, summary rows and
    training, where placeholder runs with a batch of 1 could not be regrouped."""
    rng = np.random.default_rng(0)
    anchors = rng.normal(size=(6, 4)).astype("float32")
    neighbours = rng.normal(size=(6, 2, 4)).astype("float32")
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        ops = k.ops
        inner = k.Sequential([k.Input((4,)), k.layers.Dense(3, activation="softmax")])
        anchor = k.Input((4,), name="anchors")
        near = k.Input((2, 4), name="neighbours")
        near_flat = ops.reshape(near, (-1, 4))
        grouped = ops.reshape(inner(near_flat), (-1, 2, ops.shape(inner.output)[-1]))
        similarity = ops.einsum("bij,bkj->bik", ops.expand_dims(inner(anchor), 1), grouped)
        similarity = k.layers.Lambda(lambda t: ops.squeeze(t, axis=1))(similarity)
        model = k.Model([anchor, near], similarity)
        model.compile(optimizer="adam", loss="mse")
        loss = model.train_on_batch({"anchors": anchors, "neighbours": neighbours},
                                    np.ones((6, 2), "float32"))
        got[lib] = ([(op.name, op.output.shape) for op in model.operations],
                    near_flat.shape, grouped.shape, loss)
    assert got[kestrel][:3] == got[keras][:3]
    np.testing.assert_allclose(got[kestrel][3], got[keras][3], rtol=1e-5)


def test_symbolic_reshape_shapes_and_errors_match_keras():
    """Symbolic reshapes of known and unknown sizes give Keras' shapes; a known size that
    cannot be reshaped is Keras' ValueError."""
    import pytest

    cases = [((2, 6), (3, 4)), ((2, 6), 12), ((2, 6), (4, -1)), ((None, 2, 6), (-1, 3, 4)),
             ((None, 2, 6), (3, -1)), ((None, 6), (2, 3))]
    for shape, newshape in cases:
        expected = keras.ops.reshape(keras.Input(shape[1:], batch_size=shape[0]), newshape)
        got = kestrel.ops.reshape(kestrel.Input(shape[1:], batch_size=shape[0]), newshape)
        assert tuple(got.shape) == tuple(expected.shape), (shape, newshape)
    for lib in (keras, kestrel):
        for newshape in [(5, -1), (7,)]:
            with pytest.raises(ValueError):
                lib.ops.reshape(lib.Input((6,), batch_size=2), newshape)


def test_list_input_model_called_on_an_array_warns_as_keras():
    """visualizing_what_convnets_learn / grad_cam: `keras.Model(model.inputs, ...)` (a list of
    one input) called on a NumPy array warns that the structure differs, as Keras; a tensor,
    `[array]`, a single-input model and predict do not warn."""
    import warnings

    x = np.ones((1, 3), "float32")
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        inputs = k.Input((3,))
        outputs = k.layers.Dense(2)(inputs)
        calls = [lambda m: m(x), lambda m: m(k.ops.convert_to_tensor(x)), lambda m: m([x]),
                 lambda m: m.predict(x, verbose=0)]
        messages = []
        for model in (k.Model([inputs], outputs), k.Model(inputs, outputs)):
            for call in calls:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    call(model)
                messages.append([str(w.message) for w in caught
                                 if "structure of `inputs`" in str(w.message)])
        got[lib] = messages
    # a single-input model given `[array]` warns in both; Kestrel has made the array a tensor
    # by then, so its message shows a torch.Size where Keras shows a tuple
    assert [bool(m) for m in got[kestrel]] == [bool(m) for m in got[keras]]
    assert got[kestrel][:6] + got[kestrel][7:] == got[keras][:6] + got[keras][7:]
    assert got[keras][0] and not any(got[keras][1:6])
