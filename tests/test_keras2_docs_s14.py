"""The code snippets of Keras 2.2-2.4's own documentation (getting-started guides, FAQ, and the
per-module pages), with `keras` renamed to `kestrel`, on tiny synthetic data: what they rely on
that the other Keras 2 replays do not cover. Checked against real Keras 3 (torch backend) where
both run the same code, else against what Keras 2's documentation and source say (noted per
test).
"""
import os
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras.src.legacy.preprocessing import image as keras_image  # noqa: E402
from keras.src.legacy.preprocessing import sequence as keras_sequence  # noqa: E402
from keras.src.legacy.preprocessing import text as keras_text  # noqa: E402
from PIL import Image  # noqa: E402

import kestrel  # noqa: E402
from kestrel import backend as K  # noqa: E402
from kestrel.layers import Conv2D, Dense, Input, LSTM  # noqa: E402
from kestrel.models import Model, Sequential  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning",
                                        "ignore::DeprecationWarning")
RNG = np.random.default_rng(14)


def test_sequential_guide_keras2_spellings_train():
    """sequential-model-guide.md: `input_dim`, `SGD(lr=, decay=)`, a custom metric function of
    `K.mean`, and the stateful stacked LSTM with `batch_input_shape`; logs as Keras 3 names."""
    model = Sequential()
    model.add(Dense(8, activation="relu", input_dim=20))
    model.add(Dense(3, activation="softmax"))
    sgd = kestrel.optimizers.SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True)

    def mean_pred(y_true, y_pred):
        return K.mean(y_pred)

    model.compile(loss="categorical_crossentropy", optimizer=sgd,
                  metrics=["accuracy", mean_pred])
    x = RNG.random((16, 20))
    y = kestrel.utils.to_categorical(RNG.integers(3, size=(16, 1)), num_classes=3)
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "mean_pred"]
    assert history.history["mean_pred"][0] == pytest.approx(1 / 3, abs=1e-5)

    stateful = Sequential()
    stateful.add(LSTM(4, return_sequences=True, stateful=True, batch_input_shape=(4, 3, 5)))
    stateful.add(LSTM(4, stateful=True))
    stateful.add(Dense(2, activation="softmax"))
    stateful.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    stateful.fit(RNG.random((8, 3, 5)), RNG.random((8, 2)), batch_size=4, epochs=1,
                 shuffle=False, validation_data=(RNG.random((4, 3, 5)), RNG.random((4, 2))),
                 verbose=0)
    assert stateful.output_shape == (4, 2)


def test_functional_guide_multi_input_multi_output_model_by_layer_names():
    """functional-api-guide.md: the headline model compiled with `loss` and `loss_weights`
    dicts keyed by output names, fed dicts keyed by input names; same logs as Keras 3."""
    headline = RNG.integers(1, 50, size=(6, 7))
    extra = RNG.standard_normal((6, 5))
    labels = {"main_output": RNG.integers(2, size=(6, 1)), "aux_output": RNG.integers(2, size=(6, 1))}

    def run(lib):
        lib.utils.set_random_seed(0)
        main_input = lib.layers.Input(shape=(7,), dtype="int32", name="main_input")
        lstm_out = lib.layers.LSTM(4)(lib.layers.Embedding(output_dim=6, input_dim=50)(main_input))
        aux_output = lib.layers.Dense(1, activation="sigmoid", name="aux_output")(lstm_out)
        aux_input = lib.layers.Input(shape=(5,), name="aux_input")
        hidden = lib.layers.Dense(4, activation="relu")(
            lib.layers.concatenate([lstm_out, aux_input]))
        main_output = lib.layers.Dense(1, activation="sigmoid", name="main_output")(hidden)
        model = lib.models.Model(inputs=[main_input, aux_input],
                                 outputs=[main_output, aux_output])
        model.compile(optimizer="rmsprop",
                      loss={"main_output": "binary_crossentropy",
                            "aux_output": "binary_crossentropy"},
                      loss_weights={"main_output": 1., "aux_output": 0.2})
        history = model.fit({"main_input": headline, "aux_input": extra}, labels, epochs=1,
                            batch_size=32, verbose=0)
        return history.history, model.predict([headline, extra], verbose=0)

    ours, theirs = run(kestrel), run(keras)
    assert sorted(ours[0]) == sorted(theirs[0])
    assert [p.shape for p in ours[1]] == [p.shape for p in theirs[1]]


