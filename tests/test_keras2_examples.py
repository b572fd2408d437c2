"""The classic Keras 2 `examples/` scripts' code patterns, with `keras` renamed to `kestrel`.

Each test is a miniature of one script (tiny synthetic data, a few seconds at most) and checks
what the script relies on: shapes, a loss that falls or stays finite, predictions, save/reload.
"""

import numpy as np
import pytest

import kestrel
from kestrel import backend as K
from kestrel.layers import (
    LSTM,
    Activation,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalMaxPooling1D,
    Input,
    Lambda,
    Layer,
    MaxPooling2D,
    RepeatVector,
    TimeDistributed,
)
from kestrel.models import Model, Sequential, load_model
from kestrel.optimizers import SGD, Adam, RMSprop
from kestrel.preprocessing import sequence
from kestrel.preprocessing.image import ImageDataGenerator
from kestrel.preprocessing.text import Tokenizer
from kestrel.utils import np_utils

# The scripts use Keras 2 spellings (lr=, fit_generator, predict_classes) that warn as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _seed():
    kestrel.utils.set_random_seed(0)


def _losses(history):
    losses = history.history["loss"]
    assert all(np.isfinite(losses)), losses
    return losses


def test_mnist_mlp_fit_evaluate_save_reload(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.random((64, 784)).astype("float32")
    y = (x_train[:, :10].argmax(axis=1)).astype("int64")
    y_train = np_utils.to_categorical(y, 10)
    assert y_train.shape == (64, 10)

    model = Sequential()
    model.add(Dense(32, activation="relu", input_shape=(784,)))
    model.add(Dropout(0.2))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer=RMSprop(lr=0.01), metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=16, epochs=4, verbose=0,
                        validation_data=(x_train, y_train))
    losses = _losses(history)
    assert losses[-1] < losses[0]
    assert "val_accuracy" in history.history or "val_acc" in history.history
    score = model.evaluate(x_train, y_train, verbose=0)
    assert len(score) == 2 and 0.0 <= score[1] <= 1.0

    path = str(tmp_path / "mlp.h5")
    model.save(path)
    again = load_model(path)
    np.testing.assert_allclose(again.predict(x_train[:8]), model.predict(x_train[:8]), atol=1e-6)


