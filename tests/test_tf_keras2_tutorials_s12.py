"""Condensed replays of the Keras parts of the tf.keras 2 era tensorflow.org / keras.io
tutorials, with only the import changed (`import kestrel as keras`), on small NumPy stand-ins
for their datasets (tf.data steps replaced by arrays). Checked against real Keras 3 (torch
backend) where the same code runs there, else against what tf.keras 2 documents.
"""
import glob
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras as real_keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
import kestrel as keras  # noqa: E402
from kestrel import backend as K  # noqa: E402
from kestrel import layers  # noqa: E402
from kestrel.preprocessing.image import ImageDataGenerator  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(autouse=True)
def _seed():
    kestrel.utils.set_random_seed(0)
    real_keras.utils.set_random_seed(0)


def _rng():
    return np.random.default_rng(0)


def _copy_weights(src, dst):
    for a, b in zip(src.layers, dst.layers):
        b.set_weights(a.get_weights())


class _BatchCounter:
    """Mixin recording the batch indices fit ran (as `on_train_batch_end` saw them)."""

    def on_train_begin(self, logs=None):
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)


# ------------------------------------------------------------------ basic classification
def _fashion_model(lib):
    model = lib.Sequential([lib.layers.Flatten(input_shape=(28, 28)),
                            lib.layers.Dense(16, activation="relu"), lib.layers.Dense(10)])
    model.compile(optimizer="adam",
                  loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_basic_classification_predict_argmax():
    """Flatten/Dense on Fashion-MNIST shapes; a Softmax model wraps the trained one; the
    `np.expand_dims(img, 0)` single-image predict; the same numbers as Keras 3."""
    x = _rng().random((12, 28, 28)).astype("float32")
    labels = np.arange(12) % 10
    ours, theirs = _fashion_model(keras), _fashion_model(real_keras)
    _copy_weights(theirs, ours)
    test_loss, test_acc = ours.evaluate(x, labels, verbose=0)
    assert [test_loss, test_acc] == pytest.approx(theirs.evaluate(x, labels, verbose=0),
                                                  rel=1e-5)
    probability_model = keras.Sequential([ours, layers.Softmax()])
    predictions = probability_model.predict(x, verbose=0)
    reference = real_keras.Sequential([theirs, real_keras.layers.Softmax()]).predict(x, verbose=0)
    assert predictions.shape == (12, 10)
    np.testing.assert_allclose(predictions, reference, rtol=1e-5, atol=1e-6)
    assert np.argmax(predictions[0]) == np.argmax(reference[0])
    img = np.expand_dims(x[1], 0)
    assert probability_model.predict(img, verbose=0).shape == (1, 10)
    ours.fit(x, labels, epochs=2, verbose=0)


# ------------------------------------------------------------------ regression
def test_regression_normalization_adapt_and_one_feature_model():
    """`Normalization(input_shape=[1,], axis=None)` adapted on a 1-D column, the model fed 1-D
    data (Keras adds the trailing axis), `pd.DataFrame(history.history)`; adapt values as
    Keras 3."""
    rng = _rng()
    features = rng.random((40, 3)).astype("float32")
    target = features @ np.array([1.0, 2.0, 3.0], dtype="float32")
    normalizer = layers.Normalization(axis=-1)
    normalizer.adapt(np.array(features))
    reference = real_keras.layers.Normalization(axis=-1)
    reference.adapt(np.array(features))
    np.testing.assert_allclose(normalizer.adapt_mean.numpy(), reference.adapt_mean.numpy(),
                               1e-5)
    np.testing.assert_allclose(normalizer.adapt_variance.numpy(),
                               reference.adapt_variance.numpy(), 1e-5)
    np.testing.assert_allclose(np.asarray(normalizer(features[:4])),
                               np.asarray(reference(features[:4])), rtol=1e-5, atol=1e-6)

    horsepower = np.array(features[:, 0])
    horsepower_normalizer = layers.Normalization(input_shape=[1, ], axis=None)
    horsepower_normalizer.adapt(horsepower)
    model = keras.Sequential([horsepower_normalizer, layers.Dense(units=1)])
    assert model.predict(horsepower[:10], verbose=0).shape == (10, 1)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mean_absolute_error")
    history = model.fit(horsepower, target, epochs=3, verbose=0, validation_split=0.2)
    assert sorted(history.history) == ["loss", "val_loss"]
    assert history.epoch == [0, 1, 2]
    dnn = keras.Sequential([normalizer, layers.Dense(8, activation="relu"), layers.Dense(1)])
    dnn.compile(loss="mean_absolute_error", optimizer=keras.optimizers.Adam(0.001))
    dnn.fit(features, target, validation_split=0.2, verbose=0, epochs=2)
    assert dnn.predict(features[:3], verbose=0).flatten().shape == (3,)


def test_regression_on_pandas_frames_and_series_as_keras():
    """The tutorial's data stays pandas: `fit(train_features['Horsepower'], train_labels)` (a
    Series into `input_shape=[1,]`), `predict(train_features[:10])` (a DataFrame), the
    `pd.DataFrame(test_results, index=[...]).T` table; predictions as Keras 3's."""
    import pandas as pd
    rng = _rng()
    frame = pd.DataFrame({"Cylinders": rng.integers(3, 8, 20).astype(float),
                          "Horsepower": rng.random(20) * 100, "MPG": rng.random(20) * 30})
    train_features = frame.copy()
    train_labels = train_features.pop("MPG")

    def models(lib):
        normalizer = lib.layers.Normalization(axis=-1)
        normalizer.adapt(np.array(train_features))
        horsepower_normalizer = lib.layers.Normalization(input_shape=[1, ], axis=None)
        horsepower_normalizer.adapt(np.array(train_features["Horsepower"]))
        return (lib.Sequential([horsepower_normalizer, lib.layers.Dense(units=1)]),
                lib.Sequential([normalizer, lib.layers.Dense(units=1)]))

    ours, theirs = models(keras), models(real_keras)
    for mine, reference, x in zip(ours, theirs, (train_features["Horsepower"], train_features)):
        for model in (mine, reference):  # the tutorial's first predict builds the model
            assert model.predict(x[:10], verbose=0).shape == (10, 1)
        _copy_weights(reference, mine)
        np.testing.assert_allclose(mine.predict(x[:10], verbose=0),
                                   reference.predict(x[:10], verbose=0), rtol=1e-5, atol=1e-6)
        mine.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1),
                     loss="mean_absolute_error")
        mine.fit(x, train_labels, epochs=2, verbose=0, validation_split=0.2)
    test_results = {"horsepower_model": ours[0].evaluate(train_features["Horsepower"],
                                                         train_labels, verbose=0),
                    "linear_model": ours[1].evaluate(train_features, train_labels, verbose=0)}
    table = pd.DataFrame(test_results, index=["Mean absolute error [MPG]"]).T
    assert table.shape == (2, 1)