def test_functional_guide_shared_layer_node_accessors():
    """functional-api-guide.md, "The concept of layer node": `get_output_at(i)` and
    `get_input_shape_at(i)`; and, as Keras 2's base_layer.py, `input_shape` is refused with an
    AttributeError naming the layer once calls differ in shape, kept when they agree (Keras 3
    has no `input_shape` on layers)."""
    a, b = Input(shape=(4, 3)), Input(shape=(4, 3))
    lstm = LSTM(2)
    encoded_a, encoded_b = lstm(a), lstm(b)
    assert lstm.get_output_at(0) is encoded_a and lstm.get_output_at(1) is encoded_b
    assert lstm.input_shape == (None, 4, 3) and lstm.output_shape == (None, 2)

    conv = Conv2D(2, (3, 3), padding="same", name="conv_shared")
    conv(Input(shape=(8, 8, 3)))
    assert conv.input_shape == (None, 8, 8, 3)
    conv(Input(shape=(6, 6, 3)))
    assert conv.get_input_shape_at(0) == (None, 8, 8, 3)
    assert conv.get_input_shape_at(1) == (None, 6, 6, 3)
    with pytest.raises(AttributeError, match="'conv_shared' has multiple inbound nodes"):
        conv.input_shape
    with pytest.raises(AttributeError, match="get_output_shape_at"):
        conv.output_shape
    with pytest.raises(AttributeError, match="never been called"):
        Dense(2).output


def test_faq_predict_reads_an_h5py_dataset_as_keras(tmp_path):
    """faq.md "What if my data does not fit in memory": `model.predict(f['x_data'])` on an open
    h5py dataset. Keras 3 slices anything with `__array__` as an array; so does Kestrel (it
    used to take the dataset for a PyDataset of single samples and flatten the predictions)."""
    x = RNG.random((10, 3)).astype("float32")
    y = RNG.random((10, 2)).astype("float32")
    with h5py.File(tmp_path / "file.hdf5", "w") as f:
        f["x_data"], f["y_data"] = x, y

    def run(lib):
        model = lib.models.Sequential([lib.layers.Input((3,)), lib.layers.Dense(2)])
        model.compile("sgd", "mse")
        with h5py.File(tmp_path / "file.hdf5", "r") as f:
            model.fit(f["x_data"], f["y_data"], batch_size=4, epochs=1, verbose=0)
            return model.predict(f["x_data"], batch_size=4, verbose=0), model.get_weights()

    ours = run(kestrel)
    assert ours[0].shape == run(keras)[0].shape == (10, 2)
    np.testing.assert_allclose(ours[0], x @ ours[1][0] + ours[1][1], rtol=1e-5, atol=1e-6)


def test_faq_save_load_by_name_intermediate_outputs_and_frozen_layers(tmp_path):
    """faq.md: `load_weights(by_name=True)` into a model sharing one layer name;
    `K.function` with `K.learning_phase()`; and, as the FAQ documents for Keras 2, a model
    compiled while a shared layer was frozen keeps it frozen after `layer.trainable = True`,
    while a model compiled afterwards trains it."""
    old = Sequential([Dense(2, input_dim=3, name="dense_1"), Dense(3, name="dense_2")])
    old.save_weights(str(tmp_path / "my_model_weights.h5"))
    new = Sequential([Dense(2, input_dim=3, name="dense_1"), Dense(10, name="new_dense")])
    new.load_weights(str(tmp_path / "my_model_weights.h5"), by_name=True)
    np.testing.assert_array_equal(new.layers[0].get_weights()[0], old.layers[0].get_weights()[0])

    model = Sequential([Dense(8, input_dim=3), kestrel.layers.Dropout(0.5), Dense(2)])
    dropout_output = K.function([model.layers[0].input, K.learning_phase()],
                                [model.layers[1].output])
    x = RNG.random((16, 3)) + 1.
    dense_output = model.layers[0](x).detach().numpy()
    np.testing.assert_allclose(dropout_output([x, 0])[0], dense_output, rtol=1e-6)
    assert (dropout_output([x, 1])[0] == 0).any()

    inputs = Input(shape=(4,))
    layer = Dense(4)
    layer.trainable = False
    outputs = layer(inputs)
    frozen_model = Model(inputs, outputs)
    frozen_model.compile(optimizer="rmsprop", loss="mse")
    layer.trainable = True
    trainable_model = Model(inputs, outputs)
    trainable_model.compile(optimizer="rmsprop", loss="mse")
    data, labels = RNG.random((8, 4)), RNG.random((8, 4))
    before = layer.get_weights()[0]
    frozen_model.fit(data, labels, verbose=0)
    np.testing.assert_array_equal(layer.get_weights()[0], before)
    trainable_model.fit(data, labels, verbose=0)
    assert not np.allclose(layer.get_weights()[0], before)


