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
from tests.fresh_session import both as _both  # noqa: E402
from tests.keras_compare import as_numpy as _numpy  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


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
    history = got.fit(x, y, batch_size=4, epochs=1, validation_data=(x[:4], y[:4]),
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


# ---------------------------------------------------------------- character-level LSTM
def _lstm_text_generation(keras):
    text = "the quick brown fox jumps over the lazy dog. " * 4
    chars = sorted(list(set(text)))
    char_indices = dict((c, i) for i, c in enumerate(chars))
    indices_char = dict((i, c) for i, c in enumerate(chars))
    maxlen, step = 10, 3
    sentences, next_chars = [], []
    for i in range(0, len(text) - maxlen, step):
        sentences.append(text[i:i + maxlen])
        next_chars.append(text[i + maxlen])
    x = np.zeros((len(sentences), maxlen, len(chars)), dtype="bool")
    y = np.zeros((len(sentences), len(chars)), dtype="bool")
    for i, sentence in enumerate(sentences):
        for t, char in enumerate(sentence):
            x[i, t, char_indices[char]] = 1
        y[i, char_indices[next_chars[i]]] = 1
    model = keras.Sequential([keras.Input(shape=(maxlen, len(chars))),
                              keras.layers.LSTM(16),
                              keras.layers.Dense(len(chars), activation="softmax")])
    model.compile(loss="categorical_crossentropy",
                  optimizer=keras.optimizers.RMSprop(learning_rate=0.01))

    def sample(preds, temperature=1.0):
        preds = np.log(np.asarray(preds).astype("float64")) / temperature
        exp_preds = np.exp(preds)
        probas = np.random.multinomial(1, exp_preds / np.sum(exp_preds), 1)
        return np.argmax(probas)

    losses, generated = [], ""
    for epoch in range(2):
        losses += model.fit(x, y, batch_size=32, epochs=1, verbose=0).history["loss"]
        sentence = text[:maxlen]
        for i in range(8):
            x_pred = np.zeros((1, maxlen, len(chars)))
            for t, char in enumerate(sentence):
                x_pred[0, t, char_indices[char]] = 1.0
            next_char = indices_char[sample(model.predict(x_pred, verbose=0)[0], 0.5)]
            sentence = sentence[1:] + next_char
            generated += next_char
    return losses, generated, _summary(model)


def test_lstm_character_level_text_generation():
    """fit's shuffled batches and np.random's sampling draw alike after the same seed."""
    expected, got = _both(_lstm_text_generation)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    assert got[1:] == expected[1:]


# ---------------------------------------------------------------- metric learning
def _metric_learning(keras):
    """The example with two changes Keras 3's torch backend needs: `compute_loss` is called once
    before fit (else fit's build pass runs the model on the (2, classes, h, w, 3) batch and
    fails), and `train_step` unwraps a list too (Keras hands a PyDataset batch over as `[x]`)."""
    layers, ops = keras.layers, keras.ops
    num_classes, height_width = 10, 16
    rng = np.random.default_rng(0)
    x_train = rng.random((40, height_width, height_width, 3)).astype("float32")
    class_idx_to_train_idxs = {c: list(range(c, 40, num_classes)) for c in range(num_classes)}

    class AnchorPositivePairs(keras.utils.PyDataset):
        def __init__(self, num_batchs):
            super().__init__()
            self.num_batchs = num_batchs

        def __len__(self):
            return self.num_batchs

        def __getitem__(self, _idx):
            x = np.empty((2, num_classes, height_width, height_width, 3), dtype=np.float32)
            for class_idx in range(num_classes):
                examples_for_class = class_idx_to_train_idxs[class_idx]
                anchor_idx = random.choice(examples_for_class)
                positive_idx = random.choice(examples_for_class)
                while positive_idx == anchor_idx:
                    positive_idx = random.choice(examples_for_class)
                x[0, class_idx] = x_train[anchor_idx]
                x[1, class_idx] = x_train[positive_idx]
            return x

    class EmbeddingModel(keras.Model):
        def train_step(self, data):
            if isinstance(data, (tuple, list)):
                data = data[0]
            anchors, positives = data[0], data[1]
            self.zero_grad()
            anchor_embeddings = self(anchors, training=True)
            positive_embeddings = self(positives, training=True)
            similarities = ops.einsum("ae,pe->ap", anchor_embeddings, positive_embeddings)
            temperature = 0.2
            similarities /= temperature
            sparse_labels = ops.arange(num_classes)
            loss = self.compute_loss(y=sparse_labels, y_pred=similarities)
            loss.backward()
            gradients = [v.value.grad for v in self.trainable_variables]
            with torch.no_grad():
                self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(sparse_labels, similarities)
            return {m.name: m.result() for m in self.metrics}

    examples = next(iter(AnchorPositivePairs(num_batchs=1)))
    inputs = layers.Input(shape=(height_width, height_width, 3))
    x = layers.Conv2D(filters=32, kernel_size=3, strides=2, activation="relu")(inputs)
    x = layers.Conv2D(filters=64, kernel_size=3, strides=2, activation="relu")(x)
    x = layers.Conv2D(filters=128, kernel_size=3, strides=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    embeddings = layers.Dense(units=8, activation=None)(x)
    embeddings = keras.layers.UnitNormalization()(embeddings)
    model = EmbeddingModel(inputs, embeddings)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compute_loss(y=ops.arange(num_classes), y_pred=ops.zeros((num_classes, num_classes)))
    history = model.fit(AnchorPositivePairs(num_batchs=3), epochs=2, verbose=0)
    embeddings = model.predict(x_train[:20], verbose=0)
    gram_matrix = np.einsum("ae,be->ab", embeddings, embeddings)
    near_neighbours = np.argsort(gram_matrix.T)[:, -4:]
    return examples.shape, history.history, near_neighbours, model


def test_metric_learning():
    expected, got = _both(_metric_learning)
    assert got[0] == expected[0]
    _assert_same_history(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2])
    _assert_same_model(expected[3], got[3], np.random.default_rng(1).random((2, 16, 16, 3)))


def test_compute_loss_before_fit_builds_the_loss_as_keras():
    """A compiled loss built by `compute_loss` makes fit read no batch to build (nor draw a
    shuffle for it), so the PyDataset's shuffled batch order is Keras'."""
    def read_order(lib):
        read = []

        class Batches(lib.utils.PyDataset):
            def __len__(self):
                return 4

            def __getitem__(self, index):
                read.append(index)
                return np.full((2, 3), index, "float32"), np.zeros((2, 1), "float32")

        inputs = lib.Input((3,))
        model = lib.Model(inputs, lib.layers.Dense(1)(inputs))
        model.compile("sgd", "mse")
        model.compute_loss(y=np.zeros((2, 1), "float32"), y_pred=np.ones((2, 1), "float32"))
        model.fit(Batches(), epochs=2, verbose=0)
        return read

    expected, got = _both(read_order)
    assert got == expected
    assert sorted(got) == sorted(list(range(4)) * 2)


# ---------------------------------------------------------------- captcha OCR
_CAPTCHA_WIDTH, _CAPTCHA_HEIGHT, _CAPTCHA_LENGTH = 40, 16, 5


def _captcha_model(keras, num_classes):
    """captcha_ocr's model, its CTC layer written with keras.ops (the blank is the last class,
    as `ctc_batch_cost` takes it)."""
    layers, ops = keras.layers, keras.ops
    img_width, img_height = _CAPTCHA_WIDTH, _CAPTCHA_HEIGHT

    def ctc_batch_cost(y_true, y_pred, input_length, label_length):
        loss = ops.ctc_loss(ops.cast(y_true, "int32"), ops.log(y_pred + keras.backend.epsilon()),
                            ops.cast(ops.squeeze(label_length, -1), "int32"),
                            ops.cast(ops.squeeze(input_length, -1), "int32"),
                            mask_index=num_classes - 1)
        return ops.expand_dims(loss, 1)

    class CTCLayer(layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.loss_fn = ctc_batch_cost

        def call(self, y_true, y_pred):
            batch_len = ops.cast(ops.shape(y_true)[0], dtype="int64")
            input_length = ops.cast(ops.shape(y_pred)[1], dtype="int64")
            label_length = ops.cast(ops.shape(y_true)[1], dtype="int64")
            input_length = input_length * ops.ones(shape=(batch_len, 1), dtype="int64")
            label_length = label_length * ops.ones(shape=(batch_len, 1), dtype="int64")
            loss = self.loss_fn(y_true, y_pred, input_length, label_length)
            self.add_loss(loss)
            return y_pred

    input_img = layers.Input(shape=(img_width, img_height, 1), name="image", dtype="float32")
    labels = layers.Input(name="label", shape=(None,), dtype="float32")
    x = layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_normal",
                      padding="same", name="Conv1")(input_img)
    x = layers.MaxPooling2D((2, 2), name="pool1")(x)
    x = layers.Conv2D(64, (3, 3), activation="relu", kernel_initializer="he_normal",
                      padding="same", name="Conv2")(x)
    x = layers.MaxPooling2D((2, 2), name="pool2")(x)
    new_shape = ((img_width // 4), (img_height // 4) * 64)
    x = layers.Reshape(target_shape=new_shape, name="reshape")(x)
    x = layers.Dense(64, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Bidirectional(layers.LSTM(32, return_sequences=True, dropout=0.25))(x)
    x = layers.Bidirectional(layers.LSTM(16, return_sequences=True, dropout=0.25))(x)
    x = layers.Dense(num_classes, activation="softmax", name="dense2")(x)
    output = CTCLayer(name="ctc_loss")(labels, x)
    model = keras.models.Model(inputs=[input_img, labels], outputs=output, name="ocr_model_v1")
    model.compile(optimizer=keras.optimizers.Adam())
    return model


def _captcha_fit(keras, images, labels, num_classes):
    """The example's fit; its prediction model starts at `model.inputs[0]` (in Keras 3.15
    `model.get_layer(name="image").input`, an InputLayer's input, is `[]`)."""
    model = _captcha_model(keras, num_classes)
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10,
                                                   restore_best_weights=True)
    history = model.fit({"image": images[:8], "label": labels[:8]},
                        validation_data={"image": images[8:], "label": labels[8:]},
                        epochs=2, batch_size=4, callbacks=[early_stopping], verbose=0)
    prediction_model = keras.models.Model(model.inputs[0], model.get_layer(name="dense2").output)
    return model, history.history, prediction_model


def test_captcha_ocr():
    """StringLookup needs TensorFlow in Keras: Kestrel's lookups (with `invert`) encode the
    labels for both runs. Kestrel's Keras-2 `backend.ctc_batch_cost` / `ctc_decode` agree with
    Keras 3's `ops.ctc_loss` / `ops.ctc_decode` with the last class as the blank."""
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("abcd23"), _CAPTCHA_LENGTH)) for _ in range(12)]
    characters = sorted(set(char for label in texts for char in label))
    layers = kestrel.layers
    char_to_num = layers.StringLookup(vocabulary=list(characters), mask_token=None)
    num_to_char = layers.StringLookup(vocabulary=char_to_num.get_vocabulary(), mask_token=None,
                                      invert=True)
    assert char_to_num.get_vocabulary() == ["[UNK]"] + characters
    labels = np.stack([_numpy(char_to_num(list(text))) for text in texts]).astype("float32")
    assert ["".join(num_to_char(label.astype("int64"))) for label in labels] == texts
    images = rng.random((12, _CAPTCHA_WIDTH, _CAPTCHA_HEIGHT, 1)).astype("float32")
    num_classes = len(char_to_num.get_vocabulary()) + 1
    expected, got = _both(_captcha_fit, images, labels, num_classes)
    _assert_same_history(got[1], expected[1], rtol=1e-5, atol=1e-4)
    _assert_same_model(expected[0], got[0], {"image": images[:4], "label": labels[:4]})
    _assert_same_model(expected[2], got[2], images[8:])
    logits = 4 * rng.normal(size=expected[2].output.shape[1:]).astype("float32")
    preds = keras.ops.convert_to_numpy(keras.ops.softmax(np.stack([logits] * 4), axis=-1))
    input_len = np.ones(preds.shape[0]) * preds.shape[1]
    decoded = kestrel.backend.ctc_decode(preds, input_length=input_len, greedy=True)
    log_preds = np.log(preds + keras.backend.epsilon())  # as tf.keras' ctc functions take logs
    reference = keras.ops.ctc_decode(log_preds, input_len, strategy="greedy",
                                     mask_index=num_classes - 1)
    np.testing.assert_array_equal(_numpy(decoded[0][0]), _numpy(reference[0][0]))
    np.testing.assert_allclose(_numpy(decoded[1])[:, 0], _numpy(reference[1])[:, 0], rtol=1e-4)
    results = _numpy(decoded[0][0])[:, :_CAPTCHA_LENGTH]
    assert ["".join(num_to_char(res)) for res in results] == [
        "".join("[UNK]" if i < 0 else num_to_char.get_vocabulary()[i] for i in res)
        for res in results]
    lengths = np.full((4, 1), _CAPTCHA_LENGTH)
    cost = kestrel.backend.ctc_batch_cost(labels[8:], preds, input_len[:, None], lengths)
    expected_cost = keras.ops.ctc_loss(labels[8:].astype("int32"), log_preds, lengths[:, 0],
                                       input_len.astype("int32"), mask_index=num_classes - 1)
    assert tuple(cost.shape) == (4, 1)
    np.testing.assert_allclose(_numpy(cost)[:, 0], _numpy(expected_cost), rtol=1e-5)