def test_sequential_feeds_rank_one_data_to_size_one_input_as_keras():
    """The fix behind the regression tutorial: Keras 3's Sequential adds (or drops) the
    trailing size-1 axis to match its input, as its functional models do."""
    column = np.linspace(0.0, 1.0, 6).astype("float32")
    ours = keras.Sequential([layers.Dense(2, input_shape=(1,))])
    theirs = real_keras.Sequential([real_keras.Input((1,)), real_keras.layers.Dense(2)])
    _copy_weights(theirs, ours)
    expected = np.asarray(theirs(column).detach())
    np.testing.assert_allclose(np.asarray(ours(column).detach()), expected, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(column, verbose=0), expected, rtol=1e-6)
    squeezed = keras.Sequential([layers.Dense(2, input_shape=(3,))])
    assert tuple(squeezed(np.ones((4, 3, 1), "float32")).shape) == (4, 2)


# ------------------------------------------------------------------ overfit and underfit
def _regularized(lib):
    lr_schedule = lib.optimizers.schedules.InverseTimeDecay(
        0.001, decay_steps=10, decay_rate=1, staircase=False)
    model = lib.Sequential([
        lib.layers.Dense(8, activation="elu", input_shape=(6,),
                         kernel_regularizer=lib.regularizers.l2(0.001)),
        lib.layers.Dropout(0.5), lib.layers.Dense(1)])
    model.compile(optimizer=lib.optimizers.Adam(lr_schedule),
                  loss=lib.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[lib.losses.BinaryCrossentropy(from_logits=True,
                                                         name="binary_crossentropy"),
                           "accuracy"])
    return model


def test_overfit_underfit_history_keys_and_regularization_loss():
    """l2(0.001) + Dropout, an InverseTimeDecay schedule, a loss object as a metric, the
    `val_binary_crossentropy` EarlyStopping monitor: history keys and the evaluated loss
    (regularization term included) as Keras 3."""
    x = _rng().random((16, 6)).astype("float32")
    y = (x.sum(1) > 3).astype("float32")
    ours, theirs = _regularized(keras), _regularized(real_keras)
    _copy_weights(theirs, ours)
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0),
                                                           rel=1e-5)
    stop = keras.callbacks.EarlyStopping(monitor="val_binary_crossentropy", patience=200)
    history = ours.fit(x, y, batch_size=4, steps_per_epoch=4, epochs=2,
                       validation_data=(x, y), callbacks=[stop], verbose=0)
    reference = theirs.fit(x, y, batch_size=4, steps_per_epoch=4, epochs=2,
                           validation_data=(x, y), verbose=0)
    assert sorted(history.history) == sorted(reference.history)
    assert ours.losses and len(ours.losses) == len(theirs.losses)


# ------------------------------------------------------------------ save and load
def _checkpoint_model():
    model = keras.models.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)),
                                     layers.Dropout(0.2), layers.Dense(10)])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return model


