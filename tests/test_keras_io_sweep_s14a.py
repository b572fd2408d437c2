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



# ---------------------------------------------------------------- compile(metrics=[])
def _empty_metrics_compiled(keras, metrics, weighted_metrics):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(loss="mse", metrics=metrics, weighted_metrics=weighted_metrics)
    before = [m.name for m in model.metrics]
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    logs = model.evaluate(np.ones((4, 3)), np.ones((4, 2)), verbose=0, return_dict=True)
    return before, [m.name for m in model.metrics], sorted(logs)


def test_compile_with_empty_metrics_list_keeps_the_compile_metrics_container():
    """forwardforward compiles with `metrics=[]`: Keras still makes the (empty)
    "compile_metrics" container, which `model.metrics` lists; None makes none."""
    for metrics, weighted_metrics in ([], None), (None, []), ({"dense": []}, None):
        expected, got = _both(_empty_metrics_compiled, metrics, weighted_metrics)
        assert got == expected
        assert "compile_metrics" in got[0]
    expected, got = _both(_empty_metrics_compiled, None, None)
    assert got == expected == (["loss"], ["loss"], ["loss"])


def _assert_same_weights(keras_model, kestrel_model, rtol=1e-4, atol=1e-5):
    assert [w.path for w in kestrel_model.weights] == [w.path for w in keras_model.weights]
    for expected, got in zip(keras_model.get_weights(), kestrel_model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- 3D image classification
def _3d_image_classification(keras, tmp_path):
    """The example's `get_model` at its smallest input, fit on two CT-like volumes with its
    schedule, callbacks and 'acc' metric, then its best checkpoint (a legacy .h5) reloaded."""
    layers = keras.layers

    def get_model(width=128, height=128, depth=64):
        inputs = keras.Input((width, height, depth, 1))
        x = layers.Conv3D(filters=64, kernel_size=3, activation="relu")(inputs)
        x = layers.MaxPool3D(pool_size=2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Conv3D(filters=64, kernel_size=3, activation="relu")(x)
        x = layers.MaxPool3D(pool_size=2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Conv3D(filters=128, kernel_size=3, activation="relu")(x)
        x = layers.MaxPool3D(pool_size=2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Conv3D(filters=256, kernel_size=3, activation="relu")(x)
        x = layers.MaxPool3D(pool_size=2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.GlobalAveragePooling3D()(x)
        x = layers.Dense(units=512, activation="relu")(x)
        x = layers.Dropout(0.3)(x)
        outputs = layers.Dense(units=1, activation="sigmoid")(x)
        return keras.Model(inputs, outputs, name="3dcnn")

    model = get_model(width=46, height=46, depth=46)
    lr_schedule = keras.optimizers.schedules.ExponentialDecay(
        0.0001, decay_steps=100000, decay_rate=0.96, staircase=True)
    model.compile(loss="binary_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=lr_schedule), metrics=["acc"])
    checkpoint = str(tmp_path / f"{keras.__name__}_3d_image_classification.h5")
    checkpoint_cb = keras.callbacks.ModelCheckpoint(checkpoint, save_best_only=True)
    early_stopping_cb = keras.callbacks.EarlyStopping(monitor="val_acc", patience=15)
    volumes = np.random.default_rng(0).random((3, 46, 46, 46, 1)).astype("float32")
    labels = np.array([1, 0, 1])
    model.fit(volumes[:2], labels[:2], validation_data=(volumes[2:], labels[2:]), batch_size=2,
              epochs=1, shuffle=True, verbose=0, callbacks=[checkpoint_cb, early_stopping_cb])
    model.load_weights(checkpoint)
    prediction = model.predict(np.expand_dims(volumes[2], axis=0), verbose=0)[0]
    return model, model.history.history, prediction


def test_3d_image_classification(tmp_path):
    """Same summary, history (which `predict` leaves on the model, as Keras) and prediction
    of the reloaded checkpoint."""
    expected, got = _both(_3d_image_classification, tmp_path)
    assert _summary(got[0]) == _summary(expected[0])
    _assert_same_history(got[1], expected[1], rtol=1e-3)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-3)