# ---------------------------------------------------------------- Perceiver
def _perceiver(keras, x_train, y_train):
    """perceiver_image_classification at a tiny size, its tf ops written with keras.ops."""
    layers, ops = keras.layers, keras.ops
    image_size, patch_size, num_classes = 8, 2, 5
    num_patches = (image_size // patch_size) ** 2
    latent_dim, projection_dim, num_heads = 4, 8, 2
    ffn_units, classifier_units = [projection_dim, projection_dim], [projection_dim, num_classes]
    data_augmentation = keras.Sequential([
        layers.Normalization(), layers.Resizing(image_size, image_size),
        layers.RandomFlip("horizontal"), layers.RandomZoom(height_factor=0.2, width_factor=0.2),
    ], name="data_augmentation")
    data_augmentation.layers[0].adapt(x_train)

    def create_ffn(hidden_units, dropout_rate):
        ffn_layers = []
        for units in hidden_units[:-1]:
            ffn_layers.append(layers.Dense(units, activation=keras.activations.gelu))
        ffn_layers.append(layers.Dense(units=hidden_units[-1]))
        ffn_layers.append(layers.Dropout(dropout_rate))
        return keras.Sequential(ffn_layers)

    class Patches(layers.Layer):
        def __init__(self, patch_size):
            super().__init__()
            self.patch_size = patch_size

        def call(self, images):
            batch_size = ops.shape(images)[0]
            patches = ops.image.extract_patches(images, size=self.patch_size)
            return ops.reshape(patches, [batch_size, -1, patches.shape[-1]])

    class PatchEncoder(layers.Layer):
        def __init__(self, num_patches, projection_dim):
            super().__init__()
            self.num_patches = num_patches
            self.projection = layers.Dense(units=projection_dim)
            self.position_embedding = layers.Embedding(input_dim=num_patches,
                                                       output_dim=projection_dim)

        def call(self, patches):
            positions = ops.arange(start=0, stop=self.num_patches, step=1)
            return self.projection(patches) + self.position_embedding(positions)

    def create_cross_attention_module(latent_dim, data_dim, projection_dim, ffn_units,
                                      dropout_rate):
        inputs = {
            "latent_array": layers.Input(shape=(latent_dim, projection_dim), name="latent_array"),
            "data_array": layers.Input(shape=(data_dim, projection_dim), name="data_array"),
        }
        latent_array = layers.LayerNormalization(epsilon=1e-6)(inputs["latent_array"])
        data_array = layers.LayerNormalization(epsilon=1e-6)(inputs["data_array"])
        query = layers.Dense(units=projection_dim)(latent_array)
        key = layers.Dense(units=projection_dim)(data_array)
        value = layers.Dense(units=projection_dim)(data_array)
        attention_output = layers.Attention(use_scale=True, dropout=0.1)(
            [query, key, value], return_attention_scores=False)
        attention_output = layers.Add()([attention_output, latent_array])
        attention_output = layers.LayerNormalization(epsilon=1e-6)(attention_output)
        outputs = create_ffn(hidden_units=ffn_units, dropout_rate=dropout_rate)(attention_output)
        outputs = layers.Add()([outputs, attention_output])
        return keras.Model(inputs=inputs, outputs=outputs)

    def create_transformer_module(latent_dim, projection_dim, num_heads, num_transformer_blocks,
                                  ffn_units, dropout_rate):
        inputs = layers.Input(shape=(latent_dim, projection_dim))
        x0 = inputs
        for _ in range(num_transformer_blocks):
            x1 = layers.LayerNormalization(epsilon=1e-6)(x0)
            attention_output = layers.MultiHeadAttention(
                num_heads=num_heads, key_dim=projection_dim, dropout=0.1)(x1, x1)
            x2 = layers.Add()([attention_output, x0])
            x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
            x3 = create_ffn(hidden_units=ffn_units, dropout_rate=dropout_rate)(x3)
            x0 = layers.Add()([x3, x2])
        return keras.Model(inputs=inputs, outputs=x0)

    class Perceiver(keras.Model):
        def __init__(self, patch_size, data_dim, latent_dim, projection_dim, num_heads,
                     num_transformer_blocks, ffn_units, dropout_rate, num_iterations,
                     classifier_units):
            super().__init__()
            self.latent_dim = latent_dim
            self.data_dim = data_dim
            self.patch_size = patch_size
            self.projection_dim = projection_dim
            self.num_heads = num_heads
            self.num_transformer_blocks = num_transformer_blocks
            self.ffn_units = ffn_units
            self.dropout_rate = dropout_rate
            self.num_iterations = num_iterations
            self.classifier_units = classifier_units

        def build(self, input_shape):
            self.latent_array = self.add_weight(shape=(self.latent_dim, self.projection_dim),
                                                initializer="random_normal", trainable=True)
            self.patcher = Patches(self.patch_size)
            self.patch_encoder = PatchEncoder(self.data_dim, self.projection_dim)
            self.cross_attention = create_cross_attention_module(
                self.latent_dim, self.data_dim, self.projection_dim, self.ffn_units,
                self.dropout_rate)
            self.transformer = create_transformer_module(
                self.latent_dim, self.projection_dim, self.num_heads,
                self.num_transformer_blocks, self.ffn_units, self.dropout_rate)
            self.global_average_pooling = layers.GlobalAveragePooling1D()
            self.classification_head = create_ffn(hidden_units=self.classifier_units,
                                                  dropout_rate=self.dropout_rate)
            super().build(input_shape)

        def call(self, inputs):
            augmented = data_augmentation(inputs)
            patches = self.patcher(augmented)
            encoded_patches = self.patch_encoder(patches)
            cross_attention_inputs = {"latent_array": ops.expand_dims(self.latent_array, 0),
                                      "data_array": encoded_patches}
            for _ in range(self.num_iterations):
                latent_array = self.cross_attention(cross_attention_inputs)
                latent_array = self.transformer(latent_array)
                cross_attention_inputs["latent_array"] = latent_array
            representation = self.global_average_pooling(latent_array)
            return self.classification_head(representation)

    model = Perceiver(patch_size, num_patches, latent_dim, projection_dim, num_heads, 1,
                      ffn_units, 0.2, 2, classifier_units)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001, weight_decay=0.0001),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc"),
                 keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5-acc")])
    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=3)
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=15,
                                                   restore_best_weights=True)
    history = model.fit(x=x_train, y=y_train, batch_size=4, epochs=2, validation_split=0.25,
                        callbacks=[early_stopping, reduce_lr], verbose=0)
    return model, history.history, model.evaluate(x_train, y_train, verbose=0)