def test_save_and_load_checkpoints_every_five_batches(tmp_path):
    """`cp-{epoch:04d}.ckpt` with `save_freq=5*batch_size` batches (tf.keras 2 names the file
    after the 1-based epoch the save fell in, as Keras 3 does), `save_weights(...format(
    epoch=0))`, the latest file loaded into a fresh model."""
    x = _rng().random((20, 6)).astype("float32")
    y = np.arange(20) % 10
    checkpoint_path = str(tmp_path / "training_2" / "cp-{epoch:04d}.ckpt")
    checkpoint_dir = os.path.dirname(checkpoint_path)
    batch_size = 2  # 10 batches an epoch: a save every 10 batches, one an epoch
    cp_callback = keras.callbacks.ModelCheckpoint(filepath=checkpoint_path, verbose=0,
                                                  save_weights_only=True,
                                                  save_freq=5 * batch_size)
    model = _checkpoint_model()
    model.save_weights(checkpoint_path.format(epoch=0))
    model.fit(x, y, epochs=3, batch_size=batch_size, callbacks=[cp_callback],
              validation_data=(x, y), verbose=0)
    assert sorted(os.listdir(checkpoint_dir)) == [
        "cp-0000.ckpt", "cp-0001.ckpt", "cp-0002.ckpt", "cp-0003.ckpt"]
    latest = sorted(glob.glob(os.path.join(checkpoint_dir, "cp-*")))[-1]
    restored = _checkpoint_model()
    restored.load_weights(latest)
    assert restored.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))


def test_checkpoint_epoch_names_match_keras_for_batch_frequency(tmp_path):
    """The `{epoch}` a batch-frequency save is named after, as Keras 3 names it."""
    x = _rng().random((12, 6)).astype("float32")
    y = np.arange(12) % 10

    def saved(lib, folder):
        model = lib.Sequential([lib.Input((6,)), lib.layers.Dense(10)])
        model.compile("sgd", lib.losses.SparseCategoricalCrossentropy(from_logits=True))
        path = str(folder / "cp-{epoch:04d}.weights.h5")
        model.fit(x, y, batch_size=4, epochs=4, verbose=0, callbacks=[
            lib.callbacks.ModelCheckpoint(path, save_weights_only=True, save_freq=5)])
        return sorted(os.listdir(folder))

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    assert saved(keras, tmp_path / "a") == saved(real_keras, tmp_path / "b")


def test_save_whole_model_h5_and_keras_then_load_model(tmp_path):
    """`model.save('my_model.h5')` / `.keras`, `keras.models.load_model`: same predictions and
    evaluation, the compiled state restored."""
    x = _rng().random((10, 6)).astype("float32")
    y = np.arange(10) % 10
    model = _checkpoint_model()
    model.fit(x, y, epochs=1, verbose=0)
    for name in ("my_model.h5", "my_model.keras"):
        model.save(str(tmp_path / name))
        new_model = keras.models.load_model(str(tmp_path / name))
        np.testing.assert_allclose(new_model.predict(x, verbose=0),
                                   model.predict(x, verbose=0), rtol=1e-6)
        assert new_model.evaluate(x, y, verbose=0) == pytest.approx(
            model.evaluate(x, y, verbose=0))


# ------------------------------------------------------------------ text classification
def test_text_classification_textvectorization_embedding_pooling():
    """TextVectorization adapt + Embedding + GlobalAveragePooling1D, the
    `BinaryAccuracy(threshold=0.0)` metric, then the export model taking raw strings.
    (Keras 3's TextVectorization needs TensorFlow: checked against tf.keras 2's documented
    order, most frequent first, ties in reverse string order.)"""
    texts = np.array(["good movie <br />", "bad plot movie", "great great movie",
                      "awful plot", "good great", "bad awful movie"] * 4)
    labels = np.array([int("good" in t or "great" in t) for t in texts])
    max_features, sequence_length = 20, 6
    vectorize_layer = layers.TextVectorization(max_tokens=max_features, output_mode="int",
                                               output_sequence_length=sequence_length)
    vectorize_layer.adapt(texts)
    assert vectorize_layer.get_vocabulary() == [
        "", "[UNK]", "movie", "great", "plot", "good", "bad", "awful", "br"]
    train = np.asarray(vectorize_layer(texts))
    assert train.shape == (24, sequence_length)
    model = keras.Sequential([layers.Embedding(max_features + 1, 8), layers.Dropout(0.2),
                              layers.GlobalAveragePooling1D(), layers.Dropout(0.2),
                              layers.Dense(1)])
    model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True), optimizer="adam",
                  metrics=keras.metrics.BinaryAccuracy(threshold=0.0))
    history = model.fit(train, labels, validation_data=(train, labels), epochs=2, verbose=0)
    assert sorted(history.history) == ["binary_accuracy", "loss", "val_binary_accuracy",
                                       "val_loss"]
    export_model = keras.Sequential([vectorize_layer, model, layers.Activation("sigmoid")])
    export_model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=False),
                         optimizer="adam", metrics=["accuracy"])
    assert len(export_model.evaluate(texts, labels, verbose=0)) == 2
    predicted = export_model.predict(np.array(["good movie", "awful plot"]), verbose=0)
    assert predicted.shape == (2, 1) and np.all((predicted > 0) & (predicted < 1))


def _review_folders(root):
    for label, word in (("neg", "awful"), ("pos", "great")):
        (root / label).mkdir(parents=True)
        for i in range(4):
            (root / label / f"{i}.txt").write_text(f"A {word} movie<br />number {i}")


