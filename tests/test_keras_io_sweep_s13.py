"""keras-core's keras.io examples not replayed elsewhere (oxford pets segmentation, imbalanced
classification, weather and traffic forecasting, character-level LSTM, metric learning, captcha
OCR, Perceiver, Swin transformer, integrated gradients), condensed to tiny random data and one
or two epochs, their TensorFlow parts written with keras.ops and torch autograd. The same code
runs with real Keras 3 (torch backend) and with Kestrel: layouts, configs, summaries, histories
and predictions (after copying Keras' weights) agree. Where Keras 3 cannot run a part (it needs
TensorFlow, or fails on the torch backend), Kestrel's result is checked against the arrays or
the Keras functions that compute the same thing.
"""
import json
import os
import random

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


def _both(replay, *args):
    """`replay(lib, *args)` with real Keras, then with Kestrel, each in a fresh seeded session."""
    return replay(_fresh(keras), *args), replay(_fresh(kestrel), *args)


def _numpy(x):
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)


def _layout(model):
    """(class, name, parameter count, output shape) per layer."""
    return [(type(l).__name__, l.name, l.count_params(), tuple(l.output.shape))
            for l in model.layers]


def _assert_same_model(keras_model, kestrel_model, x, **predict_kwargs):
    """Same layout, config, weight paths and summary; with Keras' weights copied in, the same
    predictions (`predict_kwargs`: `training=False` calls the model instead of `predict`)."""
    assert _layout(kestrel_model) == _layout(keras_model)
    config = [json.loads(json.dumps(m.get_config(), default=str))
              for m in (keras_model, kestrel_model)]
    assert config[1] == config[0]
    assert [w.path for w in kestrel_model.weights] == [w.path for w in keras_model.weights]
    assert _summary(kestrel_model) == _summary(keras_model)
    kestrel_model.set_weights(keras_model.get_weights())
    if predict_kwargs:
        expected, got = keras_model(x, **predict_kwargs), kestrel_model(x, **predict_kwargs)
    else:
        expected, got = keras_model.predict(x, verbose=0), kestrel_model.predict(x, verbose=0)
    np.testing.assert_allclose(_numpy(got), _numpy(expected), rtol=1e-4, atol=1e-5)


def _assert_same_history(got, expected, rtol=1e-4, atol=1e-5):
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=atol, err_msg=key)