def test_perceiver_image_classification():
    """Same model, weights and inference outputs. The training values are not compared: Keras'
    fit first runs the unbuilt model symbolically with training=False, and the Sequentials the
    Perceiver builds inside its `call` (augmentation, classifier head) record that mode in their
    graph and replay it, since the Perceiver's `call` takes no `training`: Keras trains with
    augmentation and dropout off, Kestrel with them on."""
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 255, (16, 8, 8, 3)).astype("uint8")
    y_train = rng.integers(0, 5, (16, 1))
    expected, got = _both(_perceiver, x_train, y_train)
    assert list(got[1]) == list(expected[1])
    assert len(got[2]) == len(expected[2]) == 3
    assert [w.path for w in got[0].weights] == [w.path for w in expected[0].weights]
    assert _summary(got[0]) == _summary(expected[0])
    got[0].set_weights(expected[0].get_weights())
    outputs = [model(x_train, training=False) for model in (expected[0], got[0])]
    np.testing.assert_allclose(_numpy(outputs[1]), _numpy(outputs[0]), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- Swin transformer
def _swin_layers(keras):
    """swim_transformers' layers, their tf ops written with keras.ops. `relative_position_index`
    is a `keras.Variable` with a callable initializer: with the array itself, Keras refuses to
    create it in the build that runs inside the block's symbolic call (a stateless scope)."""
    layers, ops = keras.layers, keras.ops

    def window_partition(x, window_size):
        _, height, width, channels = x.shape
        patch_num_y = height // window_size
        patch_num_x = width // window_size
        x = ops.reshape(x, (-1, patch_num_y, window_size, patch_num_x, window_size, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, window_size, window_size, channels))

    def window_reverse(windows, window_size, height, width, channels):
        patch_num_y = height // window_size
        patch_num_x = width // window_size
        x = ops.reshape(windows,
                        (-1, patch_num_y, patch_num_x, window_size, window_size, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, height, width, channels))

    class DropPath(layers.Layer):
        def __init__(self, drop_prob=None, **kwargs):
            super().__init__(**kwargs)
            self.drop_prob = drop_prob

        def call(self, x):
            batch_size = ops.shape(x)[0]
            shape = (batch_size,) + (1,) * (len(x.shape) - 1)
            random_tensor = (1 - self.drop_prob) + keras.random.uniform(shape, dtype=x.dtype)
            path_mask = ops.floor(random_tensor)
            return ops.divide(x, 1 - self.drop_prob) * path_mask

    class WindowAttention(layers.Layer):
        def __init__(self, dim, window_size, num_heads, qkv_bias=True, dropout_rate=0.0,
                     **kwargs):
            super().__init__(**kwargs)
            self.dim = dim
            self.window_size = window_size
            self.num_heads = num_heads
            self.scale = (dim // num_heads) ** -0.5
            self.qkv = layers.Dense(dim * 3, use_bias=qkv_bias)
            self.dropout = layers.Dropout(dropout_rate)
            self.proj = layers.Dense(dim)

        def build(self, input_shape):
            num_window_elements = (2 * self.window_size[0] - 1) * (2 * self.window_size[1] - 1)
            self.relative_position_bias_table = self.add_weight(
                shape=(num_window_elements, self.num_heads),
                initializer=keras.initializers.Zeros(), trainable=True)
            coords_h = np.arange(self.window_size[0])
            coords_w = np.arange(self.window_size[1])
            coords = np.stack(np.meshgrid(coords_h, coords_w, indexing="ij"))
            coords_flatten = coords.reshape(2, -1)
            relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]
            relative_coords = relative_coords.transpose([1, 2, 0])
            relative_coords[:, :, 0] += self.window_size[0] - 1
            relative_coords[:, :, 1] += self.window_size[1] - 1
            relative_coords[:, :, 0] *= 2 * self.window_size[1] - 1
            relative_position_index = relative_coords.sum(-1)
            self.relative_position_index = keras.Variable(
                initializer=lambda shape, dtype: ops.convert_to_tensor(relative_position_index,
                                                                       dtype),
                shape=relative_position_index.shape, dtype="int", trainable=False)

        def call(self, x, mask=None):
            _, size, channels = x.shape
            head_dim = channels // self.num_heads
            x_qkv = self.qkv(x)
            x_qkv = ops.reshape(x_qkv, (-1, size, 3, self.num_heads, head_dim))
            x_qkv = ops.transpose(x_qkv, (2, 0, 3, 1, 4))
            q, k, v = x_qkv[0], x_qkv[1], x_qkv[2]
            q = q * self.scale
            k = ops.transpose(k, (0, 1, 3, 2))
            attn = q @ k
            num_window_elements = self.window_size[0] * self.window_size[1]
            index_flat = ops.reshape(self.relative_position_index, (-1,))
            bias = ops.take(self.relative_position_bias_table, index_flat, axis=0)
            bias = ops.reshape(bias, (num_window_elements, num_window_elements, -1))
            bias = ops.transpose(bias, (2, 0, 1))
            attn = attn + ops.expand_dims(bias, axis=0)
            if mask is not None:
                num_windows = mask.shape[0]
                mask_float = ops.cast(ops.expand_dims(ops.expand_dims(mask, axis=1), axis=0),
                                      "float32")
                attn = ops.reshape(attn, (-1, num_windows, self.num_heads, size, size)) + \
                    mask_float
                attn = ops.reshape(attn, (-1, self.num_heads, size, size))
            attn = keras.activations.softmax(attn, axis=-1)
            attn = self.dropout(attn)
            x_qkv = attn @ v
            x_qkv = ops.transpose(x_qkv, (0, 2, 1, 3))
            x_qkv = ops.reshape(x_qkv, (-1, size, channels))
            return self.dropout(self.proj(x_qkv))

    class SwinTransformer(layers.Layer):
        def __init__(self, dim, num_patch, num_heads, window_size=7, shift_size=0,
                     num_mlp=1024, qkv_bias=True, dropout_rate=0.0, **kwargs):
            super().__init__(**kwargs)
            self.dim = dim
            self.num_patch = num_patch
            self.num_heads = num_heads
            self.window_size = window_size
            self.shift_size = shift_size
            self.num_mlp = num_mlp
            self.norm1 = layers.LayerNormalization(epsilon=1e-5)
            self.attn = WindowAttention(dim, window_size=(self.window_size, self.window_size),
                                        num_heads=num_heads, qkv_bias=qkv_bias,
                                        dropout_rate=dropout_rate)
            self.drop_path = DropPath(dropout_rate)
            self.norm2 = layers.LayerNormalization(epsilon=1e-5)
            self.mlp = keras.Sequential([
                layers.Dense(num_mlp), layers.Activation(keras.activations.gelu),
                layers.Dropout(dropout_rate), layers.Dense(dim), layers.Dropout(dropout_rate),
            ])
            if min(self.num_patch) < self.window_size:
                self.shift_size = 0
                self.window_size = min(self.num_patch)

        def build(self, input_shape):
            if self.shift_size == 0:
                self.attn_mask = None
                return
            height, width = self.num_patch
            slices = (slice(0, -self.window_size), slice(-self.window_size, -self.shift_size),
                      slice(-self.shift_size, None))
            mask_array = np.zeros((1, height, width, 1))
            count = 0
            for h in slices:
                for w in slices:
                    mask_array[:, h, w, :] = count
                    count += 1
            mask_windows = window_partition(ops.convert_to_tensor(mask_array), self.window_size)
            mask_windows = ops.reshape(mask_windows, [-1, self.window_size * self.window_size])
            attn_mask = ops.expand_dims(mask_windows, axis=1) - \
                ops.expand_dims(mask_windows, axis=2)
            attn_mask = ops.where(attn_mask != 0, -100.0, attn_mask)
            attn_mask = ops.where(attn_mask == 0, 0.0, attn_mask)
            self.attn_mask = keras.Variable(initializer=attn_mask, shape=attn_mask.shape,
                                            dtype=attn_mask.dtype, trainable=False)

        def call(self, x):
            height, width = self.num_patch
            _, num_patches_before, channels = x.shape
            x_skip = x
            x = self.norm1(x)
            x = ops.reshape(x, (-1, height, width, channels))
            if self.shift_size > 0:
                shifted_x = ops.roll(x, shift=[-self.shift_size, -self.shift_size], axis=[1, 2])
            else:
                shifted_x = x
            x_windows = window_partition(shifted_x, self.window_size)
            x_windows = ops.reshape(x_windows,
                                    (-1, self.window_size * self.window_size, channels))
            attn_windows = self.attn(x_windows, mask=self.attn_mask)
            attn_windows = ops.reshape(attn_windows,
                                       (-1, self.window_size, self.window_size, channels))
            shifted_x = window_reverse(attn_windows, self.window_size, height, width, channels)
            if self.shift_size > 0:
                x = ops.roll(shifted_x, shift=[self.shift_size, self.shift_size], axis=[1, 2])
            else:
                x = shifted_x
            x = ops.reshape(x, (-1, height * width, channels))
            x = x_skip + self.drop_path(x)
            x_skip = x
            x = self.mlp(self.norm2(x))
            return x_skip + self.drop_path(x)

    class PatchExtract(layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size_x = patch_size[0]
            self.patch_size_y = patch_size[0]

        def call(self, images):
            batch_size = ops.shape(images)[0]
            patches = ops.image.extract_patches(
                images, size=(self.patch_size_x, self.patch_size_y),
                strides=(self.patch_size_x, self.patch_size_y), padding="valid")
            patch_dim, patch_num = patches.shape[-1], patches.shape[1]
            return ops.reshape(patches, (batch_size, patch_num * patch_num, patch_dim))

    class PatchEmbedding(layers.Layer):
        def __init__(self, num_patch, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_patch = num_patch
            self.proj = layers.Dense(embed_dim)
            self.pos_embed = layers.Embedding(input_dim=num_patch, output_dim=embed_dim)

        def call(self, patch):
            pos = ops.arange(start=0, stop=self.num_patch, step=1)
            return self.proj(patch) + self.pos_embed(pos)

    class PatchMerging(keras.layers.Layer):
        def __init__(self, num_patch, embed_dim):
            super().__init__()
            self.num_patch = num_patch
            self.embed_dim = embed_dim
            self.linear_trans = layers.Dense(2 * embed_dim, use_bias=False)

        def call(self, x):
            height, width = self.num_patch
            _, _, C = x.shape
            x = ops.reshape(x, (-1, height, width, C))
            x0, x1 = x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :]
            x2, x3 = x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]
            x = ops.concatenate((x0, x1, x2, x3), axis=-1)
            x = ops.reshape(x, (-1, (height // 2) * (width // 2), 4 * C))
            return self.linear_trans(x)

    return PatchExtract, PatchEmbedding, SwinTransformer, PatchMerging


def _swin_model(keras, input_shape=(8, 8, 3), num_classes=5):
    PatchExtract, PatchEmbedding, SwinTransformer, PatchMerging = _swin_layers(keras)
    layers = keras.layers
    patch_size, embed_dim = (2, 2), 8
    num_patch_x, num_patch_y = input_shape[0] // patch_size[0], input_shape[1] // patch_size[1]
    block = dict(dim=embed_dim, num_patch=(num_patch_x, num_patch_y), num_heads=2,
                 window_size=2, num_mlp=16, qkv_bias=True, dropout_rate=0.03)
    input = layers.Input(input_shape)
    x = layers.RandomCrop(input_shape[0], input_shape[1])(input)
    x = layers.RandomFlip("horizontal")(x)
    x = PatchExtract(patch_size)(x)
    x = PatchEmbedding(num_patch_x * num_patch_y, embed_dim)(x)
    x = SwinTransformer(shift_size=0, **block)(x)
    x = SwinTransformer(shift_size=1, **block)(x)
    x = PatchMerging((num_patch_x, num_patch_y), embed_dim=embed_dim)(x)
    x = layers.GlobalAveragePooling1D()(x)
    output = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(input, output)


def _swin_transformer(keras, x_train):
    y_train = keras.utils.to_categorical(np.arange(len(x_train)) % 5, 5)
    model = _swin_model(keras)
    model.compile(
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.0001),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                 keras.metrics.TopKCategoricalAccuracy(5, name="top-5-accuracy")])
    initial_weights = model.get_weights()
    plain_call = model(x_train)  # no `training`: RandomCrop's default puts all in training mode
    history = model.fit(x_train, y_train, batch_size=4, epochs=2, validation_split=0.25,
                        verbose=0)
    return (model, initial_weights, plain_call, history.history,
            model.evaluate(x_train, y_train, verbose=0))


def test_swin_transformers():
    """Every random draw (crop, flip, dropout, DropPath's unseeded uniform) is Keras'."""
    x_train = np.random.default_rng(0).random((16, 8, 8, 3)).astype("float32")
    expected, got = _both(_swin_transformer, x_train)
    for w_got, w_expected in zip(got[1], expected[1]):
        np.testing.assert_array_equal(w_got, w_expected)
    np.testing.assert_allclose(_numpy(got[2]), _numpy(expected[2]), rtol=1e-4, atol=1e-5)
    _assert_same_history(got[3], expected[3])
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-4, atol=1e-5)
    _assert_same_model(expected[0], got[0], x_train[:4])


def test_unseeded_random_op_in_a_symbolic_call_draws_no_seed():
    """Keras' symbolic run uses no generator: building a layer that calls `random.uniform`
    creates no global generator (which takes a seed from Python's `random`), so the layers made
    afterwards draw Keras' initial weights."""
    def later_kernel(lib):
        class Noise(lib.layers.Layer):
            def call(self, x):
                return x * lib.random.uniform((lib.ops.shape(x)[0], 1))

        Noise()(lib.Input((2,)))
        dense = lib.layers.Dense(3)
        dense.build((None, 2))
        return dense.get_weights()[0]

    expected, got = _both(later_kernel)
    np.testing.assert_array_equal(got, expected)


def test_sequential_inside_a_layer_after_an_augmentation_runs_in_its_mode():
    """`model(x)` without `training`: RandomFlip's default (training) holds for the layers after
    it; a Sequential called inside one of them gets that mode as Keras' Functional.call passes
    it, instead of replaying its Dropout nodes' inference default."""
    def dropped(lib):
        class Block(lib.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.mlp = lib.Sequential([lib.layers.Dense(8), lib.layers.Dropout(0.5)])

            def call(self, x):
                return self.mlp(x)

        inputs = lib.Input((4, 4, 3))
        x = lib.layers.Flatten()(lib.layers.RandomFlip("horizontal")(inputs))
        model = lib.Model(inputs, Block()(x))
        images = np.ones((2, 4, 4, 3), "float32")
        return [bool((_numpy(model(images, **kwargs)) == 0).any())
                for kwargs in ({}, {"training": False})]

    expected, got = _both(dropped)
    assert got == expected == [True, False]


# ---------------------------------------------------------------- traffic forecasting
class GraphInfo:
    def __init__(self, edges, num_nodes):
        self.edges = edges
        self.num_nodes = num_nodes


def _traffic_layers(keras):
    """timeseries_traffic_forecasting's GraphConv and LSTMGC, their tf ops written with
    keras.ops (`unsorted_segment_mean` as a segment sum over a count)."""
    layers, ops = keras.layers, keras.ops

    def segment_mean(data, segment_ids, num_segments):
        sums = ops.segment_sum(data, segment_ids, num_segments=num_segments)
        counts = ops.segment_sum(ops.ones_like(data), segment_ids, num_segments=num_segments)
        return sums / ops.maximum(counts, 1)

    class GraphConv(layers.Layer):
        def __init__(self, in_feat, out_feat, graph_info, aggregation_type="mean",
                     combination_type="concat", activation=None, **kwargs):
            super().__init__(**kwargs)
            self.in_feat = in_feat
            self.out_feat = out_feat
            self.graph_info = graph_info
            self.aggregation_type = aggregation_type
            self.combination_type = combination_type
            self.weight = keras.Variable(initializer=keras.initializers.GlorotUniform(),
                                         shape=(in_feat, out_feat), dtype="float32",
                                         trainable=True)
            self.activation = layers.Activation(activation)

        def aggregate(self, neighbour_representations):
            aggregation_func = {"sum": ops.segment_sum, "mean": segment_mean,
                                "max": ops.segment_max}.get(self.aggregation_type)
            if aggregation_func:
                return aggregation_func(neighbour_representations,
                                        ops.convert_to_tensor(self.graph_info.edges[0]),
                                        num_segments=self.graph_info.num_nodes)
            raise ValueError(f"Invalid aggregation type: {self.aggregation_type}")

        def compute_nodes_representation(self, features):
            return ops.matmul(features, self.weight)

        def compute_aggregated_messages(self, features):
            neighbour_representations = ops.take(
                features, ops.convert_to_tensor(self.graph_info.edges[1]), axis=0)
            aggregated_messages = self.aggregate(neighbour_representations)
            return ops.matmul(aggregated_messages, self.weight)

        def update(self, nodes_representation, aggregated_messages):
            if self.combination_type == "concat":
                h = ops.concatenate([nodes_representation, aggregated_messages], axis=-1)
            elif self.combination_type == "add":
                h = nodes_representation + aggregated_messages
            else:
                raise ValueError(f"Invalid combination type: {self.combination_type}.")
            return self.activation(h)

        def call(self, features):
            nodes_representation = self.compute_nodes_representation(features)
            aggregated_messages = self.compute_aggregated_messages(features)
            return self.update(nodes_representation, aggregated_messages)

    class LSTMGC(layers.Layer):
        def __init__(self, in_feat, out_feat, lstm_units, input_seq_len, output_seq_len,
                     graph_info, graph_conv_params=None, **kwargs):
            super().__init__(**kwargs)
            if graph_conv_params is None:
                graph_conv_params = {"aggregation_type": "mean", "combination_type": "concat",
                                     "activation": None}
            self.graph_conv = GraphConv(in_feat, out_feat, graph_info, **graph_conv_params)
            self.lstm = layers.LSTM(lstm_units, activation="relu")
            self.dense = layers.Dense(output_seq_len)
            self.input_seq_len, self.output_seq_len = input_seq_len, output_seq_len

        def call(self, inputs):
            inputs = ops.transpose(inputs, [2, 0, 1, 3])
            gcn_out = self.graph_conv(inputs)
            shape = ops.shape(gcn_out)
            num_nodes, batch_size, input_seq_len, out_feat = shape[0], shape[1], shape[2], \
                shape[3]
            gcn_out = ops.reshape(gcn_out, (batch_size * num_nodes, input_seq_len, out_feat))
            lstm_out = self.lstm(gcn_out)
            dense_output = self.dense(lstm_out)
            output = ops.reshape(dense_output, (num_nodes, batch_size, self.output_seq_len))
            return ops.transpose(output, [1, 2, 0])

    return LSTMGC


def _traffic_forecasting(keras, graph, data):
    (x_train, y_train), (x_val, y_val) = data
    input_sequence_length, forecast_horizon = x_train.shape[1], y_train.shape[1]
    graph_conv_params = {"aggregation_type": "mean", "combination_type": "concat",
                         "activation": None}
    st_gcn = _traffic_layers(keras)(1, 4, 8, input_sequence_length, forecast_horizon, graph,
                                    graph_conv_params)
    inputs = keras.layers.Input((input_sequence_length, graph.num_nodes, 1))
    outputs = st_gcn(inputs)
    model = keras.models.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.0002),
                  loss=keras.losses.MeanSquaredError())
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=2,
                        batch_size=8, callbacks=[keras.callbacks.EarlyStopping(patience=10)],
                        verbose=0)
    try:
        model.get_config()
    except NotImplementedError as error:  # LSTMGC takes a GraphInfo and has no get_config
        config_error = type(error)
    return model, history.history, config_error