def test_text_classification_from_directory_batches(tmp_path):
    """`text_dataset_from_directory`, the tutorial's `text_batch.numpy()[i]` /
    `label_batch.numpy()[i]` peek, `adapt(raw_train_ds.map(lambda x, y: x))`, `.map(
    vectorize_text)` into fit, and the export model evaluated on the raw string batches."""
    _review_folders(tmp_path / "train")
    raw_train_ds = keras.utils.text_dataset_from_directory(
        str(tmp_path / "train"), batch_size=4, validation_split=0.25, subset="training",
        seed=42)
    assert raw_train_ds.class_names == ["neg", "pos"]
    text_batch, label_batch = next(iter(raw_train_ds))
    for i in range(2):
        review, label = text_batch.numpy()[i], label_batch.numpy()[i]
        assert ("great" in review) == (label == 1)
    assert type(text_batch.numpy()) is np.ndarray
    vectorize_layer = layers.TextVectorization(max_tokens=20, output_mode="int",
                                               output_sequence_length=6)
    vectorize_layer.adapt(raw_train_ds.map(lambda x, y: x))
    assert "great" in vectorize_layer.get_vocabulary()

    def vectorize_text(text, label):
        text = np.expand_dims(text, -1)  # the tutorial's tf.expand_dims
        return vectorize_layer(text), label

    model = keras.Sequential([layers.Embedding(21, 4), layers.GlobalAveragePooling1D(),
                              layers.Dense(1)])
    model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True), optimizer="adam",
                  metrics=keras.metrics.BinaryAccuracy(threshold=0.0))
    model.fit(raw_train_ds.map(vectorize_text), epochs=1, verbose=0)
    export_model = keras.Sequential([vectorize_layer, model, layers.Activation("sigmoid")])
    export_model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=False),
                         optimizer="adam", metrics=["accuracy"])
    loss, accuracy = export_model.evaluate(raw_train_ds, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1


def test_word_embeddings_model_from_string_batches(tmp_path):
    """The word embeddings tutorial: a Sequential whose first layer is the TextVectorization,
    fit on the string batches of `text_dataset_from_directory` with a TensorBoard callback,
    then `get_layer('embedding').get_weights()[0]` written out row by row with the vocabulary
    to `vectors.tsv` / `metadata.tsv`."""
    _review_folders(tmp_path / "reviews")
    train_ds = keras.utils.text_dataset_from_directory(
        str(tmp_path / "reviews"), batch_size=4, validation_split=0.25, subset="training",
        seed=123)
    val_ds = keras.utils.text_dataset_from_directory(
        str(tmp_path / "reviews"), batch_size=4, validation_split=0.25, subset="validation",
        seed=123)
    vocab_size = 20
    vectorize_layer = layers.TextVectorization(max_tokens=vocab_size, output_mode="int",
                                               output_sequence_length=5)
    vectorize_layer.adapt(train_ds.map(lambda x, y: x))
    model = keras.Sequential([vectorize_layer, layers.Embedding(vocab_size, 4, name="embedding"),
                              layers.GlobalAveragePooling1D(), layers.Dense(4, activation="relu"),
                              layers.Dense(1)])
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(train_ds, validation_data=val_ds, epochs=2, verbose=0, callbacks=[
        keras.callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))])
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    weights = model.get_layer("embedding").get_weights()[0]
    vocab = vectorize_layer.get_vocabulary()
    assert weights.shape == (vocab_size, 4) and len(vocab) <= vocab_size
    with open(tmp_path / "vectors.tsv", "w", encoding="utf-8") as out_v, \
            open(tmp_path / "metadata.tsv", "w", encoding="utf-8") as out_m:
        for index, word in enumerate(vocab[1:], start=1):
            out_v.write("\t".join([str(x) for x in weights[index]]) + "\n")
            out_m.write(word + "\n")
    assert (tmp_path / "metadata.tsv").read_text().split()[0] == "[UNK]"
    assert len((tmp_path / "vectors.tsv").read_text().splitlines()) == len(vocab) - 1


def _named_like_attributes(lib):
    """The image classification tutorial's last layer `Dense(num_classes, name="outputs")`,
    in a Sequential and in a functional model, with a layer named "inputs" too."""
    sequential = lib.Sequential([lib.layers.Rescaling(1. / 255, input_shape=(4, 4, 3)),
                                 lib.layers.Flatten(name="inputs"),
                                 lib.layers.Dense(2, name="outputs")])
    x = lib.Input((3,))
    functional = lib.Model(x, lib.layers.Dense(2, name="outputs")(
        lib.layers.Dense(3, name="inputs")(x)))
    return sequential, functional


def test_layers_named_outputs_and_inputs_as_keras():
    """Model attributes stay the model's (`model.outputs` a list) next to such layers."""
    images = _rng().random((2, 4, 4, 3)).astype("float32") * 255
    ours, theirs = _named_like_attributes(keras), _named_like_attributes(real_keras)
    for mine, reference, x in zip(ours, theirs, (images, images[:, 0, 0, :])):
        assert [l.name for l in mine.layers][-2:] == ["inputs", "outputs"]
        assert isinstance(mine.outputs, list) and isinstance(mine.inputs, list)
        assert mine.get_layer("outputs") is mine.layers[-1]
        _copy_weights(reference, mine)
        np.testing.assert_allclose(mine.predict(x, verbose=0), reference.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-6)
    model = ours[0]
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(images, np.array([0, 1]), epochs=1, verbose=0)
    assert np.argmax(model.predict(images[:1], verbose=0)[0]) in (0, 1)