def _image_folders(root):
    """The same six images under data/images/a and data/masks/a."""
    for i in range(6):
        pixels = (RNG.random((12, 12, 3)) * 255).astype("uint8")
        for folder in ("images", "masks"):
            os.makedirs(root / folder / "a", exist_ok=True)
            Image.fromarray(pixels).save(root / folder / "a" / f"{i}.png")


def _image_and_mask_batch(generator_class, root, images):
    """ImageDataGenerator's docstring example: two generators with the same seed."""
    data_gen_args = dict(featurewise_center=True, featurewise_std_normalization=True,
                         rotation_range=90., width_shift_range=0.1, height_shift_range=0.1,
                         zoom_range=0.2)
    image_datagen = generator_class(**data_gen_args)
    mask_datagen = generator_class(**data_gen_args)
    seed = 1
    image_datagen.fit(images, augment=True, seed=seed)
    mask_datagen.fit(images, augment=True, seed=seed)
    image_generator = image_datagen.flow_from_directory(
        str(root / "images"), class_mode=None, seed=seed, target_size=(12, 12), batch_size=4)
    mask_generator = mask_datagen.flow_from_directory(
        str(root / "masks"), class_mode=None, seed=seed, target_size=(12, 12), batch_size=4)
    return zip(image_generator, mask_generator)


