"""Condensed replays of classic Keras 2 `examples/` scripts and idioms not covered elsewhere
(cifar10_cnn_capsule, mnist_acgan's full loop, class_activation_maps, image_ocr's training
driver, custom layers on `conv_utils`, Keras 2.0-2.2 names, losses and layers that rebind
tensors with `op=`, resuming an optimizer's state, Keras 1's `merge` and `Highway`,
`K.function` with `optimizer.get_updates`), with `keras` renamed to `kestrel`, on tiny
synthetic data. Checked against real Keras 3 (torch backend) where both run the same code,
else against Keras 2's source and NumPy (noted per test).
"""
import itertools
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from kestrel import backend as K  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
RNG = np.random.default_rng(13)


def _squash(x, axis=-1):
    s_squared_norm = K.sum(K.square(x), axis, keepdims=True) + K.epsilon()
    return K.sqrt(s_squared_norm) / (0.5 + s_squared_norm) * x


class Capsule(kestrel.layers.Layer):
    """cifar10_cnn_capsule's layer (shared weights), as the example wrote it."""

    def __init__(self, num_capsule, dim_capsule, routings=3, **kwargs):
        super().__init__(**kwargs)
        self.num_capsule, self.dim_capsule, self.routings = num_capsule, dim_capsule, routings

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="capsule_kernel", shape=(1, input_shape[-1], self.num_capsule * self.dim_capsule),
            initializer="glorot_uniform", trainable=True)

    def call(self, inputs, **kwargs):
        hat_inputs = K.conv1d(inputs, self.kernel)
        batch_size, input_num_capsule = K.shape(inputs)[0], K.shape(inputs)[1]
        hat_inputs = K.reshape(hat_inputs, (batch_size, input_num_capsule,
                                            self.num_capsule, self.dim_capsule))
        hat_inputs = K.permute_dimensions(hat_inputs, (0, 2, 1, 3))
        b = K.zeros_like(hat_inputs[:, :, :, 0])
        for i in range(self.routings):
            c = K.softmax(b, 1)
            o = _squash(K.batch_dot(c, hat_inputs, [2, 2]))
            if i < self.routings - 1:
                b = K.batch_dot(o, hat_inputs, [2, 3])
        return o

    def compute_output_shape(self, input_shape):
        return None, self.num_capsule, self.dim_capsule


def test_cifar10_cnn_capsule_routing_fails_as_in_keras_2_3():
    """The capsule example relied on Keras <= 2.2's batch_dot, which took leading axes as batch
    axes; Keras 2.3 / tf.keras 2 (and Kestrel) keep every other axis of both inputs, so the
    routing's second batch_dot fails with Keras 2.3's message (keras-team/keras#13599)."""
    layers = kestrel.layers
    image = layers.Input(shape=(None, None, 3))
    x = layers.Conv2D(4, (3, 3), activation="relu")(image)
    x = layers.AveragePooling2D((2, 2))(x)
    x = layers.Reshape((-1, 4))(x)
    capsule = Capsule(10, 3, 3)(x)
    assert capsule.shape == (None, 10, 3)
    output = layers.Lambda(lambda z: K.sqrt(K.sum(K.square(z), 2)))(capsule)
    model = kestrel.models.Model(inputs=image, outputs=output)
    model.compile(loss="mse", optimizer="adam")
    images = RNG.random((2, 8, 8, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"Can not do batch_dot on inputs with shapes "
                                         r"\(2, 10, 10, 3\) and \(2, 10, 9, 3\) with axes="
                                         r"\[2, 3\]\. x\.shape\[2\] != y\.shape\[3\] \(10 != 3\)"):
        model.predict(images, verbose=0)

    # the first routing step, by the Keras 2.3 rule: x's other axes, then y's
    c, hat = RNG.random((2, 10, 9)), RNG.random((2, 10, 9, 3))
    np.testing.assert_allclose(K.eval(K.batch_dot(c, hat, [2, 2])),
                               np.einsum("bin,bjnd->bijd", c, hat), rtol=1e-6)


def _acgan_generator(layers, latent_size, num_classes):
    cnn = kestrel.models.Sequential()
    cnn.add(layers.Dense(3 * 3 * 4, input_dim=latent_size, activation="relu"))
    cnn.add(layers.Reshape((3, 3, 4)))
    cnn.add(layers.Conv2DTranspose(4, 5, strides=1, padding="valid", activation="relu",
                                   kernel_initializer="glorot_normal"))
    cnn.add(layers.BatchNormalization())
    cnn.add(layers.Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh",
                                   kernel_initializer="glorot_normal"))
    latent = layers.Input(shape=(latent_size,))
    image_class = layers.Input(shape=(1,), dtype="int32")
    cls = layers.Embedding(num_classes, latent_size,
                           embeddings_initializer="glorot_normal")(image_class)
    h = layers.multiply([latent, cls])
    return kestrel.models.Model([latent, image_class], cnn(h)), h