# ------------------------------------------------------------------ data augmentation
def _small_convnet():
    model = keras.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 3)),
                              layers.MaxPooling2D(), layers.Flatten(),
                              layers.Dense(3, activation="softmax")])
    model.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    return model


def test_image_data_generator_flow_into_fit_with_float_steps():
    """The ImageDataGenerator docs' loop: `datagen.fit(x)`, `fit(datagen.flow(...),
    steps_per_epoch=len(x_train) / 32)`: tf.keras 2 ran `while step < steps_per_epoch`, so a
    fractional count runs the rounded-up number of batches (Keras 3 refuses floats)."""
    x = _rng().random((10, 8, 8, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(10) % 3, 3)
    datagen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                                 rotation_range=20, width_shift_range=0.2,
                                 height_shift_range=0.2, horizontal_flip=True)
    datagen.fit(x)
    model = _small_convnet()
    counter = type("Counter", (_BatchCounter, keras.callbacks.Callback), {})()
    history = model.fit(datagen.flow(x, y, batch_size=4), steps_per_epoch=len(x) / 4,
                        epochs=2, verbose=0, callbacks=[counter])
    assert counter.batches == [0, 1, 2, 0, 1, 2]
    assert sorted(history.history) == ["accuracy", "loss"]
    whole = model.fit(datagen.flow(x, y, batch_size=5), steps_per_epoch=len(x) / 5, epochs=1,
                      verbose=0, callbacks=[counter])
    assert counter.batches == [0, 1] and len(whole.history["loss"]) == 1
    for _ in range(1):  # the docs' "here's a more manual example" loop
        batches = 0
        for x_batch, y_batch in datagen.flow(x, y, batch_size=4):
            model.fit(x_batch, y_batch, verbose=0)
            batches += 1
            if batches >= len(x) / 4:
                break
    assert batches == 3


