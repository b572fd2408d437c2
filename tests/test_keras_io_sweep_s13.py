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
    preds = expected[2].predict(images[8:], verbose=0)
    input_len = np.ones(preds.shape[0]) * preds.shape[1]
    decoded = kestrel.backend.ctc_decode(preds, input_length=input_len, greedy=True)
    reference = keras.ops.ctc_decode(np.log(preds), input_len, strategy="greedy",
                                     mask_index=num_classes - 1)
    np.testing.assert_array_equal(_numpy(decoded[0][0]), _numpy(reference[0][0]))
    np.testing.assert_allclose(_numpy(decoded[1])[:, 0], _numpy(reference[1])[:, 0], rtol=1e-4)
    results = _numpy(decoded[0][0])[:, :_CAPTCHA_LENGTH]
    assert ["".join(num_to_char(res)) for res in results] == [
        "".join("[UNK]" if i < 0 else num_to_char.get_vocabulary()[i] for i in res)
        for res in results]
    lengths = np.full((4, 1), _CAPTCHA_LENGTH)
    cost = kestrel.backend.ctc_batch_cost(labels[8:], preds, input_len[:, None], lengths)
    expected_cost = keras.ops.ctc_loss(labels[8:].astype("int32"), np.log(preds), lengths[:, 0],
                                       input_len.astype("int32"), mask_index=num_classes - 1)
    assert tuple(cost.shape) == (4, 1)
    np.testing.assert_allclose(_numpy(cost)[:, 0], _numpy(expected_cost), rtol=1e-5)