def test_mnist_cnn_image_data_format_branch():
    img_rows, img_cols = 12, 12
    rng = np.random.default_rng(1)
    x = rng.random((32, img_rows, img_cols)).astype("float32")
    if K.image_data_format() == "channels_first":
        x = x.reshape(x.shape[0], 1, img_rows, img_cols)
        input_shape = (1, img_rows, img_cols)
    else:
        x = x.reshape(x.shape[0], img_rows, img_cols, 1)
        input_shape = (img_rows, img_cols, 1)
    assert input_shape == (12, 12, 1)
    y = np_utils.to_categorical((x.mean(axis=(1, 2, 3)) > 0.5).astype(int), 2)

    model = Sequential()
    model.add(Conv2D(4, kernel_size=(3, 3), activation="relu", input_shape=input_shape))
    model.add(Conv2D(8, (3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(16, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(2, activation="softmax"))
    assert model.output_shape == (None, 2)
    assert model.layers[3].output_shape == (None, 4, 4, 8)
    model.compile(loss=kestrel.losses.categorical_crossentropy,
                  optimizer=kestrel.optimizers.Adadelta(), metrics=["accuracy"])
    _losses(model.fit(x, y, batch_size=8, epochs=1, verbose=0))
    assert model.predict(x).shape == (32, 2)


def _imdb_like(n=48, maxlen=20, vocab=50):
    rng = np.random.default_rng(2)
    lengths = rng.integers(3, 30, size=n)
    labels = rng.integers(0, 2, size=n)
    seqs = [list(rng.integers(1 + 25 * lab, 25 + 25 * lab, size=ln)) for lab, ln in zip(labels, lengths)]
    x = sequence.pad_sequences(seqs, maxlen=maxlen)
    return x, labels.astype("float32"), vocab


def test_imdb_lstm_pad_sequences_embedding_lstm():
    x, y, vocab = _imdb_like()
    assert x.shape == (48, 20) and x.dtype == np.int32
    model = Sequential()
    model.add(Embedding(vocab, 8))
    model.add(LSTM(8, dropout=0.2, recurrent_dropout=0.2))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    losses = _losses(model.fit(x, y, batch_size=16, epochs=6, verbose=0))
    assert losses[-1] < losses[0]
    pred = model.predict(x, batch_size=16)
    assert pred.shape == (48, 1) and ((pred >= 0) & (pred <= 1)).all()


def test_imdb_cnn_conv1d_global_max_pooling():
    x, y, vocab = _imdb_like()
    model = Sequential()
    model.add(Embedding(vocab, 8, input_length=20))
    model.add(Dropout(0.2))
    model.add(Conv1D(6, 3, padding="valid", activation="relu", strides=1))
    model.add(GlobalMaxPooling1D())
    model.add(Dense(8))
    model.add(Dropout(0.2))
    model.add(Activation("relu"))
    model.add(Dense(1))
    model.add(Activation("sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    losses = _losses(model.fit(x, y, batch_size=16, epochs=6, verbose=0, validation_data=(x, y)))
    assert losses[-1] < losses[0]
    assert model.layers[2].output_shape == (None, 18, 6)
    assert model.predict(x).shape == (48, 1)


def test_lstm_stateful_reset_states_per_epoch():
    batch_size, tsteps = 4, 1
    t = np.arange(64, dtype="float32")
    cos = np.cos(t / 5.0).reshape(-1, 1, 1)
    expected = np.roll(cos, -1, axis=0).reshape(-1, 1)

    model = Sequential()
    model.add(LSTM(8, batch_input_shape=(batch_size, tsteps, 1), return_sequences=True, stateful=True))
    model.add(LSTM(8, return_sequences=False, stateful=True))
    model.add(Dense(1))
    model.compile(loss="mse", optimizer="rmsprop")
    losses = []
    for _ in range(3):
        h = model.fit(cos, expected, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
        losses += _losses(h)
        model.reset_states()
    assert losses[-1] < losses[0]

    first = model.predict(cos[:batch_size], batch_size=batch_size)
    second = model.predict(cos[:batch_size], batch_size=batch_size)
    assert not np.allclose(first, second)  # state carried over between calls
    model.reset_states()
    np.testing.assert_allclose(model.predict(cos[:batch_size], batch_size=batch_size), first, atol=1e-6)


class Antirectifier(Layer):
    """Centered, L2-normalised input, concatenated positive and negative parts."""

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        assert len(shape) == 2
        shape[-1] *= 2
        return tuple(shape)

    def call(self, inputs):
        # In place on torch: fine after a linear Dense (as in the script), not after tanh/relu.
        inputs -= K.mean(inputs, axis=1, keepdims=True)
        inputs = K.l2_normalize(inputs, axis=1)
        pos = K.relu(inputs)
        neg = K.relu(-inputs)
        return K.concatenate([pos, neg], axis=1)


def test_antirectifier_custom_layer_with_k_functions():
    rng = np.random.default_rng(3)
    x = rng.random((40, 16)).astype("float32")
    y = np_utils.to_categorical((x[:, 0] > x[:, 1]).astype(int), 2)
    model = Sequential()
    model.add(Dense(12, input_shape=(16,)))
    model.add(Antirectifier())
    model.add(Dropout(0.1))
    model.add(Dense(2))
    model.add(Activation("softmax"))
    assert model.layers[1].output_shape == (None, 24)
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    losses = _losses(model.fit(x, y, batch_size=8, epochs=5, verbose=0))
    assert losses[-1] < losses[0]

    out = K.eval(Antirectifier()(x[:4]))
    assert out.shape == (4, 32) and (out >= 0).all()
    half = out[:, :16] - out[:, 16:]
    centred = x[:4] - x[:4].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(half, centred / np.linalg.norm(centred, axis=1, keepdims=True), atol=1e-5)


def test_variational_autoencoder_lambda_sampling_and_add_loss():
    original_dim, intermediate_dim, latent_dim = 20, 8, 2

    def sampling(args):
        z_mean, z_log_var = args
        batch = K.shape(z_mean)[0]
        dim = K.int_shape(z_mean)[1]
        epsilon = K.random_normal(shape=(batch, dim))
        return z_mean + K.exp(0.5 * z_log_var) * epsilon

    inputs = Input(shape=(original_dim,), name="encoder_input")
    h = Dense(intermediate_dim, activation="relu")(inputs)
    z_mean = Dense(latent_dim, name="z_mean")(h)
    z_log_var = Dense(latent_dim, name="z_log_var")(h)
    z = Lambda(sampling, output_shape=(latent_dim,), name="z")([z_mean, z_log_var])
    encoder = Model(inputs, [z_mean, z_log_var, z], name="encoder")

    latent_inputs = Input(shape=(latent_dim,), name="z_sampling")
    x = Dense(intermediate_dim, activation="relu")(latent_inputs)
    outputs = Dense(original_dim, activation="sigmoid")(x)
    decoder = Model(latent_inputs, outputs, name="decoder")

    x_decoded_mean = decoder(encoder(inputs)[2])

    class CustomVariationalLayer(Layer):
        """Adds the VAE loss (reconstruction + KL) from inside `call`."""

        def vae_loss(self, x, x_decoded_mean, z_mean, z_log_var):
            xent_loss = original_dim * K.mean(K.binary_crossentropy(x, x_decoded_mean), axis=-1)
            kl_loss = -0.5 * K.sum(1 + z_log_var - K.square(z_mean) - K.exp(z_log_var), axis=-1)
            return K.mean(xent_loss + kl_loss)

        def call(self, inputs):
            self.add_loss(self.vae_loss(*inputs))
            return inputs[1]

    y = CustomVariationalLayer()([inputs, x_decoded_mean, z_mean, z_log_var])
    vae = Model(inputs, y, name="vae_mlp")
    vae.compile(optimizer="rmsprop", loss=None)

    rng = np.random.default_rng(4)
    data = (rng.random((64, original_dim)) > 0.5).astype("float32")
    losses = _losses(vae.fit(data, epochs=5, batch_size=16, verbose=0))
    assert losses[-1] < losses[0]
    z_m, z_lv, z_s = encoder.predict(data, batch_size=16)
    assert z_m.shape == z_lv.shape == z_s.shape == (64, latent_dim)
    assert not np.allclose(z_m, z_s)  # the sampling layer adds noise
    assert decoder.predict(z_m).shape == (64, original_dim)


def test_mnist_siamese_lambda_distance_and_contrastive_loss():
    def euclidean_distance(vects):
        x, y = vects
        sum_square = K.sum(K.square(x - y), axis=1, keepdims=True)
        return K.sqrt(K.maximum(sum_square, K.epsilon()))

    def eucl_dist_output_shape(shapes):
        shape1, shape2 = shapes
        return (shape1[0], 1)

    def contrastive_loss(y_true, y_pred):
        margin = 1
        square_pred = K.square(y_pred)
        margin_square = K.square(K.maximum(margin - y_pred, 0))
        return K.mean(y_true * square_pred + (1 - y_true) * margin_square)

    def accuracy(y_true, y_pred):
        return K.mean(K.equal(y_true, K.cast(y_pred < 0.5, y_true.dtype)))

    input_shape = (10,)
    inp = Input(shape=input_shape)
    x = Dense(16, activation="relu")(inp)
    x = Dropout(0.1)(x)
    x = Dense(8, activation="relu")(x)
    base_network = Model(inp, x)

    input_a = Input(shape=input_shape)
    input_b = Input(shape=input_shape)
    distance = Lambda(euclidean_distance, output_shape=eucl_dist_output_shape)(
        [base_network(input_a), base_network(input_b)])
    model = Model([input_a, input_b], distance)
    assert model.output_shape == (None, 1)

    rng = np.random.default_rng(5)
    a = rng.random((64, 10)).astype("float32")
    same = rng.integers(0, 2, size=64)
    b = np.where(same[:, None] == 1, a + 0.01 * rng.standard_normal((64, 10)), rng.random((64, 10)))
    b = b.astype("float32")
    labels = same.astype("float32")

    model.compile(loss=contrastive_loss, optimizer=RMSprop(), metrics=[accuracy])
    losses = _losses(model.fit([a, b], labels, batch_size=16, epochs=20, verbose=0,
                               validation_data=([a, b], labels)))
    assert losses[-1] < losses[0]
    pred = model.predict([a, b])
    assert pred.shape == (64, 1) and (pred >= np.sqrt(K.epsilon()) - 1e-7).all()
    assert pred[same == 1].mean() < pred[same == 0].mean()


def test_cifar10_cnn_image_data_generator_fit_generator():
    rng = np.random.default_rng(6)
    x_train = rng.integers(0, 255, size=(32, 8, 8, 3)).astype("float32")
    y_train = np_utils.to_categorical(rng.integers(0, 3, size=(32, 1)), 3)
    assert y_train.shape == (32, 3)
    x_train /= 255

    model = Sequential()
    model.add(Conv2D(4, (3, 3), padding="same", input_shape=x_train.shape[1:]))
    model.add(Activation("relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(3))
    model.add(Activation("softmax"))
    opt = RMSprop(lr=0.0001, decay=1e-6)
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])

    datagen = ImageDataGenerator(
        featurewise_center=False, samplewise_center=False, featurewise_std_normalization=False,
        samplewise_std_normalization=False, zca_whitening=False, rotation_range=0,
        width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True, vertical_flip=False)
    datagen.fit(x_train)
    flow = datagen.flow(x_train, y_train, batch_size=8)
    xb, yb = next(flow)
    assert xb.shape == (8, 8, 8, 3) and yb.shape == (8, 3)
    history = model.fit_generator(flow, steps_per_epoch=x_train.shape[0] // 8, epochs=2,
                                  validation_data=(x_train, y_train), workers=1, verbose=0)
    _losses(history)
    assert len(history.history["loss"]) == 2
    scores = model.evaluate(x_train, y_train, verbose=0)
    assert np.isfinite(scores).all()


def test_reuters_mlp_tokenizer_sequences_to_matrix():
    max_words = 30
    rng = np.random.default_rng(7)
    num_classes = 3
    labels = rng.integers(0, num_classes, size=48)
    seqs = [list(rng.integers(1 + 10 * c, 10 + 10 * c, size=12)) for c in labels]
    tokenizer = Tokenizer(num_words=max_words)
    x = tokenizer.sequences_to_matrix(seqs, mode="binary")
    assert x.shape == (48, max_words)
    assert set(np.unique(x)) <= {0.0, 1.0} and x[:, 0].sum() == 0
    y = kestrel.utils.to_categorical(labels, num_classes)

    model = Sequential()
    model.add(Dense(16, input_shape=(max_words,)))
    model.add(Activation("relu"))
    model.add(Dropout(0.5))
    model.add(Dense(num_classes))
    model.add(Activation("softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0, validation_split=0.1)
    losses = _losses(history)
    assert losses[-1] < losses[0]
    assert len(history.history["val_loss"]) == 8


def test_addition_rnn_repeat_vector_time_distributed():
    chars = "0123456789+ "
    char_indices = {c: i for i, c in enumerate(chars)}
    digits, maxlen = 1, 3
    rng = np.random.default_rng(8)
    questions, answers = [], []
    for _ in range(64):
        a, b = rng.integers(0, 10, size=2)
        questions.append(f"{a}+{b}".ljust(maxlen))
        answers.append(str(a + b).ljust(digits + 1))

    def encode(s, n):
        out = np.zeros((n, len(chars)), dtype=bool)
        for i, c in enumerate(s):
            out[i, char_indices[c]] = 1
        return out

    x = np.stack([encode(q, maxlen) for q in questions])
    y = np.stack([encode(a, digits + 1) for a in answers])

    model = Sequential()
    model.add(LSTM(16, input_shape=(maxlen, len(chars))))
    model.add(RepeatVector(digits + 1))
    model.add(LSTM(16, return_sequences=True))
    model.add(TimeDistributed(Dense(len(chars), activation="softmax")))
    assert model.output_shape == (None, digits + 1, len(chars))
    model.compile(loss="categorical_crossentropy", optimizer=Adam(lr=0.01), metrics=["accuracy"])
    losses = _losses(model.fit(x, y, batch_size=16, epochs=5, verbose=0, validation_data=(x, y)))
    assert losses[-1] < losses[0]
    preds = model.predict_classes(x[:5], verbose=0)
    assert preds.shape == (5, digits + 1)
    np.testing.assert_array_equal(preds, model.predict(x[:5], verbose=0).argmax(axis=-1))


def test_sgd_lr_keyword_and_model_json_round_trip():
    model = Sequential([Dense(4, input_dim=3, activation="tanh"), Dense(1)])
    model.compile(loss="mse", optimizer=SGD(lr=0.1, momentum=0.9, nesterov=True))
    rng = np.random.default_rng(9)
    x = rng.random((32, 3)).astype("float32")
    losses = _losses(model.fit(x, x.sum(axis=1, keepdims=True), epochs=5, batch_size=8, verbose=0))
    assert losses[-1] < losses[0]
    clone = kestrel.models.model_from_json(model.to_json())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x), model.predict(x), atol=1e-6)


def test_keras2_embedding_input_length_and_lowercase_optimizers():
    import kestrel

    model = kestrel.Sequential([kestrel.layers.Embedding(100, 8, input_length=20),
                                kestrel.layers.LSTM(4)])
    assert model.layers[0].output_shape == (None, 20, 8)  # built at once, as in Keras 2
    with pytest.warns(DeprecationWarning):
        optimizer = kestrel.optimizers.rmsprop(lr=1e-4, decay=1e-6)
    assert isinstance(optimizer, kestrel.optimizers.RMSprop)
    assert kestrel.optimizers.sgd is kestrel.optimizers.SGD