def _acgan_discriminator(layers, num_classes):
    from kestrel.layers.advanced_activations import LeakyReLU
    cnn = kestrel.models.Sequential()
    cnn.add(layers.Conv2D(4, 3, padding="same", strides=2, input_shape=(14, 14, 1)))
    cnn.add(LeakyReLU(0.2))
    cnn.add(layers.Dropout(0.3))
    cnn.add(layers.Flatten())
    image = layers.Input(shape=(14, 14, 1))
    features = cnn(image)
    fake = layers.Dense(1, activation="sigmoid", name="generation")(features)
    aux = layers.Dense(num_classes, activation="softmax", name="auxiliary")(features)
    return kestrel.models.Model(image, [fake, aux])


def test_mnist_acgan_training_loop(tmp_path):
    """mnist_acgan's loop: the generator multiplies the latent vector `(None, latent)` by the
    class embedding `(None, 1, latent)` (a broadcast, as Keras 2's merge layers), which its
    Sequential (`Dense(..., input_dim=latent)`) takes as Keras 2 did (Keras 3 refuses the
    rank); per-output sample weights; the frozen discriminator in the combined model;
    `Progbar`; `save_weights(name, True)` (Keras 2's positional `overwrite`)."""
    from kestrel.optimizers import Adam
    from kestrel.utils.generic_utils import Progbar
    layers, latent_size, num_classes = kestrel.layers, 4, 3
    _fresh(kestrel)
    discriminator = _acgan_discriminator(layers, num_classes)
    discriminator.compile(optimizer=Adam(learning_rate=0.0002, beta_1=0.5),
                          loss=["binary_crossentropy", "sparse_categorical_crossentropy"])
    generator, h = _acgan_generator(layers, latent_size, num_classes)
    assert h.shape == (None, 1, latent_size) and generator.output_shape == (None, 14, 14, 1)
    latent = layers.Input(shape=(latent_size,))
    image_class = layers.Input(shape=(1,), dtype="int32")
    discriminator.trainable = False
    fake, aux = discriminator(generator([latent, image_class]))
    combined = kestrel.models.Model([latent, image_class], [fake, aux])
    combined.compile(optimizer=Adam(learning_rate=0.0002, beta_1=0.5),
                     loss=["binary_crossentropy", "sparse_categorical_crossentropy"])

    image_batch = RNG.uniform(-1, 1, (4, 14, 14, 1)).astype("float32")
    label_batch = np.arange(4) % num_classes
    progress_bar = Progbar(target=1)
    noise = RNG.uniform(-1, 1, (4, latent_size))
    sampled_labels = RNG.integers(0, num_classes, 4)
    generated = generator.predict([noise, sampled_labels.reshape((-1, 1))], verbose=0)
    x = np.concatenate((image_batch, generated))
    y = np.array([0.95] * 4 + [0] * 4)
    aux_y = np.concatenate((label_batch, sampled_labels), axis=0)
    weights = [np.ones(8), np.concatenate((np.ones(4) * 2, np.zeros(4)))]
    disc_before = [w.copy() for w in discriminator.get_weights()]
    disc_loss = discriminator.train_on_batch(x, [y, aux_y], sample_weight=weights)
    disc_after = discriminator.get_weights()
    gen_before = [w.copy() for w in generator.get_weights()]
    gen_loss = combined.train_on_batch([RNG.uniform(-1, 1, (8, latent_size)),
                                        RNG.integers(0, num_classes, (8, 1))],
                                       [np.ones(8) * 0.95, RNG.integers(0, num_classes, 8)])
    progress_bar.update(1)
    assert len(disc_loss) == len(gen_loss) == 3 and np.all(np.isfinite(disc_loss + gen_loss))
    assert discriminator.metrics_names == ["loss", "generation_loss", "auxiliary_loss"]
    assert any(not np.array_equal(a, b) for a, b in zip(disc_before, disc_after))
    for a, b in zip(disc_after, discriminator.get_weights()):  # frozen in `combined`
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(gen_before, generator.get_weights()))
    test_loss = discriminator.evaluate(x, [y, aux_y], verbose=False)
    assert len(test_loss) == 3

    path = str(tmp_path / "params_generator_epoch_{0:03d}.hdf5".format(1))
    generator.save_weights(path, True)
    reloaded, _ = _acgan_generator(layers, latent_size, num_classes)
    reloaded.load_weights(path)
    grid_labels = np.array([[i] * 2 for i in range(num_classes)]).reshape(-1, 1)
    grid_noise = np.tile(RNG.uniform(-1, 1, (2, latent_size)), (num_classes, 1))
    np.testing.assert_allclose(reloaded.predict([grid_noise, grid_labels], verbose=0),
                               generator.predict([grid_noise, grid_labels], verbose=0),
                               rtol=1e-5, atol=1e-6)


def _cam_model(lib, n_classes):
    inputs = lib.layers.Input((8, 8, 3))
    x = lib.layers.Conv2D(4, 3, padding="same", activation="relu", name="last_conv")(inputs)
    x = lib.layers.GlobalAveragePooling2D()(x)
    x = lib.layers.Dense(n_classes, activation="softmax", name="fc")(x)
    return lib.models.Model(inputs, x)