def test_image_data_generator_images_and_masks_with_one_seed(tmp_path):
    """ImageDataGenerator's docstring (Keras 2.1-2.2): images and masks transformed alike by
    the same seed, batch values equal to Keras 3's legacy generator; the `zip` of both goes to
    `fit_generator` (Keras 2 takes any iterator there)."""
    _image_folders(tmp_path)
    images = RNG.random((6, 12, 12, 3)) * 255
    ours = _image_and_mask_batch(kestrel.preprocessing.image.ImageDataGenerator, tmp_path,
                                 images)
    theirs = _image_and_mask_batch(keras_image.ImageDataGenerator, tmp_path, images)
    image_batch, mask_batch = next(ours)
    np.testing.assert_array_equal(image_batch, mask_batch)
    np.testing.assert_allclose(image_batch, next(theirs)[0], rtol=1e-5, atol=1e-5)

    model = Sequential([Conv2D(2, 3, padding="same", input_shape=(12, 12, 3)), Conv2D(3, 1)])
    model.compile("sgd", "mse")
    history = model.fit_generator(ours, steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_image_data_generator_manual_loop_breaks_by_hand():
    """The docstring's "manual" loop: `datagen.flow` loops for ever, broken after
    `len(x_train) / 32` batches, each batch fed to `model.fit`."""
    x_train = RNG.random((10, 8, 8, 3))
    y_train = kestrel.utils.to_categorical(RNG.integers(2, size=10), 2)
    datagen = kestrel.preprocessing.image.ImageDataGenerator(
        featurewise_center=True, featurewise_std_normalization=True, rotation_range=20,
        width_shift_range=0.2, height_shift_range=0.2, horizontal_flip=True)
    datagen.fit(x_train)
    model = Sequential([kestrel.layers.Flatten(input_shape=(8, 8, 3)),
                        Dense(2, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    batches = 0
    for x_batch, y_batch in datagen.flow(x_train, y_train, batch_size=4):
        model.fit(x_batch, y_batch, verbose=0)
        batches += 1
        if batches >= len(x_train) / 4:
            break
    assert batches == 3


def test_applications_fine_tune_inception_v3_from_layer_249():
    """applications.md "Fine-tune InceptionV3 on a new set of classes" (weights=None, 75x75):
    the layer counts, the trainable weights after freezing the base and after unfreezing from
    layer 249, and that layer's name, as Keras 3."""
    def run(lib):
        lib.utils.clear_session()
        base_model = lib.applications.InceptionV3(weights=None, include_top=False,
                                                  input_shape=(75, 75, 3))
        x = lib.layers.GlobalAveragePooling2D()(base_model.output)
        x = lib.layers.Dense(8, activation="relu")(x)
        model = lib.models.Model(inputs=base_model.input,
                                 outputs=lib.layers.Dense(5, activation="softmax")(x))
        for layer in base_model.layers:
            layer.trainable = False
        top_only = len(model.trainable_weights)
        for layer in model.layers[:249]:
            layer.trainable = False
        for layer in model.layers[249:]:
            layer.trainable = True
        return len(model.layers), top_only, len(model.trainable_weights), model.layers[249].name

    assert run(kestrel) == run(keras)


def test_text_and_sequence_pages_as_keras():
    """preprocessing/text.md and sequence.md: Tokenizer with `oov_token`, its matrices and
    JSON, `text_to_word_sequence`, `hashing_trick`, `pad_sequences`, `make_sampling_table`,
    and TimeseriesGenerator's docstring example, against Keras 3's legacy preprocessing."""
    texts = ["The cat sat on the mat.", "The dog ate my homework!"]

    def run(tokenizer_class, text_module, sequence_module):
        tokenizer = tokenizer_class(num_words=6, oov_token="<unk>")
        tokenizer.fit_on_texts(texts)
        sequences = tokenizer.texts_to_sequences(texts)
        return (tokenizer.word_index, sequences, tokenizer.sequences_to_texts(sequences),
                tokenizer.texts_to_matrix(texts, mode="tfidf").round(6).tolist(),
                text_module.text_to_word_sequence("Hello, World!  foo"),
                text_module.hashing_trick("a b a", 7, hash_function="md5"),
                sequence_module.make_sampling_table(5).round(8).tolist())

    ours = run(kestrel.preprocessing.text.Tokenizer, kestrel.preprocessing.text,
               kestrel.preprocessing.sequence)
    assert ours == run(keras_text.Tokenizer, keras_text, keras_sequence)
    np.testing.assert_array_equal(
        kestrel.preprocessing.sequence.pad_sequences([[1, 2, 3], [4]], maxlen=2,
                                                     padding="post", truncating="post",
                                                     value=9),
        keras.utils.pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post",
                                  truncating="post", value=9))

    data = np.array([[i] for i in range(50)])
    data_gen = kestrel.preprocessing.sequence.TimeseriesGenerator(
        data, data, length=10, sampling_rate=2, batch_size=2)
    assert len(data_gen) == 20
    x, y = data_gen[0]
    np.testing.assert_array_equal(x, [[[0], [2], [4], [6], [8]], [[1], [3], [5], [7], [9]]])
    np.testing.assert_array_equal(y, [[10], [11]])


def _classifier_model(hidden=4):
    model = Sequential([Dense(hidden, activation="relu", input_dim=4),
                        Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class _Builder:
    def __call__(self, hidden=4):
        return _classifier_model(hidden)


def test_scikit_learn_page_three_kinds_of_build_fn():
    """scikit-learn-api.md: `build_fn` as a function, as an instance with `__call__`, or None
    in a subclass whose `__call__` builds; `sk_params` split between the build function and
    `fit` (Keras 2's wrappers)."""
    from kestrel.wrappers.scikit_learn import KerasClassifier

    class MyClassifier(KerasClassifier):
        def __call__(self, hidden=4):
            return _classifier_model(hidden)

    x, y = RNG.random((12, 4)), RNG.integers(3, size=12)
    estimators = [KerasClassifier(build_fn=_classifier_model, hidden=5, epochs=1, verbose=0),
                  KerasClassifier(build_fn=_Builder(), epochs=1, verbose=0),
                  MyClassifier(hidden=6, epochs=1, verbose=0)]
    for estimator, units in zip(estimators, (5, 4, 6)):
        estimator.fit(x, y)
        assert estimator.model.layers[0].units == units
        assert estimator.predict(x).shape == (12,)
        assert estimator.predict_proba(x).shape == (12, 3)
        assert 0 <= estimator.score(x, y) <= 1


def test_module_pages_constraints_initializers_regularizers_optimizers():
    """constraints.md, initializers.md, regularizers.md, optimizers.md, metrics.md: a custom
    initializer of `K.random_normal`, `max_norm(2.)` enforced after updates, a regularizer
    function's penalty in `model.losses`, clipnorm / clipvalue; `metrics.mae` logs under its
    function name, as Keras 3 logs `keras.metrics.mean_absolute_error`."""
    def my_init(shape, dtype=None):
        return K.random_normal(shape, dtype=dtype)

    def l1_reg(weight_matrix):
        return 0.01 * K.sum(K.abs(weight_matrix))

    model = Sequential()
    model.add(Dense(6, input_dim=4, kernel_initializer=my_init, kernel_regularizer=l1_reg))
    model.add(Dense(6, kernel_constraint=kestrel.constraints.max_norm(2.),
                    kernel_initializer=kestrel.initializers.random_normal(stddev=0.01)))
    model.add(Dense(3, activation=K.tanh))
    model.compile(loss="mean_squared_error",
                  optimizer=kestrel.optimizers.SGD(lr=5., clipnorm=1.),
                  metrics=[kestrel.metrics.mae, kestrel.metrics.categorical_accuracy])
    history = model.fit(RNG.random((8, 4)), RNG.random((8, 3)) * 50, verbose=0)
    assert sorted(history.history) == ["categorical_accuracy", "loss", "mean_absolute_error"]
    norms = np.sqrt((model.layers[1].get_weights()[0] ** 2).sum(axis=0))
    assert norms.max() <= 2. + 1e-5
    penalty = 0.01 * np.abs(model.layers[0].get_weights()[0]).sum()
    assert model.losses[0].item() == pytest.approx(penalty, rel=1e-5)
    assert kestrel.optimizers.SGD(lr=0.01, clipvalue=0.5).clipvalue == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    reference.compile(loss="mse", optimizer="sgd",
                      metrics=[keras.metrics.mean_absolute_error,
                               keras.metrics.categorical_accuracy])
    keras_history = reference.fit(RNG.random((8, 4)), RNG.random((8, 3)), verbose=0)
    assert sorted(keras_history.history) == sorted(history.history)


class _SlowSequence(kestrel.utils.Sequence):
    """data_utils.py's Sequence docstring shape; later batches come back sooner."""

    def __init__(self, x_set, batch_size):
        self.x, self.batch_size, self.epochs_ended = x_set, batch_size, 0

    def __len__(self):
        return int(np.ceil(len(self.x) / float(self.batch_size)))

    def __getitem__(self, idx):
        time.sleep(0.01 * (2 - idx % 3))
        return self.x[idx * self.batch_size:(idx + 1) * self.batch_size]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_keras2_enqueuers_of_keras_utils():
    """`keras.utils.OrderedEnqueuer` / `GeneratorEnqueuer` (Keras 2.2-2.4, shown in
    SequenceEnqueuer's docstring: start, get, stop): batches in order whatever the worker that
    read them, epoch after epoch with `on_epoch_end` in between; a generator's items until it
    ends; a worker's error raised by `get()`. Keras 3 has no public equivalent."""
    from kestrel.utils import GeneratorEnqueuer, OrderedEnqueuer
    from kestrel.utils.data_utils import SequenceEnqueuer

    sequence = _SlowSequence(np.arange(10), 4)
    enqueuer = OrderedEnqueuer(sequence, use_multiprocessing=False)
    assert isinstance(enqueuer, SequenceEnqueuer)
    enqueuer.start(workers=3, max_queue_size=4)
    batches = enqueuer.get()
    taken = [next(batches).tolist() for _ in range(7)]
    assert taken == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] * 2 + [[0, 1, 2, 3]]
    assert sequence.epochs_ended == 2 and enqueuer.is_running()
    enqueuer.stop()
    assert not enqueuer.is_running()

    def five():
        yield from range(5)

    enqueuer = GeneratorEnqueuer(five(), use_multiprocessing=False)
    enqueuer.start(workers=2, max_queue_size=3)
    assert sorted(enqueuer.get()) == [0, 1, 2, 3, 4]
    enqueuer.stop()

    def failing():
        yield 1
        raise KeyError("batch 2")

    enqueuer = GeneratorEnqueuer(failing())
    enqueuer.start()
    with pytest.raises(KeyError, match="batch 2"):
        list(enqueuer.get())
    assert not enqueuer.is_running()