def test_flow_subsets_validation_and_rescale():
    """`validation_split` with `subset='training'/'validation'` flows as fit's training and
    validation data, and `rescale=1./255` on the batches."""
    x = _rng().random((16, 8, 8, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(16) % 3, 3)
    datagen = ImageDataGenerator(horizontal_flip=True, validation_split=0.25)
    train = datagen.flow(x, y, batch_size=4, subset="training")
    val = datagen.flow(x, y, batch_size=4, subset="validation")
    assert (train.n, val.n, len(train), len(val)) == (12, 4, 3, 1)
    history = _small_convnet().fit(train, validation_data=val, epochs=2, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    rescaled = ImageDataGenerator(rescale=1. / 255, shear_range=0.2, zoom_range=0.2)
    images, _ = rescaled.flow(x * 255, y, batch_size=4, shuffle=False)[0]
    np.testing.assert_allclose(images.max(), x[:4].max(), rtol=0.2)


def _image_folders(root, per_class=5):
    import PIL.Image
    rng = _rng()
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((10, 12, 3)) * 255).astype("uint8")
            PIL.Image.fromarray(pixels).save(str(root / name / f"{name}.{i}.jpg"))


def test_flow_from_directory_into_fit_and_ordered_predict(tmp_path):
    """The "small data" cats-vs-dogs script: `flow_from_directory(class_mode='binary')`,
    `fit(train_generator, steps_per_epoch=samples // batch_size, validation_data=...,
    validation_steps=...)`, then `class_mode=None, shuffle=False` batches of 1 for predict."""
    _image_folders(tmp_path / "train")
    _image_folders(tmp_path / "validation")
    batch_size = 4
    train_generator = ImageDataGenerator(rescale=1. / 255, shear_range=0.2, zoom_range=0.2,
                                         horizontal_flip=True).flow_from_directory(
        str(tmp_path / "train"), target_size=(8, 8), batch_size=batch_size, class_mode="binary")
    test_datagen = ImageDataGenerator(rescale=1. / 255)
    validation_generator = test_datagen.flow_from_directory(
        str(tmp_path / "validation"), target_size=(8, 8), batch_size=batch_size,
        class_mode="binary")
    assert train_generator.class_indices == {"cats": 0, "dogs": 1}
    assert (train_generator.samples, len(train_generator)) == (10, 3)
    model = keras.Sequential([layers.Conv2D(4, (3, 3), input_shape=(8, 8, 3)),
                              layers.Activation("relu"), layers.MaxPooling2D(pool_size=(2, 2)),
                              layers.Flatten(), layers.Dense(1), layers.Activation("sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    history = model.fit(train_generator, steps_per_epoch=train_generator.samples // batch_size,
                        epochs=2, validation_data=validation_generator,
                        validation_steps=10 // batch_size, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    test_generator = test_datagen.flow_from_directory(
        str(tmp_path / "validation"), target_size=(8, 8), batch_size=1, class_mode=None,
        shuffle=False)
    filenames = test_generator.filenames
    assert filenames[:2] == [os.path.join("cats", f"cats.{i}.jpg") for i in range(2)]
    predictions = model.predict(test_generator, steps=len(filenames), verbose=0)
    test_generator.reset()
    np.testing.assert_allclose(model.predict(test_generator, steps=len(filenames), verbose=0),
                               predictions, rtol=1e-6)
    assert predictions.shape == (10, 1)
    # steps=np.ceil(nb_samples / batch_size), a float: rounded up as fit's steps_per_epoch
    assert model.predict(validation_generator, steps=np.ceil(10 / batch_size),
                         verbose=0).shape == (10, 1)
    assert len(model.evaluate(validation_generator, steps=10 / batch_size, verbose=0)) == 2


# ------------------------------------------------------------------ transfer learning
def _transfer_model(lib, base_model):
    inputs = lib.Input(shape=(32, 32, 3))
    t = lib.applications.mobilenet_v2.preprocess_input(inputs)
    t = base_model(t, training=False)
    t = lib.layers.GlobalAveragePooling2D()(t)
    t = lib.layers.Dropout(0.2)(t)
    return lib.Model(inputs, lib.layers.Dense(1)(t))


def _fine_tune_counts(lib):
    """Trainable variable counts: frozen base, then the top layers from 100 on unfrozen."""
    base_model = lib.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False,
                                              weights=None, alpha=0.35)
    base_model.trainable = False
    model = _transfer_model(lib, base_model)
    frozen = len(model.trainable_variables)
    base_model.trainable = True
    for layer in base_model.layers[:100]:
        layer.trainable = False
    return model, base_model, (frozen, len(model.trainable_variables), len(base_model.layers))


def test_transfer_learning_freeze_then_fine_tune_top_layers():
    """`include_top=False`, `base_model.trainable = False`, GlobalAveragePooling2D + Dense,
    then the top layers from 100 on unfrozen with a 10x lower learning rate and
    `initial_epoch=history.epoch[-1]`: the trainable counts as Keras 3's."""
    model, base_model, counts = _fine_tune_counts(keras)
    assert counts == _fine_tune_counts(real_keras)[2]
    x = _rng().random((4, 32, 32, 3)).astype("float32") * 255
    y = np.arange(4) % 2
    base_learning_rate = 0.0001
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=base_learning_rate / 10),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    frozen = [w.numpy().copy() for w in base_model.layers[1].weights]
    history = model.fit(x, y, epochs=2, initial_epoch=1, validation_data=(x, y), verbose=0)
    assert history.epoch == [1]
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(frozen, base_model.layers[1].weights))
    assert float(K.get_value(model.optimizer.learning_rate)) == pytest.approx(1e-5)
    predictions = keras.activations.sigmoid(model.predict_on_batch(x).flatten())
    assert np.where(np.asarray(predictions) < 0.5, 0, 1).shape == (4,)


def _guide_trainable_counts(lib):
    """The transfer learning guide's weight counts: Dense, BatchNormalization, a frozen
    Dense, and a frozen outer model freezing its inner model's layers."""
    dense = lib.layers.Dense(3)
    dense.build((None, 4))
    norm = lib.layers.BatchNormalization()
    norm.build((None, 4))
    frozen = lib.layers.Dense(3)
    frozen.build((None, 4))
    frozen.trainable = False
    inner_model = lib.Sequential([lib.Input(shape=(3,)), lib.layers.Dense(3, activation="relu"),
                                  lib.layers.Dense(3, activation="relu")])
    model = lib.Sequential([lib.Input(shape=(3,)), inner_model,
                            lib.layers.Dense(3, activation="sigmoid")])
    model.trainable = False
    return [(len(l.weights), len(l.trainable_weights), len(l.non_trainable_weights))
            for l in (dense, norm, frozen, model)] + [inner_model.layers[0].trainable]


def test_transfer_learning_guide_trainable_weights_as_keras():
    """Counts as Keras 3's; a frozen layer's weights do not move in fit."""
    assert _guide_trainable_counts(keras) == _guide_trainable_counts(real_keras)
    layer1 = layers.Dense(3, activation="relu")
    model = keras.Sequential([keras.Input(shape=(3,)), layer1,
                              layers.Dense(3, activation="sigmoid")])
    layer1.trainable = False
    initial_layer1_weights_values = layer1.get_weights()
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.random.random((2, 3)), np.random.random((2, 3)), verbose=0)
    for before, after in zip(initial_layer1_weights_values, layer1.get_weights()):
        np.testing.assert_allclose(before, after)