# ---------------------------------------------------------------- oxford pets segmentation
def _segmentation_model(keras, img_size, num_classes):
    """oxford_pets_image_segmentation's U-Net-like `get_model`, as written."""
    layers = keras.layers
    inputs = keras.Input(shape=img_size + (3,))
    x = layers.Conv2D(32, 3, strides=2, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x
    for filters in [64, 128, 256]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(filters, 1, strides=2, padding="same")(
            previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    for filters in [256, 128, 64, 32]:
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.UpSampling2D(2)(x)
        residual = layers.UpSampling2D(2)(previous_block_activation)
        residual = layers.Conv2D(filters, 1, padding="same")(residual)
        x = layers.add([x, residual])
        previous_block_activation = x
    outputs = layers.Conv2D(num_classes, 3, activation="softmax", padding="same")(x)
    return keras.Model(inputs, outputs)


def test_oxford_pets_image_segmentation(tmp_path):
    """Keras 3.15's torch backend fails the example's fit (the backward pass of its per-pixel
    softmax + sparse crossentropy: "grad_input must be contiguous"), so Kestrel's fit is checked
    through the file it writes: real Keras loads the best checkpoint and predicts the same."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 3, (8, 16, 16, 1)).astype("uint8")
    expected, got = _both(lambda k: _segmentation_model(k, (16, 16), 3))
    _assert_same_model(expected, got, x[:2])
    for model in (expected, got):
        model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    np.testing.assert_allclose(got.evaluate(x, y, verbose=0), expected.evaluate(x, y, verbose=0),
                               rtol=1e-5)
    path = str(tmp_path / "oxford_segmentation.keras")
    callbacks = [kestrel.callbacks.ModelCheckpoint(path, save_best_only=True)]
    history = got.fit(x, y, batch_size=4, epochs=2, validation_data=(x[:4], y[:4]),
                      callbacks=callbacks, verbose=0).history
    assert list(history) == ["loss", "val_loss"] and np.isfinite(history["loss"]).all()
    val_preds = [lib.models.load_model(path).predict(x[:2], verbose=0) for lib in (keras, kestrel)]
    np.testing.assert_allclose(val_preds[1], val_preds[0], rtol=1e-4, atol=1e-5)
    mask = np.expand_dims(np.argmax(val_preds[1][0], axis=-1), axis=-1)
    images = [lib.utils.array_to_img(mask) for lib in (keras, kestrel)]
    assert (images[1].size, images[1].mode) == (images[0].size, images[0].mode)
    np.testing.assert_array_equal(np.asarray(images[1]), np.asarray(images[0]))


# ---------------------------------------------------------------- imbalanced classification
def _imbalanced_classification(keras, tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 30)).astype("float32")
    targets = (rng.random((64, 1)) < 0.25).astype("uint8")
    counts = np.bincount(targets[:48, 0])
    model = keras.Sequential([
        keras.layers.Dense(256, activation="relu", input_shape=(features.shape[-1],)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    summary = _summary(model)
    metrics = [
        keras.metrics.FalseNegatives(name="fn"), keras.metrics.FalsePositives(name="fp"),
        keras.metrics.TrueNegatives(name="tn"), keras.metrics.TruePositives(name="tp"),
        keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall"),
    ]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                  metrics=metrics)
    pattern = str(tmp_path / f"{keras.__name__}_fraud_model_at_epoch_{{epoch}}.keras")
    history = model.fit(features[:48], targets[:48], batch_size=16, epochs=2, verbose=0,
                        callbacks=[keras.callbacks.ModelCheckpoint(pattern)],
                        validation_data=(features[48:], targets[48:]),
                        class_weight={0: 1.0 / counts[0], 1: 1.0 / counts[1]}).history
    reloaded = keras.models.load_model(pattern.format(epoch=1))
    return summary, history, reloaded.evaluate(features, targets, verbose=0, return_dict=True)


def test_imbalanced_classification(tmp_path):
    """Keras' training tp/fp/tn/fn in the history are the validation ones (its logs hold the
    metric variables, which evaluation then updates); Kestrel's are the training counts."""
    expected, got = _both(_imbalanced_classification, tmp_path)
    assert got[0] == expected[0]
    counts = {"fn", "fp", "tn", "tp"}
    assert list(got[1]) == list(expected[1])
    _assert_same_history({k: v for k, v in got[1].items() if k not in counts},
                         {k: v for k, v in expected[1].items() if k not in counts})
    for epoch in range(2):
        tp, fp, tn, fn = (got[1][name][epoch] for name in ("tp", "fp", "tn", "fn"))
        assert tp + fp + tn + fn == 48
        np.testing.assert_allclose(got[1]["precision"][epoch], tp / (tp + fp), rtol=1e-6)
        np.testing.assert_allclose(got[1]["recall"][epoch], tp / (tp + fn), rtol=1e-6)
    _assert_same_history({k: [v] for k, v in got[2].items()},
                         {k: [v] for k, v in expected[2].items()})


# ---------------------------------------------------------------- weather forecasting
def _weather_model(keras, inputs, targets, fit_data, val_data, tmp_path):
    """timeseries_weather_forecasting's LSTM, callbacks and fit as written."""
    inputs = keras.layers.Input(shape=(inputs.shape[1], inputs.shape[2]))
    lstm_out = keras.layers.LSTM(32)(inputs)
    outputs = keras.layers.Dense(1)(lstm_out)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
    path_checkpoint = str(tmp_path / f"{keras.__name__}_model_checkpoint.weights.h5")
    es_callback = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=5)
    modelckpt_callback = keras.callbacks.ModelCheckpoint(
        monitor="val_loss", filepath=path_checkpoint, verbose=0, save_weights_only=True,
        save_best_only=True)
    arrays = {"batch_size": 16, "shuffle": False} if isinstance(fit_data, tuple) else {}
    history = model.fit(*(fit_data if arrays else (fit_data,)), epochs=2,
                        validation_data=val_data, callbacks=[es_callback, modelckpt_callback],
                        verbose=0, **arrays)
    model.load_weights(path_checkpoint)
    return model, history.history


def test_timeseries_weather_forecasting(tmp_path):
    """Keras needs TensorFlow for `timeseries_dataset_from_array`: Kestrel's windows are checked
    against NumPy slicing, and Keras fits on those arrays (unshuffled, as a dataset is)."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 7)).astype("float32")
    step, past, future = 3, 30, 6
    sequence_length = int(past / step)
    x_train, y_train = data[:150], data[past + future:past + future + 150, 1:2]
    x_val, y_val = data[100:200 - past - future], data[100 + past + future:, 1:2]
    datasets = [kestrel.preprocessing.timeseries_dataset_from_array(
        x, y, sequence_length=sequence_length, sampling_rate=step, batch_size=16)
        for x, y in ((x_train, y_train), (x_val, y_val))]
    for batch in datasets[0].take(1):
        inputs, targets = batch
    assert inputs.numpy().shape == (16, sequence_length, 7) and targets.numpy().shape == (16, 1)
    arrays = []
    for (x, y), dataset in zip(((x_train, y_train), (x_val, y_val)), datasets):
        windows = np.concatenate([_numpy(b[0]) for b in dataset])
        starts = range(len(x) - (sequence_length - 1) * step)
        np.testing.assert_array_equal(
            windows, np.stack([x[i:i + sequence_length * step:step] for i in starts]))
        np.testing.assert_array_equal(np.concatenate([_numpy(b[1]) for b in dataset]),
                                      y[:len(windows)])
        arrays.append((windows, y[:len(windows)]))
    expected = _weather_model(_fresh(keras), inputs, targets, arrays[0], arrays[1], tmp_path)
    got = _weather_model(_fresh(kestrel), inputs, targets, datasets[0], datasets[1], tmp_path)
    _assert_same_history(got[1], expected[1])
    _assert_same_model(expected[0], got[0], arrays[1][0][:4])
