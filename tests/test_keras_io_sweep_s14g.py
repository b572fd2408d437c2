"""keras.io vision examples not replayed elsewhere (third part of the folder), condensed to tiny
random data and one or two epochs, their TensorFlow parts written with keras.ops. The same code
runs with real Keras 3 (torch backend) and with Kestrel: histories, predictions, summaries,
weight paths and saved-model reloads agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread spares these replays thread contention on a busy
    machine; the previous setting is restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _both(replay, *args):
    """`replay(lib, *args)` with real Keras, then with Kestrel, each in a fresh seeded session."""
    return replay(_fresh(keras), *args), replay(_fresh(kestrel), *args)


def _numpy(x):
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype="float64")


def _assert_close(got, expected, rtol=1e-4, atol=1e-5):
    """Nested dicts (same keys, same order) / lists / tuples of numbers and strings agree,
    numbers approximately."""
    if isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            _assert_close(got[key], expected[key], rtol, atol)
    elif isinstance(expected, (list, tuple)) and any(
            isinstance(e, (str, dict, list, tuple, np.ndarray)) for e in expected):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _assert_close(g, e, rtol, atol)
    elif isinstance(expected, str):
        assert got == expected
    else:
        np.testing.assert_allclose(_numpy(got), _numpy(expected), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- xray_classification_with_tpus
def _xray(k, folder):
    """xray_classification_with_tpus (its Keras parts): unnamed Sequential blocks nested in a
    Sequential, SeparableConv2D, boolean labels with `class_weight`, Precision/Recall, fits with
    `steps_per_epoch`/`validation_steps`, then ModelCheckpoint(save_best_only), EarlyStopping
    (restore_best_weights) and an exponential LearningRateScheduler; the checkpoint reloads."""
    layers = k.layers

    def conv_block(filters):
        return k.Sequential([
            layers.SeparableConv2D(filters, 3, activation="relu", padding="same"),
            layers.SeparableConv2D(filters, 3, activation="relu", padding="same"),
            layers.BatchNormalization(), layers.MaxPool2D()])

    def dense_block(units, dropout_rate):
        return k.Sequential([layers.Dense(units, activation="relu"),
                             layers.BatchNormalization(), layers.Dropout(dropout_rate)])

    model = k.Sequential([
        k.Input(shape=(16, 16, 3)),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.MaxPool2D(), conv_block(8), conv_block(8), layers.Dropout(0.2),
        layers.Flatten(), dense_block(16, 0.7), dense_block(8, 0.3),
        layers.Dense(1, activation="sigmoid")])
    rng = np.random.default_rng(0)
    images, labels = rng.random((24, 16, 16, 3), dtype="float32"), rng.random(24) > 0.3
    val_data = (images[:8], labels[:8])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["accuracy", k.metrics.Precision(name="precision"),
                           k.metrics.Recall(name="recall")])
    count_normal, count_pneumonia = int((~labels).sum()), int(labels.sum())
    class_weight = {0: 24 / count_normal / 2.0, 1: 24 / count_pneumonia / 2.0}
    fit_args = dict(batch_size=8, steps_per_epoch=2, validation_data=val_data,
                    validation_steps=1, class_weight=class_weight, verbose=0)
    first = model.fit(images, labels, epochs=1, **fit_args)

    def exponential_decay(lr0, s):
        def exponential_decay_fn(epoch):
            return lr0 * 0.1 ** (epoch / s)
        return exponential_decay_fn

    path = os.path.join(folder, "xray_model.keras")
    callbacks = [k.callbacks.ModelCheckpoint(path, save_best_only=True),
                 k.callbacks.EarlyStopping(patience=10, restore_best_weights=True),
                 k.callbacks.LearningRateScheduler(exponential_decay(0.01, 20))]
    second = model.fit(images, labels, epochs=2, callbacks=callbacks, **fit_args)
    return {"summary": _summary(model), "first": first.history, "second": second.history,
            "evaluate": model.evaluate(*val_data, verbose=0),
            "predict": model.predict(val_data[0], verbose=0),
            "reloaded": k.models.load_model(path).predict(val_data[0], verbose=0),
            "weights": [w.path for w in model.weights]}


def test_xray_classification_matches_keras(tmp_path):
    expected, got = _both(_xray, str(tmp_path))
    _assert_close(got, expected)


def test_class_weight_accepts_boolean_labels():
    """Binary labels given as numpy booleans weight each sample by its class, as in Keras."""
    def weighted_loss(k):
        model = k.Sequential([k.Input((2,)), k.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="sgd", loss="binary_crossentropy")
        x, y = np.ones((4, 2), "float32"), np.array([True, False, False, False])
        return model.fit(x, y, class_weight={0: 1.0, 1: 3.0}, verbose=0).history["loss"]
    expected, got = _both(weighted_loss)
    _assert_close(got, expected)