# ------------------------------------------------------------------ time series
def test_timeseries_dataset_from_array_windows_into_fit():
    """`keras.utils.timeseries_dataset_from_array` windows (tf.keras 2's documented layout:
    window i starts at i * sequence_stride, targets[i] belongs to it, no more windows than
    targets) fed to an LSTM and a
    Conv1D model; `sampling_rate` and targets=None."""
    data = np.arange(40, dtype="float32").reshape(20, 2)
    dataset = keras.utils.timeseries_dataset_from_array(
        data=data, targets=data[4:, 0], sequence_length=4, sequence_stride=1, shuffle=False,
        batch_size=8)
    batches = list(dataset)
    assert [tuple(np.shape(b[0])) for b in batches] == [(8, 4, 2), (8, 4, 2)]
    inputs, targets = batches[0]
    np.testing.assert_array_equal(np.asarray(inputs)[3], data[3:7])
    assert float(np.asarray(targets)[3]) == data[7, 0]
    windows = next(iter(keras.utils.timeseries_dataset_from_array(
        data, None, sequence_length=3, sampling_rate=2, batch_size=4)))
    np.testing.assert_array_equal(np.asarray(windows)[1], data[[1, 3, 5]])
    lstm = keras.Sequential([layers.LSTM(4, return_sequences=False), layers.Dense(1)])
    lstm.compile(loss=keras.losses.MeanSquaredError(), optimizer=keras.optimizers.Adam(),
                 metrics=[keras.metrics.MeanAbsoluteError()])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, mode="min")
    history = lstm.fit(dataset, epochs=2, validation_data=dataset, callbacks=[stop], verbose=0)
    assert sorted(history.history) == ["loss", "mean_absolute_error", "val_loss",
                                       "val_mean_absolute_error"]
    conv = keras.Sequential([layers.Conv1D(filters=4, kernel_size=3, activation="relu"),
                             layers.Dense(1)])
    conv.compile(loss="mse", optimizer="adam")
    assert conv.predict(dataset, verbose=0).shape == (16, 2, 1)


def _feedback_class(lib):
    """The time series tutorial's autoregressive FeedBack model (tf.stack / tf.transpose as
    `keras.ops`): `x, *state = RNN(cell, return_state=True)(inputs)`, then the cell stepped
    on its own predictions."""
    class FeedBack(lib.Model):
        def __init__(self, units, out_steps):
            super().__init__()
            self.out_steps = out_steps
            self.units = units
            self.lstm_cell = lib.layers.LSTMCell(units)
            self.lstm_rnn = lib.layers.RNN(self.lstm_cell, return_state=True)
            self.dense = lib.layers.Dense(3)

        def warmup(self, inputs):
            x, *state = self.lstm_rnn(inputs)
            return self.dense(x), state

        def call(self, inputs, training=None):
            prediction, state = self.warmup(inputs)
            predictions = [prediction]
            for _ in range(1, self.out_steps):
                x, state = self.lstm_cell(prediction, states=state, training=training)
                prediction = self.dense(x)
                predictions.append(prediction)
            return lib.ops.transpose(lib.ops.stack(predictions), [1, 0, 2])
    return FeedBack


def test_timeseries_window_split_and_feedback_model_as_keras():
    """WindowGenerator's `split_window` mapped over the windows, then the FeedBack model:
    warmup state count, output shape and values (weights copied) as Keras 3's."""
    data = _rng().random((30, 3)).astype("float32")

    def split_window(features):
        inputs = features[:, slice(0, 6), :]
        labels = keras.ops.stack([features[:, slice(6, None), :][:, :, 1]], axis=-1)
        return inputs, labels

    windows = keras.utils.timeseries_dataset_from_array(
        data=data, targets=None, sequence_length=7, sequence_stride=1, shuffle=True,
        batch_size=8, seed=0).map(split_window)
    example_inputs, example_labels = next(iter(windows))
    assert tuple(example_inputs.shape) == (8, 6, 3) and tuple(example_labels.shape) == (8, 1, 1)

    x = data[:24].reshape(4, 6, 3)
    ours = _feedback_class(keras)(units=4, out_steps=3)
    theirs = _feedback_class(real_keras)(units=4, out_steps=3)
    prediction, state = ours.warmup(x)
    assert tuple(prediction.shape) == (4, 3) and len(state) == 2
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(np.asarray(ours(x).detach()), np.asarray(theirs(x).detach()),
                               rtol=1e-5, atol=1e-6)
    ours.compile(loss="mse", optimizer="adam")
    ours.fit(x, np.zeros((4, 3, 3), "float32"), epochs=1, verbose=0)


# ------------------------------------------------------------------ custom callbacks
class CustomLearningRateScheduler(keras.callbacks.Callback):
    """The writing-your-own-callbacks guide's scheduler, as written for tf.keras 2."""

    def __init__(self, schedule):
        super(CustomLearningRateScheduler, self).__init__()
        self.schedule = schedule
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "lr"):
            raise ValueError('Optimizer must have a "lr" attribute.')
        lr = float(K.get_value(self.model.optimizer.learning_rate))
        scheduled_lr = self.schedule(epoch, lr)
        K.set_value(self.model.optimizer.lr, scheduled_lr)
        self.seen.append(lr)


class EarlyStoppingAtMinLoss(keras.callbacks.Callback):
    """The guide's early stopping that restores the best weights with `get_weights`."""

    def __init__(self, patience=0):
        super(EarlyStoppingAtMinLoss, self).__init__()
        self.patience = patience
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best = 0, 0, np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best, self.wait = current, 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                self.model.set_weights(self.best_weights)