def test_class_activation_maps_from_the_dense_weights_as_keras():
    """class_activation_maps' `get_cam_model`: the last Dense's kernel reshaped into a 1x1
    Conv2D over the bilinearly upsampled last conv output, in a two-output model; the CAM
    averaged over space is the logits (softmax inputs). Same values as Keras 3."""
    n_classes, image = 3, RNG.random((1, 8, 8, 3)).astype("float32")
    results = {}
    for lib in (kestrel, keras):
        model = _cam_model(_fresh(lib), n_classes)
        if lib is keras:
            model.set_weights(results[kestrel][2])
        final_params = model.get_layer("fc").get_weights()
        final_params = (final_params[0].reshape(1, 1, -1, n_classes), final_params[1])
        x = lib.layers.UpSampling2D(size=(4, 4), interpolation="bilinear")(
            model.get_layer("last_conv").output)
        x = lib.layers.Conv2D(filters=n_classes, kernel_size=(1, 1), name="predictions_2")(x)
        cam_model = lib.models.Model(inputs=model.input, outputs=[model.output, x])
        cam_model.get_layer("predictions_2").set_weights(final_params)
        preds, cams = cam_model.predict(image, verbose=0)
        results[lib] = preds, cams, model.get_weights()
    preds, cams, _ = results[kestrel]
    assert cams.shape == (1, 32, 32, n_classes)
    np.testing.assert_allclose(preds, results[keras][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cams, results[keras][1], rtol=1e-5, atol=1e-5)
    logits = np.log(preds[0]) - np.log(preds[0]).mean()
    spatial = cams[0].mean(axis=(0, 1))
    np.testing.assert_allclose(logits, spatial - spatial.mean(), atol=1e-4)
    top = np.argsort(preds[0])[-1:]
    class_activation_map = np.zeros_like(cams[0, :, :, 0])
    for i in top:
        class_activation_map += cams[0, :, :, i]
    assert class_activation_map.shape == (32, 32)


ALPHABET = "abcd "
WORDS = ["ab", "cab", "bad", "a b", "dd", "ac", "bc", "cd"]


class TextImageGenerator(kestrel.callbacks.Callback):
    """image_ocr's generator: a callback whose `on_train_begin` builds the word list its
    batches read; batches are dicts that also carry the words (`source_str`)."""

    def __init__(self, minibatch_size, img_w, img_h, downsample_factor, val_split,
                 absolute_max_string_len=3):
        self.minibatch_size, self.img_w, self.img_h = minibatch_size, img_w, img_h
        self.downsample_factor, self.val_split = downsample_factor, val_split
        self.blank_label = self.get_output_size() - 1
        self.absolute_max_string_len = absolute_max_string_len
        self.events = []

    def get_output_size(self):
        return len(ALPHABET) + 1

    def build_word_list(self):
        self.Y_data = np.ones([len(WORDS), self.absolute_max_string_len]) * -1
        self.X_text, self.Y_len = list(WORDS), np.array([[len(w)] for w in WORDS])
        for i, word in enumerate(WORDS):
            self.Y_data[i, 0:len(word)] = [ALPHABET.find(c) for c in word]
        self.cur_val_index, self.cur_train_index = self.val_split, 0

    def paint_func(self, text):
        seed = sum(map(ord, text)) + len(text)
        return np.random.default_rng(seed).random((1, self.img_h, self.img_w))

    def get_batch(self, index, size, train):
        self.events.append("batch")
        X_data = np.ones([size, self.img_w, self.img_h, 1])
        labels = np.ones([size, self.absolute_max_string_len])
        input_length, label_length, source_str = np.zeros([size, 1]), np.zeros([size, 1]), []
        for i in range(size):
            word = "" if train and i > size - 2 else self.X_text[index + i]
            X_data[i, 0:self.img_w, :, 0] = self.paint_func(word)[0, :, :].T
            if word:
                labels[i, :] = self.Y_data[index + i]
            else:
                labels[i, 0] = self.blank_label
            input_length[i] = self.img_w // self.downsample_factor - 2
            label_length[i] = max(len(word), 1)
            source_str.append(word)
        inputs = {"the_input": X_data, "the_labels": labels, "input_length": input_length,
                  "label_length": label_length, "source_str": source_str}
        return inputs, {"ctc": np.zeros([size])}

    def next_train(self):
        while 1:
            ret = self.get_batch(self.cur_train_index, self.minibatch_size, train=True)
            self.cur_train_index = (self.cur_train_index + self.minibatch_size) % self.val_split
            yield ret

    def next_val(self):
        while 1:
            ret = self.get_batch(self.cur_val_index, self.minibatch_size, train=False)
            self.cur_val_index += self.minibatch_size
            if self.cur_val_index >= len(WORDS):
                self.cur_val_index = self.val_split
            yield ret

    def on_train_begin(self, logs={}):
        self.events.append("on_train_begin")
        self.build_word_list()

    def on_epoch_begin(self, epoch, logs={}):
        self.events.append(epoch)


def _decode_batch(test_func, word_batch):
    out = test_func([word_batch])[0]
    decoded = []
    for j in range(out.shape[0]):
        best = [k for k, _ in itertools.groupby(np.argmax(out[j, 2:], 1))]
        decoded.append("".join(ALPHABET[k] for k in best if k < len(ALPHABET)))
    return decoded


class VizCallback(kestrel.callbacks.Callback):
    def __init__(self, output_dir, test_func, text_img_gen):
        self.output_dir, self.test_func, self.text_img_gen = output_dir, test_func, text_img_gen
        self.decoded = []

    def on_epoch_end(self, epoch, logs={}):
        self.model.save_weights(os.path.join(self.output_dir, "weights%02d.h5" % (epoch)))
        word_batch = next(self.text_img_gen)[0]
        self.decoded.append(_decode_batch(self.test_func, word_batch["the_input"][0:2]))


def _ocr_train(output_dir, start_epoch, stop_epoch, img_w):
    """image_ocr's `train`, at a tiny size."""
    from kestrel.layers import Activation, Dense, Input, Lambda, Reshape
    from kestrel.layers.convolutional import Conv2D, MaxPooling2D
    from kestrel.layers.merge import add, concatenate
    from kestrel.layers.recurrent import GRU
    img_h, pool_size, conv_filters, rnn_size, minibatch_size = 8, 2, 2, 3, 2
    img_gen = TextImageGenerator(minibatch_size=minibatch_size, img_w=img_w, img_h=img_h,
                                 downsample_factor=pool_size ** 2, val_split=4)
    input_data = Input(name="the_input", shape=(img_w, img_h, 1), dtype="float32")
    inner = Conv2D(conv_filters, (3, 3), padding="same", activation="relu",
                   kernel_initializer="he_normal", name="conv1")(input_data)
    inner = MaxPooling2D(pool_size=(pool_size, pool_size), name="max1")(inner)
    inner = MaxPooling2D(pool_size=(pool_size, pool_size), name="max2")(inner)
    inner = Reshape(target_shape=(img_w // 4, (img_h // 4) * conv_filters), name="reshape")(inner)
    inner = Dense(4, activation="relu", name="dense1")(inner)
    gru_1 = GRU(rnn_size, return_sequences=True, kernel_initializer="he_normal",
                name="gru1")(inner)
    gru_1b = GRU(rnn_size, return_sequences=True, go_backwards=True,
                 kernel_initializer="he_normal", name="gru1_b")(inner)
    inner = Dense(img_gen.get_output_size(), kernel_initializer="he_normal",
                  name="dense2")(concatenate([add([gru_1, gru_1b]), gru_1b]))
    y_pred = Activation("softmax", name="softmax")(inner)

    def ctc_lambda_func(args):
        y_pred, labels, input_length, label_length = args
        return K.ctc_batch_cost(labels, y_pred[:, 2:, :], input_length, label_length)

    labels = Input(name="the_labels", shape=[img_gen.absolute_max_string_len], dtype="float32")
    input_length = Input(name="input_length", shape=[1], dtype="int64")
    label_length = Input(name="label_length", shape=[1], dtype="int64")
    loss_out = Lambda(ctc_lambda_func, output_shape=(1,), name="ctc")(
        [y_pred, labels, input_length, label_length])
    sgd = kestrel.optimizers.SGD(learning_rate=0.02, decay=1e-6, momentum=0.9, nesterov=True)
    model = kestrel.models.Model(inputs=[input_data, labels, input_length, label_length],
                                 outputs=loss_out)
    model.compile(loss={"ctc": lambda y_true, y_pred: y_pred}, optimizer=sgd)
    if start_epoch > 0:
        model.load_weights(os.path.join(output_dir, "weights%02d.h5" % (start_epoch - 1)))
    test_func = K.function([input_data], [y_pred])
    viz_cb = VizCallback(output_dir, test_func, img_gen.next_val())
    history = model.fit_generator(
        generator=img_gen.next_train(), steps_per_epoch=2, epochs=stop_epoch,
        validation_data=img_gen.next_val(), validation_steps=2,
        callbacks=[viz_cb, img_gen], initial_epoch=start_epoch, verbose=0)
    return history, img_gen, viz_cb, model


def test_image_ocr_generator_is_read_after_on_train_begin(tmp_path):
    """image_ocr's training driver. Keras 2's `fit_generator` called `on_train_begin` before
    drawing a batch (its generator, also a callback, builds its word list there) and went on
    with a validation generator from epoch to epoch; the input dicts carry `source_str`, a key
    that names no input, which Keras 2 and Keras 3 ignore. A second `train` of a wider image
    loads the weights the callback saved."""
    _fresh(kestrel)
    history, img_gen, viz_cb, _ = _ocr_train(str(tmp_path), 0, 2, 32)
    assert img_gen.events[:2] == ["on_train_begin", 0]
    assert history.epoch == [0, 1] and sorted(history.history) == ["loss", "val_loss"]
    assert np.all(np.isfinite(history.history["val_loss"]))
    # train 2 + val 2 + viz 1 batches per epoch; validation words go on: 4 5 | 6 7 | 4 5 | 6 7
    assert img_gen.events.count("batch") == 10
    assert img_gen.cur_val_index == 4 and viz_cb.decoded[-1][0] in {"", *ALPHABET}
    history, img_gen, _, model = _ocr_train(str(tmp_path), 2, 3, 48)
    assert history.epoch == [2] and img_gen.events[:2] == ["on_train_begin", 2]
    assert model.get_layer("gru1").get_weights()[0].shape == (4, 9)


def test_input_dict_with_keys_that_name_no_input_as_keras():
    """A model built on a list of inputs takes a dict with more keys and ignores the others,
    in `predict`, `fit`, `train_on_batch` and a call, as Keras 3 (and Keras 2) do."""
    x = {"a": RNG.random((4, 2)).astype("float32"), "b": RNG.random((4, 2)).astype("float32"),
         "source_str": np.array(["ab", "c", "", "d"])}
    y = np.ones((4, 1), "float32")
    results = {}
    for lib in (kestrel, keras):
        k = _fresh(lib)
        a, b = k.Input((2,), name="a"), k.Input((2,), name="b")
        model = k.Model([a, b], k.layers.Dense(1)(k.layers.add([a, b])))
        model.compile("sgd", "mse")
        numeric = {key: x[key] for key in "ab"}
        results[lib] = (model.predict(numeric, verbose=0), model.train_on_batch(numeric, y),
                        k.ops.convert_to_numpy(model(numeric)))
        if lib is kestrel:
            np.testing.assert_array_equal(model.predict(x, verbose=0),
                                          model.predict(numeric, verbose=0))
            model.fit(x, y, verbose=0)
        with pytest.raises(ValueError):
            model({"a": x["a"], "zz": x["b"]})
    for ours, theirs in zip(results[kestrel], results[keras]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


class Conv2DFromConvUtils(kestrel.layers.Layer):
    """A Keras 2 era custom convolution: `conv_utils` checks its arguments and computes its
    output shape; `K.conv2d` and `K.bias_add` compute it."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, **kwargs):
        from kestrel.utils import conv_utils
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = conv_utils.normalize_tuple(kernel_size, 2, "kernel_size")
        self.strides = conv_utils.normalize_tuple(strides, 2, "strides")
        self.padding = conv_utils.normalize_padding(padding)
        self.data_format = K.normalize_data_format(data_format)

    def build(self, input_shape):
        shape = self.kernel_size + (input_shape[-1], self.filters)
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs):
        out = K.conv2d(inputs, self.kernel, strides=self.strides, padding=self.padding,
                       data_format=self.data_format)
        return K.bias_add(out, self.bias, data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        from kestrel.utils.conv_utils import conv_output_length
        space = [conv_output_length(n, k, self.padding, s)
                 for n, k, s in zip(input_shape[1:-1], self.kernel_size, self.strides)]
        return (input_shape[0], *space, self.filters)


@pytest.mark.parametrize("padding, strides", [("valid", 2), ("SAME", (2, 3))])
def test_custom_layer_on_keras2_conv_utils_matches_conv2d(padding, strides):
    """The custom layer's shapes and values equal Keras 3's Conv2D with the same weights;
    `conv_output_length` as Keras 2's (None stays None, `full` and `causal` too)."""
    from kestrel.utils.conv_utils import conv_output_length, normalize_padding, normalize_tuple
    images = RNG.random((2, 7, 9, 3)).astype("float32")
    layer = Conv2DFromConvUtils(4, 3, strides=strides, padding=padding)
    model = kestrel.Sequential([kestrel.Input((None, 9, 3)), layer])
    reference = keras.layers.Conv2D(4, 3, strides=strides, padding=padding.lower())
    expected_shape = reference.compute_output_shape((None, None, 9, 3))
    assert model.output_shape == expected_shape
    reference.build((None, 7, 9, 3))
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(model.predict(images, verbose=0),
                               keras.ops.convert_to_numpy(reference(images)),
                               rtol=1e-5, atol=1e-5)
    assert [conv_output_length(10, 3, p, 2, dilation=2) for p in ("full", "causal")] == [7, 5]
    with pytest.raises(ValueError, match=r"The `strides` argument must be a tuple of 2 "
                                         r"integers\. Received: \(1, 2, 3\)"):
        normalize_tuple((1, 2, 3), 2, "strides")
    with pytest.raises(ValueError, match="Received: 'full'"):
        normalize_padding("full")


def test_keras2_module_names_of_2017_scripts(tmp_path):
    """Names Keras 2.0-2.2 scripts import: `keras.utils.training_utils.multi_gpu_model`
    (2.0.9-2.1.4), `layers.Deconv2D` / `Deconv3D`, `metrics.cosine` (Keras 2's negative
    cosine proximity, as Keras 3's `losses.cosine_similarity`), MobileNet's `relu6` and
    `DepthwiseConv2D` for `custom_objects`, and a symbolic tensor's `_keras_shape`."""
    from kestrel.applications import mobilenet
    from kestrel.utils.multi_gpu_utils import multi_gpu_model
    from kestrel.utils.training_utils import multi_gpu_model as legacy_multi_gpu_model
    assert legacy_multi_gpu_model is multi_gpu_model
    assert kestrel.layers.Deconv2D is kestrel.layers.Conv2DTranspose
    assert kestrel.layers.Deconv3D is kestrel.layers.Conv3DTranspose
    y_true, y_pred = RNG.random((3, 4)), RNG.random((3, 4))
    for name in ("cosine", "cosine_proximity"):
        np.testing.assert_allclose(
            K.eval(getattr(kestrel.metrics, name)(y_true, y_pred)),
            keras.ops.convert_to_numpy(keras.losses.cosine_similarity(y_true, y_pred)),
            rtol=1e-6)

    x = RNG.normal(size=(2, 6, 6, 3)).astype("float32") * 10
    _fresh(kestrel)
    inputs = kestrel.Input((6, 6, 3))
    assert inputs._keras_shape == K.int_shape(inputs) == (None, 6, 6, 3)
    hidden = mobilenet.DepthwiseConv2D(3, padding="same")(inputs)
    model = kestrel.Model(inputs, kestrel.layers.Activation(mobilenet.relu6)(hidden))
    path = str(tmp_path / "mobilenet.h5")
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = kestrel.models.load_model(path, custom_objects={
            "relu6": mobilenet.relu6, "DepthwiseConv2D": mobilenet.DepthwiseConv2D})
    out = loaded.predict(x, verbose=0)
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-6)
    assert out.max() <= 6.0 and out.min() >= 0.0 and (out == 6.0).any()


def _weighted_categorical_crossentropy(weights):
    """The widely copied Keras 2 weighted loss: it rebinds `y_pred` with `/=`."""
    weights = K.variable(weights)

    def loss(y_true, y_pred):
        y_pred /= K.sum(y_pred, axis=-1, keepdims=True)
        y_pred = K.clip(y_pred, K.epsilon(), 1 - K.epsilon())
        return -K.sum(y_true * K.log(y_pred) * weights, -1)
    return loss


def _zeroing_metric(y_true, y_pred):
    y_true *= 0
    return K.mean(y_true, axis=-1)


def test_losses_and_metrics_that_rebind_their_arguments_as_on_tensorflow():
    """`y_pred /= ...` in a Keras 2 loss (and `y_true *= 0` in a metric) bind a new tensor on
    TensorFlow; on torch they would write into the softmax output that its backward needs
    (Keras 3's torch backend fails there) and into the targets the next metric reads."""
    x = RNG.random((8, 4)).astype("float32")
    y = kestrel.utils.to_categorical(np.arange(8) % 3, 3)
    class_weights = np.array([0.5, 2.0, 10.0])
    model = kestrel.Sequential([kestrel.Input((4,)), kestrel.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=_weighted_categorical_crossentropy(class_weights),
                  metrics=[_zeroing_metric, "accuracy"])
    probs = model.predict(x, verbose=0)
    loss, zeroed, accuracy = model.evaluate(x, y, verbose=0)
    expected = -(y * np.log(probs / probs.sum(-1, keepdims=True)) * class_weights).sum(-1)
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)
    assert zeroed == 0.0
    assert accuracy == pytest.approx(np.mean(probs.argmax(-1) == y.argmax(-1)))
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert y.sum() == 8.0


class Attention(kestrel.layers.Layer):
    """The attention layer of many Keras 2 Kaggle kernels (weights added with a positional
    shape, as Keras 2.0's `add_weight`), with its augmented assignments."""

    def __init__(self, step_dim, **kwargs):
        self.supports_masking = True
        self.init = kestrel.initializers.get("glorot_uniform")
        self.step_dim, self.features_dim = step_dim, 0
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.W = self.add_weight((input_shape[-1],), initializer=self.init,
                                 name="{}_W".format(self.name))
        self.features_dim = input_shape[-1]
        self.b = self.add_weight((input_shape[1],), initializer="zero",
                                 name="{}_b".format(self.name))
        self.built = True

    def compute_mask(self, input, input_mask=None):
        return None

    def call(self, x, mask=None):
        eij = K.reshape(K.dot(K.reshape(x, (-1, self.features_dim)),
                              K.reshape(self.W, (self.features_dim, 1))), (-1, self.step_dim))
        eij += self.b
        eij = K.tanh(eij)
        a = K.exp(eij)
        if mask is not None:
            a *= K.cast(mask, K.floatx())
        a /= K.cast(K.sum(a, axis=1, keepdims=True) + K.epsilon(), K.floatx())
        return K.sum(x * K.expand_dims(a), axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape[0], self.features_dim


def _normalized_exp(x):
    e = K.exp(x)
    e /= K.sum(e, axis=-1, keepdims=True)
    return e


def test_custom_layer_and_lambda_augmented_assignments_make_new_tensors():
    """`eij += self.b`, `a *= mask` and `a /= ...` in a Keras 2 custom layer, and `e /= ...` in
    a Lambda function, bind new tensors as on TensorFlow (torch wrote into `exp`'s output,
    which its backward needs). The attention output checked against NumPy; both train."""
    _fresh(kestrel)
    tokens = RNG.integers(1, 20, (8, 5))
    tokens[:, 3:] = 0
    inputs = kestrel.Input((5,))
    embedded = kestrel.layers.Embedding(20, 4, mask_zero=True)(inputs)
    attended = Attention(5)(embedded)
    scores = kestrel.layers.Lambda(_normalized_exp)(kestrel.layers.Dense(3)(attended))
    model = kestrel.Model(inputs, scores)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    targets = kestrel.utils.to_categorical(np.arange(8) % 3, 3)
    history = model.fit(tokens, targets, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))

    table, (w, b) = model.layers[1].get_weights()[0], model.layers[2].get_weights()
    x = table[tokens]
    a = np.exp(np.tanh(x @ w + b)) * (tokens != 0)
    a /= a.sum(1, keepdims=True) + K.epsilon()
    features = kestrel.Model(inputs, attended).predict(tokens, verbose=0)
    np.testing.assert_allclose(features, (x * a[..., None]).sum(1), rtol=1e-5, atol=1e-6)
    probs = model.predict(tokens, verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


class _TorchStyle(kestrel.layers.Layer):
    def call(self, x):
        y = x
        y += 1.0  # a new tensor: `x` keeps its values, as on TensorFlow
        y **= 2  # (torch runs `**=` through a Python wrapper)
        z = x.clone()
        z.mul_(3.0)  # an explicit in-place method stays in place
        return kestrel.ops.concatenate([x, y, z], axis=-1)


def test_explicit_in_place_methods_keep_their_meaning():
    x = np.ones((2, 1), "float32")
    np.testing.assert_array_equal(K.eval(_TorchStyle()(x)), [[1.0, 4.0, 3.0]] * 2)


def _adam_model():
    _fresh(kestrel)
    model = kestrel.Sequential([kestrel.layers.Dense(3, input_shape=(4,), activation="softmax")])
    model.compile(optimizer=kestrel.optimizers.Adam(learning_rate=0.01),
                  loss="categorical_crossentropy")
    return model


def test_optimizer_state_saved_from_weights_and_restored_after_make_train_function(tmp_path):
    """The Keras 2 recipe for resuming a run: `K.batch_get_value(getattr(model.optimizer,
    'weights'))` pickled, then on a new model `model._make_train_function()` (which built the
    optimizer's variables) and `model.optimizer.set_weights(values)`; training then goes on as
    if never stopped. `_make_predict_function()` (called by Flask apps) works too."""
    import pickle
    x = RNG.random((8, 4)).astype("float32")
    y = np.eye(3)[np.arange(8) % 3]
    first = _adam_model()
    first.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    state = pickle.dumps(K.batch_get_value(getattr(first.optimizer, "weights")))
    first.save_weights(str(tmp_path / "model.weights.h5"))

    resumed = _adam_model()
    resumed.load_weights(str(tmp_path / "model.weights.h5"))
    resumed._make_train_function()
    resumed.optimizer.set_weights(pickle.loads(state))
    for model in (first, resumed):
        model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(first.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)

    served = _adam_model()
    served._make_predict_function()
    served._make_test_function()
    np.testing.assert_array_equal(served.predict(x, verbose=0), served.predict_on_batch(x))


def _recommender(lib, score):
    user, item = lib.layers.Input((1,)), lib.layers.Input((1,))
    u = lib.layers.Flatten()(lib.layers.Embedding(5, 3, name="users")(user))
    i = lib.layers.Flatten()(lib.layers.Embedding(6, 3, name="items")(item))
    return lib.models.Model([user, item], score(u, i))


@pytest.mark.parametrize("mode, keras3_layer", [
    ("dot", lambda: keras.layers.Dot(axes=1)),
    ("cos", lambda: keras.layers.Dot(axes=1, normalize=True)),
    ("concat", lambda: keras.layers.Concatenate(axis=1)),
    ("ave", keras.layers.Average), ("mul", keras.layers.Multiply)])
def test_keras1_merge_function_of_2017_recommenders_as_keras2_merge_layers(mode, keras3_layer):
    """`from keras.layers import merge` then `merge([u, i], mode="dot", dot_axes=1)` (Keras 1,
    kept by Keras 2.0-2.1 with a warning): the Keras 2 merge layer of the mode, compared with
    Keras 3's on the same embeddings. `keras.layers.merge` stays the module of `concatenate`."""
    from kestrel.layers import merge
    from kestrel.layers.merge import concatenate
    assert concatenate is kestrel.layers.concatenate
    users, items = np.array([[0], [4], [2]]), np.array([[5], [1], [1]])
    with pytest.warns(DeprecationWarning, match="The `merge` function is deprecated"):
        model = _recommender(_fresh(kestrel), lambda u, i: merge(
            [u, i], mode=mode, concat_axis=1, dot_axes=1))
    reference = _recommender(_fresh(keras), lambda u, i: keras3_layer()([u, i]))
    reference.set_weights(model.get_weights())
    assert model.output_shape == reference.output_shape
    np.testing.assert_allclose(model.predict([users, items], verbose=0),
                               reference.predict([users, items], verbose=0), rtol=1e-5)


def test_keras1_merge_layer_and_function_modes():
    """`Merge(mode=...)` called on tensors, a function `mode` with its `output_shape`, and the
    errors: an unknown mode, and Keras 1's merge of Sequential branches."""
    from kestrel.layers import Input, Merge, merge
    a, b = Input((3,)), Input((3,))
    with pytest.warns(DeprecationWarning, match="The `Merge` layer is deprecated"):
        layer = Merge(mode="concat", concat_axis=1, name="merged")
    assert isinstance(layer, kestrel.layers.Concatenate) and layer([a, b]).shape == (None, 6)
    difference = merge([a, b], mode=lambda t: t[0] - t[1], output_shape=(3,))
    x, y = RNG.random((2, 3)), RNG.random((2, 3))
    np.testing.assert_allclose(kestrel.Model([a, b], difference).predict([x, y], verbose=0),
                               x - y, rtol=1e-6)
    with pytest.raises(ValueError, match="Invalid merge mode: 'concatenate'"):
        merge([a, b], mode="concatenate")
    with pytest.raises(ValueError, match=r"Merge\(layers=\[\.\.\.\]\) merges Keras 1 Sequential"):
        Merge([kestrel.Sequential(), kestrel.Sequential()], mode="concat")


def test_keras2_highway_layer_of_character_models(tmp_path):
    """`Highway(activation="relu")` (Keras 1, kept by Keras 2.0-2.2 with a warning), as in
    character-aware language models: Keras 2's weights `W, W_carry, b, b_carry` (the carry
    bias starting at 1), `t * relu(x W + b) + (1 - t) * x` with `t = sigmoid(x W_carry +
    b_carry)` checked in NumPy, and an h5 save / load."""
    from kestrel.layers import Dense, Highway
    _fresh(kestrel)
    with pytest.warns(DeprecationWarning, match="The `Highway` layer is deprecated"):
        model = kestrel.Sequential([Dense(4, input_dim=3), Highway(activation="relu"),
                                    Highway(bias=False)])
    highway = model.layers[1]
    assert [w.name for w in highway.weights] == ["W", "W_carry", "b", "b_carry"]
    W, W_carry, b, b_carry = highway.get_weights()
    np.testing.assert_array_equal(b_carry, np.ones(4))
    x = RNG.random((5, 3)).astype("float32")
    h = kestrel.Model(model.inputs, model.layers[0].output).predict(x, verbose=0)
    gate = 1 / (1 + np.exp(-(h @ W_carry + b_carry)))
    expected = np.maximum(h @ W + b, 0) * gate + (1 - gate) * h
    np.testing.assert_allclose(kestrel.Model(model.inputs, highway.output).predict(x, verbose=0),
                               expected, rtol=1e-5, atol=1e-6)
    assert len(model.layers[2].weights) == 2
    model.compile("sgd", "mse")
    model.fit(x, np.ones((5, 4)), verbose=0)
    path = str(tmp_path / "highway.h5")
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = kestrel.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def _critic():
    _fresh(kestrel)
    return kestrel.Sequential([kestrel.layers.Dense(4, input_dim=3, activation="relu"),
                               kestrel.layers.Dense(1)])


def test_k_function_updates_from_optimizer_get_updates_train_as_train_on_batch():
    """2017 GAN notebooks train with `K.function([real], [loss], Adam(...).get_updates(
    params, [], loss))` (Keras 2.0's argument order; 2.1+: `get_updates(loss=, params=)`):
    each call returns the loss before the step, then steps as `train_on_batch` does.
    `(variable, symbolic value)` pairs and `K.update_add(variable, symbolic)` are assigned
    after each call."""
    x = RNG.random((6, 3)).astype("float32")
    net = _critic()
    loss = K.mean(K.square(net.output - 1.0))
    updates = kestrel.optimizers.Adam(learning_rate=0.05).get_updates(
        net.trainable_weights, [], loss)
    train = K.function([net.input], [loss], updates)

    reference = _critic()
    reference.compile(kestrel.optimizers.Adam(learning_rate=0.05),
                      loss=lambda y_true, y_pred: K.mean(K.square(y_pred - 1.0), axis=-1))
    for _ in range(3):
        expected = reference.evaluate(x, np.zeros((6, 1)), verbose=0)
        np.testing.assert_allclose(train([x])[0], expected, rtol=1e-5)
        reference.train_on_batch(x, np.zeros((6, 1)))
        for a, b in zip(net.get_weights(), reference.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    other = _critic()
    step = kestrel.optimizers.SGD(learning_rate=0.1).get_updates(
        loss=K.mean(other.output), params=other.trainable_weights)
    bias = other.layers[1].bias
    K.function([other.input], [], step)([x])
    np.testing.assert_allclose(K.get_value(bias), [-0.1], rtol=1e-6)
    running_mean, total = K.variable(0.0), K.variable(1.0)
    collect = K.function([other.input], [other.output],
                         [(running_mean, K.mean(other.output)),
                          K.update_add(total, K.sum(other.output))])
    for calls in (1, 2):
        outputs = collect([x])[0]
        np.testing.assert_allclose(K.get_value(running_mean), outputs.mean(), rtol=1e-6)
        np.testing.assert_allclose(K.get_value(total), 1.0 + calls * outputs.sum(), rtol=1e-5)
    with pytest.raises(ValueError, match=r"`\(variable, new_value\)` pairs whose new value is "
                                         r"symbolic"):
        K.function([other.input], [], [(bias, bias + 1.0)])