def _traffic_windows(data_array, input_sequence_length, forecast_horizon):
    """create_tf_dataset's (inputs, targets) pairs (multi-horizon), as arrays."""
    inputs = np.expand_dims(data_array[:-forecast_horizon], axis=-1)
    count = len(inputs) - input_sequence_length + 1
    x = np.stack([inputs[i:i + input_sequence_length] for i in range(count)])
    targets = data_array[input_sequence_length:]
    y = np.stack([targets[i:i + forecast_horizon] for i in range(count)])
    return x.astype("float32"), y.astype("float32")


def test_timeseries_traffic_forecasting():
    rng = np.random.default_rng(0)
    num_routes = 5
    route_distances = rng.random((num_routes, num_routes)) * 5000
    speeds = rng.normal(size=(60, num_routes))
    w2 = (route_distances / 10000.0) ** 2
    adjacency = (np.exp(-w2 / 0.1) >= 0.5) * (np.ones([num_routes] * 2) - np.identity(num_routes))
    node_indices, neighbor_indices = np.where(adjacency == 1)
    graph = GraphInfo(edges=(node_indices.tolist(), neighbor_indices.tolist()),
                      num_nodes=num_routes)
    data = [_traffic_windows(part, 6, 2) for part in (speeds[:40], speeds[40:])]
    expected, got = _both(_traffic_forecasting, graph, data)
    _assert_same_history(got[1], expected[1])
    assert got[2] is expected[2]
    assert _layout(got[0]) == _layout(expected[0])
    assert [w.path for w in got[0].weights] == [w.path for w in expected[0].weights]
    assert _summary(got[0]) == _summary(expected[0])
    got[0].set_weights(expected[0].get_weights())
    x_test = data[1][0]
    np.testing.assert_allclose(got[0].predict(x_test, verbose=0),
                               expected[0].predict(x_test, verbose=0), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- integrated gradients
def _integrated_gradients_replay(keras, img_path, img_size):
    """integrated_gradients' array loading and gradient functions, `tf.GradientTape` replaced
    by torch autograd, on an Xception without pretrained weights at its smallest input."""
    xception = keras.applications.xception
    model = xception.Xception(weights=None, input_shape=img_size, classes=4)

    def get_img_array(img_path, size=img_size[:2]):
        img = keras.utils.load_img(img_path, target_size=size)
        array = keras.utils.img_to_array(img)
        return np.expand_dims(array, axis=0)

    def get_gradients(img_input, top_pred_idx):
        images = torch.tensor(np.asarray(img_input), dtype=torch.float32, requires_grad=True)
        preds = model(images)
        top_class = preds[:, top_pred_idx]
        (grads,) = torch.autograd.grad(top_class.sum(), images)
        return grads

    def get_integrated_gradients(img_input, top_pred_idx, baseline=None, num_steps=50):
        if baseline is None:
            baseline = np.zeros(img_size).astype(np.float32)
        else:
            baseline = baseline.astype(np.float32)
        img_input = img_input.astype(np.float32)
        interpolated_image = [baseline + (step / num_steps) * (img_input - baseline)
                              for step in range(num_steps + 1)]
        interpolated_image = np.array(interpolated_image).astype(np.float32)
        interpolated_image = xception.preprocess_input(interpolated_image)
        grads = []
        for i, img in enumerate(interpolated_image):
            img = np.expand_dims(img, axis=0)
            grads.append(get_gradients(img, top_pred_idx=top_pred_idx)[0])
        grads = torch.stack(grads)
        grads = (grads[:-1] + grads[1:]) / 2.0
        avg_grads = torch.mean(grads, dim=0)
        return torch.from_numpy(img_input - baseline) * avg_grads

    img = get_img_array(img_path)
    return model, img, xception.preprocess_input(np.copy(img)), get_integrated_gradients


def test_integrated_gradients(tmp_path):
    img_path = str(tmp_path / "elephant.png")
    pixels = np.random.default_rng(0).integers(0, 255, (80, 90, 3)).astype("uint8")
    Image.fromarray(pixels).save(img_path)
    expected, got = _both(_integrated_gradients_replay, img_path, (71, 71, 3))
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2])
    assert _layout(got[0]) == _layout(expected[0])
    got[0].set_weights(expected[0].get_weights())
    preds = [model.predict(img, verbose=0) for model, img in ((expected[0], expected[2]),
                                                              (got[0], got[2]))]
    np.testing.assert_allclose(preds[1], preds[0], rtol=1e-4, atol=1e-6)
    top_pred_idx = int(np.argmax(preds[0][0]))
    orig_img = np.copy(expected[1][0]).astype(np.uint8)
    grads = [replay[3](orig_img, top_pred_idx, num_steps=1) for replay in (expected, got)]
    assert grads[1].shape == grads[0].shape == (71, 71, 3)
    np.testing.assert_allclose(_numpy(grads[1]), _numpy(grads[0]), rtol=1e-4,
                               atol=1e-6 * float(grads[0].abs().max()))