def _lr_schedule(epoch, lr):
    return {2: 0.05, 3: 0.01}.get(epoch, lr)


def test_custom_callbacks_read_and_set_learning_rate():
    """`K.get_value(self.model.optimizer.learning_rate)` / `K.set_value(optimizer.lr, ...)`
    from `on_epoch_begin`, batch-end logs, `stop_training` + `set_weights(best_weights)`."""
    x = _rng().random((16, 4)).astype("float32")
    y = x.sum(1)
    model = keras.Sequential()
    model.add(layers.Dense(1, input_dim=4))
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.1),
                  loss="mean_squared_error", metrics=["mean_absolute_error"])
    scheduler = CustomLearningRateScheduler(_lr_schedule)
    stopper = EarlyStoppingAtMinLoss(patience=30)
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0,
                        callbacks=[scheduler, stopper])
    assert scheduler.seen == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.01])
    assert float(K.get_value(model.optimizer.lr)) == pytest.approx(0.01)
    assert sorted(history.history) == ["loss", "mean_absolute_error"]
    assert stopper.best == pytest.approx(min(history.history["loss"]))


def test_learning_rate_scheduler_and_reduce_on_plateau_as_keras():
    """The built-in LearningRateScheduler (the guide's `lr * exp(-0.1)` after epoch 2) and
    ReduceLROnPlateau: learning rates and log keys as Keras 3's."""
    x = _rng().random((8, 4)).astype("float32")
    y = x.sum(1)

    def run(lib):
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(1)])
        model.compile(optimizer=lib.optimizers.SGD(0.01), loss="mse")

        def scheduler(epoch, lr):
            return lr if epoch < 2 else lr * np.exp(-0.1)

        first = model.fit(x, y, epochs=4, verbose=0,
                          callbacks=[lib.callbacks.LearningRateScheduler(scheduler)])
        plateau = lib.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.2, patience=0,
                                                  min_delta=1e9, min_lr=0.0001)
        second = model.fit(x, y, epochs=3, verbose=0, callbacks=[plateau])
        return first.history, second.history

    (ours_a, ours_b), (theirs_a, theirs_b) = run(keras), run(real_keras)
    assert sorted(ours_a) == sorted(theirs_a) and sorted(ours_b) == sorted(theirs_b)
    assert ours_a["learning_rate"] == pytest.approx(theirs_a["learning_rate"])
    assert ours_b["learning_rate"] == pytest.approx(theirs_b["learning_rate"])


# ------------------------------------------------------------------ generators
def _generator_model(lib):
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(4, activation="relu"),
                            lib.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["acc"])
    return model


def test_fit_on_endless_generator_with_steps_per_epoch_as_keras():
    """Keras 2's `fit(generator, steps_per_epoch=..., validation_data=generator,
    validation_steps=...)`: batches per epoch and history keys as Keras 3."""
    x = _rng().random((16, 4)).astype("float32")
    y = (x.sum(1) > 2).astype("float32")

    def generator(batch_size):
        while True:
            for start in range(0, len(x), batch_size):
                yield x[start:start + batch_size], y[start:start + batch_size]

    def run(lib):
        counter = type("Counter", (_BatchCounter, lib.callbacks.Callback), {})()
        history = _generator_model(lib).fit(
            generator(4), steps_per_epoch=3, epochs=2, validation_data=generator(4),
            validation_steps=2, verbose=0, callbacks=[counter])
        return sorted(history.history), counter.batches

    assert run(keras) == run(real_keras)


def test_fit_predict_take_keras2_loading_arguments_with_a_sequence():
    """tf.keras 2's `fit`/`evaluate`/`predict(..., workers=, use_multiprocessing=,
    max_queue_size=)` on a `keras.utils.Sequence`: accepted and ignored (Keras 3 moved them
    onto PyDataset); `steps_per_epoch` shorter than the Sequence."""
    x = _rng().random((20, 4)).astype("float32")
    y = (x.sum(1) > 2).astype("float32")

    class Batches(keras.utils.Sequence):
        def __init__(self, batch_size):
            self.batch_size = batch_size

        def __len__(self):
            return int(np.ceil(len(x) / float(self.batch_size)))

        def __getitem__(self, idx):
            window = slice(idx * self.batch_size, (idx + 1) * self.batch_size)
            return x[window], y[window]

    model = _generator_model(keras)
    loading = dict(workers=2, use_multiprocessing=True, max_queue_size=4)
    history = model.fit(Batches(8), epochs=2, verbose=0, **loading)
    assert sorted(history.history) == ["acc", "loss"]
    counter = type("Counter", (_BatchCounter, keras.callbacks.Callback), {})()
    model.fit(Batches(8), steps_per_epoch=2, epochs=1, verbose=0, callbacks=[counter])
    assert counter.batches == [0, 1]
    assert len(model.evaluate(Batches(8), verbose=0, **loading)) == 2
    assert model.predict(Batches(8), verbose=0, **loading).shape == (20, 1)
    with pytest.raises(TypeError, match="fit\\(\\) got an unexpected keyword argument 'worker'"):
        model.fit(Batches(8), worker=2)
