"""Condensed replays of classic Keras 2 `examples/` scripts not covered elsewhere, with `keras`
renamed to `kestrel`: the same API calls in the same order, on tiny synthetic stand-ins for the
datasets (the `kestrel.datasets` loaders are replaced, so nothing is downloaded).
"""
import numpy as np
import pytest

import kestrel
import kestrel as keras
from kestrel import backend as K
from kestrel.datasets import cifar10, imdb, mnist, reuters

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::UserWarning")


@pytest.fixture(autouse=True)
def _seed():
    kestrel.utils.clear_session()
    kestrel.utils.set_random_seed(0)


def _finite_losses(history, key="loss"):
    losses = history.history[key]
    assert np.all(np.isfinite(losses)), losses
    return losses


def _fake_imdb(monkeypatch, n_train=24, n_test=8, vocab=50):
    """imdb.load_data stand-in: ragged lists of word ids, labels 0/1 tied to the words."""
    rng = np.random.default_rng(0)

    def load_data(num_words=None, **_):
        def split(n):
            lengths = rng.integers(5, 30, size=n)
            xs = [list(rng.integers(1, num_words or vocab, size=int(k))) for k in lengths]
            ys = np.array([int(np.mean(s) > (num_words or vocab) / 2) for s in xs])
            return xs, ys
        return split(n_train), split(n_test)

    monkeypatch.setattr(imdb, "load_data", load_data)


def _fake_mnist(monkeypatch, n_train=40, n_test=10, side=28):
    """mnist.load_data stand-in: uint8 images and uint8 labels of MNIST's shapes."""
    rng = np.random.default_rng(1)

    def load_data(**_):
        def split(n):
            x = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
            return x, (np.arange(n) % 10).astype(np.uint8)
        return split(n_train), split(n_test)

    monkeypatch.setattr(mnist, "load_data", load_data)


def test_imdb_bidirectional_lstm(monkeypatch):
    """imdb_bidirectional_lstm: Bidirectional(LSTM) after Embedding(input_length=...), string
    optimizer/loss given positionally to compile, `validation_data` given as a list."""
    from kestrel.layers import LSTM, Bidirectional, Dense, Dropout, Embedding
    from kestrel.models import Sequential
    from kestrel.preprocessing import sequence
    _fake_imdb(monkeypatch)
    max_features, maxlen = 50, 12
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=max_features)
    x_train = sequence.pad_sequences(x_train, maxlen=maxlen)
    x_test = sequence.pad_sequences(x_test, maxlen=maxlen)
    y_train, y_test = np.array(y_train), np.array(y_test)
    assert x_train.shape == (24, maxlen) and x_train.dtype == np.int32

    model = Sequential()
    model.add(Embedding(max_features, 8, input_length=maxlen))
    model.add(Bidirectional(LSTM(6)))
    model.add(Dropout(0.5))
    model.add(Dense(1, activation="sigmoid"))
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=8, epochs=2, verbose=0,
                        validation_data=[x_test, y_test])
    _finite_losses(history)
    assert len(history.history["val_loss"]) == 2
    assert model.layers[1].output.shape == (None, 12)  # forward and backward concatenated
    assert model.predict(x_test, verbose=0).shape == (8, 1)


def _create_ngram_set(input_list, ngram_value=2):
    return set(zip(*[input_list[i:] for i in range(ngram_value)]))


def _add_ngram(sequences, token_indice, ngram_range=2):
    new_sequences = []
    for input_list in sequences:
        new_list = input_list[:]
        for ngram_value in range(2, ngram_range + 1):
            for i in range(len(new_list) - ngram_value + 1):
                ngram = tuple(new_list[i:i + ngram_value])
                if ngram in token_indice:
                    new_list.append(token_indice[ngram])
        new_sequences.append(new_list)
    return new_sequences


def test_imdb_fasttext_bigrams_and_global_average_pooling(monkeypatch):
    """imdb_fasttext with ngram_range=2: the vocabulary grows to `np.max(...) + 1` (a NumPy
    int given to Embedding), then Embedding + GlobalAveragePooling1D + Dense. The pooled
    output is the mean of the embedding rows, checked by hand."""
    from kestrel.layers import Dense, Embedding, GlobalAveragePooling1D
    from kestrel.models import Sequential
    from kestrel.preprocessing import sequence
    _fake_imdb(monkeypatch)
    max_features, maxlen, ngram_range = 50, 20, 2
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=max_features)
    ngram_set = set()
    for input_list in x_train:
        ngram_set.update(_create_ngram_set(input_list, ngram_value=2))
    start_index = max_features + 1
    token_indice = {v: k + start_index for k, v in enumerate(ngram_set)}
    indice_token = {token_indice[k]: k for k in token_indice}
    max_features = np.max(list(indice_token.keys())) + 1
    x_train = _add_ngram(x_train, token_indice, ngram_range)
    x_test = _add_ngram(x_test, token_indice, ngram_range)
    x_train = sequence.pad_sequences(x_train, maxlen=maxlen)
    x_test = sequence.pad_sequences(x_test, maxlen=maxlen)

    model = Sequential()
    model.add(Embedding(max_features, 4, input_length=maxlen))
    model.add(GlobalAveragePooling1D())
    model.add(Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=8, epochs=3, verbose=0,
                        validation_data=(x_test, y_test))
    losses = _finite_losses(history)
    assert losses[-1] < losses[0]
    table = K.get_value(model.layers[0].embeddings)
    assert table.shape == (int(max_features), 4)
    pooled = keras.Model(model.inputs, model.layers[1].output).predict(x_test[:2], verbose=0)
    np.testing.assert_allclose(pooled, table[x_test[:2]].mean(axis=1), rtol=1e-5, atol=1e-6)


def test_imdb_cnn_lstm(monkeypatch):
    """imdb_cnn_lstm: Embedding, Dropout, Conv1D(valid), MaxPooling1D, LSTM, Dense,
    Activation; evaluate returns [loss, accuracy] unpacked as `score, acc`."""
    from kestrel.layers import LSTM, Activation, Conv1D, Dense, Dropout, Embedding, MaxPooling1D
    from kestrel.models import Sequential
    from kestrel.preprocessing import sequence
    _fake_imdb(monkeypatch)
    max_features, maxlen = 50, 20
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=max_features)
    x_train = sequence.pad_sequences(x_train, maxlen=maxlen)
    x_test = sequence.pad_sequences(x_test, maxlen=maxlen)

    model = Sequential()
    model.add(Embedding(max_features, 8, input_length=maxlen))
    model.add(Dropout(0.25))
    model.add(Conv1D(6, 5, padding="valid", activation="relu", strides=1))
    model.add(MaxPooling1D(pool_size=4))
    model.add(LSTM(5))
    model.add(Dense(1))
    model.add(Activation("sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    assert model.layers[3].output.shape == (None, 4, 6)  # (20 - 5 + 1) // 4
    _finite_losses(model.fit(x_train, y_train, batch_size=6, epochs=2, verbose=0,
                             validation_data=(x_test, y_test)))
    score, acc = model.evaluate(x_test, y_test, batch_size=6, verbose=0)
    assert np.isfinite(score) and 0.0 <= acc <= 1.0


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """A `$KERAS_HOME` whose `datasets` folder the test fills; downloading fails the test."""
    from kestrel.utils import file_utils

    def no_network(origin, path):
        raise AssertionError(f"test tried to download {origin}")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(file_utils, "_download", no_network)
    (tmp_path / "datasets").mkdir()
    return tmp_path / "datasets"


BABI_STORY = ["1 Mary moved to the bathroom.", "2 John went to the hallway.",
              "3 Where is Mary? \tbathroom\t1", "4 Daniel went back to the hallway.",
              "5 Sandra moved to the garden.", "6 Where is Daniel? \thallway\t4",
              "1 Sandra went to the kitchen.", "2 Mary went back to the garden.",
              "3 Where is Sandra? \tkitchen\t1"]


def _babi_tar(folder, members):
    """The bAbI archive's layout, each member holding the same few stories (bytes lines)."""
    import io
    import tarfile
    path = folder / "babi-tasks-v1-2.tar.gz"
    data = ("\n".join(BABI_STORY * 3) + "\n").encode()
    with tarfile.open(path, "w:gz") as tar:
        for name in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _tokenize(sent):
    import re
    return [x.strip() for x in re.split(r"(\W+)", sent) if x.strip()]


def _get_stories(f):
    """babi_*'s parse_stories + get_stories (the whole story before each question)."""
    from functools import reduce
    data, story = [], []
    for line in f.readlines():
        nid, line = line.decode("utf-8").strip().split(" ", 1)
        if int(nid) == 1:
            story = []
        if "\t" in line:
            q, a, _ = line.split("\t")
            data.append(([x for x in story if x], _tokenize(q), a))
            story.append("")
        else:
            story.append(_tokenize(line))
    return [(reduce(lambda x, y: x + y, s), q, a) for s, q, a in data]


def _babi_vocabulary(train, test):
    vocab = set()
    for story, q, answer in train + test:
        vocab |= set(story + q + [answer])
    word_idx = {c: i + 1 for i, c in enumerate(sorted(vocab))}
    story_maxlen = max(map(len, (x for x, _, _ in train + test)))
    query_maxlen = max(map(len, (x for _, x, _ in train + test)))
    return word_idx, story_maxlen, query_maxlen


def test_babi_rnn_get_file_from_cache_and_two_lstm_branches(keras_home):
    """babi_rnn: `keras.utils.data_utils.get_file` finds the archive in the cache (no
    download), `keras.layers.recurrent.LSTM`, `layers.concatenate` of two LSTM encodings,
    fit with validation_split, evaluate unpacked as `loss, acc`."""
    import tarfile

    from kestrel import layers
    from kestrel.layers import recurrent
    from kestrel.models import Model
    from kestrel.preprocessing.sequence import pad_sequences
    from kestrel.utils.data_utils import get_file
    challenge = "tasks_1-20_v1-2/en/qa2_two-supporting-facts_{}.txt"
    written = _babi_tar(keras_home, [challenge.format("train"), challenge.format("test")])
    path = get_file("babi-tasks-v1-2.tar.gz",
                    origin="https://example.invalid/babi_tasks_1-20_v1-2.tar.gz")
    assert path == str(written)
    with tarfile.open(path) as tar:
        train = _get_stories(tar.extractfile(challenge.format("train")))
        test = _get_stories(tar.extractfile(challenge.format("test")))
    word_idx, story_maxlen, query_maxlen = _babi_vocabulary(train, test)
    vocab_size = len(word_idx) + 1

    def vectorize(data):
        xs = [[word_idx[w] for w in story] for story, _, _ in data]
        xqs = [[word_idx[w] for w in query] for _, query, _ in data]
        ys = np.zeros((len(data), vocab_size))
        ys[np.arange(len(data)), [word_idx[a] for _, _, a in data]] = 1
        return pad_sequences(xs, maxlen=story_maxlen), pad_sequences(xqs, maxlen=query_maxlen), ys

    x, xq, y = vectorize(train)
    tx, txq, ty = vectorize(test)
    assert x.shape == (9, story_maxlen) and xq.shape == (9, query_maxlen)
    RNN = recurrent.LSTM
    sentence = layers.Input(shape=(story_maxlen,), dtype="int32")
    encoded_sentence = RNN(8)(layers.Embedding(vocab_size, 6)(sentence))
    question = layers.Input(shape=(query_maxlen,), dtype="int32")
    encoded_question = RNN(5)(layers.Embedding(vocab_size, 6)(question))
    merged = layers.concatenate([encoded_sentence, encoded_question])
    assert merged.shape == (None, 13)
    preds = layers.Dense(vocab_size, activation="softmax")(merged)
    model = Model([sentence, question], preds)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit([x, xq], y, batch_size=4, epochs=3, validation_split=0.25, verbose=0)
    losses = _finite_losses(history)
    assert losses[-1] < losses[0] and "val_accuracy" in history.history
    loss, acc = model.evaluate([tx, txq], ty, batch_size=4, verbose=0)
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0


def test_babi_memnn_dot_add_permute_concatenate_of_sequential_encoders(keras_home):
    """babi_memnn: three Sequential encoders called on Inputs of default dtype (float word
    ids), `dot(axes=(2, 2))`, softmax, `add`, `Permute`, `concatenate`, LSTM; the match
    tensor is checked against the hand-computed softmax of the embedding products."""
    import tarfile

    from kestrel.layers import (LSTM, Activation, Dense, Dropout, Input, Permute, add,
                                concatenate, dot)
    from kestrel.layers.embeddings import Embedding
    from kestrel.models import Model, Sequential
    from kestrel.preprocessing.sequence import pad_sequences
    from kestrel.utils.data_utils import get_file
    challenge = "tasks_1-20_v1-2/en-10k/qa1_single-supporting-fact_{}.txt"
    _babi_tar(keras_home, [challenge.format("train"), challenge.format("test")])
    path = get_file("babi-tasks-v1-2.tar.gz", origin="https://example.invalid/babi.tar.gz")
    with tarfile.open(path) as tar:
        train_stories = _get_stories(tar.extractfile(challenge.format("train")))
    word_idx, story_maxlen, query_maxlen = _babi_vocabulary(train_stories, [])
    vocab_size = len(word_idx) + 1
    inputs_train = pad_sequences([[word_idx[w] for w in s] for s, _, _ in train_stories],
                                 maxlen=story_maxlen)
    queries_train = pad_sequences([[word_idx[w] for w in q] for _, q, _ in train_stories],
                                  maxlen=query_maxlen)
    answers_train = np.array([word_idx[a] for _, _, a in train_stories])

    input_sequence = Input((story_maxlen,))
    question = Input((query_maxlen,))
    input_encoder_m = Sequential()
    input_encoder_m.add(Embedding(input_dim=vocab_size, output_dim=6))
    input_encoder_m.add(Dropout(0.3))
    input_encoder_c = Sequential()
    input_encoder_c.add(Embedding(input_dim=vocab_size, output_dim=query_maxlen))
    input_encoder_c.add(Dropout(0.3))
    question_encoder = Sequential()
    question_encoder.add(Embedding(input_dim=vocab_size, output_dim=6, input_length=query_maxlen))
    question_encoder.add(Dropout(0.3))
    input_encoded_m = input_encoder_m(input_sequence)
    input_encoded_c = input_encoder_c(input_sequence)
    question_encoded = question_encoder(question)
    match = dot([input_encoded_m, question_encoded], axes=(2, 2))
    match = Activation("softmax")(match)
    response = add([match, input_encoded_c])
    response = Permute((2, 1))(response)
    assert response.shape == (None, query_maxlen, story_maxlen)
    answer = concatenate([response, question_encoded])
    answer = LSTM(8)(answer)
    answer = Dropout(0.3)(answer)
    answer = Dense(vocab_size)(answer)
    answer = Activation("softmax")(answer)
    model = Model([input_sequence, question], answer)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit([inputs_train, queries_train], answers_train, batch_size=4, epochs=3,
                        validation_data=([inputs_train, queries_train], answers_train),
                        verbose=0)
    losses = _finite_losses(history)
    assert losses[-1] < losses[0]

    match_model = Model([input_sequence, question], match)
    got = match_model.predict([inputs_train[:2], queries_train[:2]], verbose=0)
    table_m = K.get_value(input_encoder_m.layers[0].embeddings)
    table_q = K.get_value(question_encoder.layers[0].embeddings)
    scores = np.einsum("bsd,bqd->bsq", table_m[inputs_train[:2]], table_q[queries_train[:2]])
    expected = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_lstm_text_generation_bool_one_hots_and_lambda_callback_sampling(keras_home):
    """lstm_text_generation: the corpus read from `get_file`'s cache, boolean one-hot x and y,
    `RMSprop(learning_rate=...)`, and a LambdaCallback whose on_epoch_end predicts and samples
    the next characters with the script's temperature sampling."""
    import io
    import random

    from kestrel.callbacks import LambdaCallback
    from kestrel.layers import LSTM, Dense
    from kestrel.models import Sequential
    from kestrel.optimizers import RMSprop
    from kestrel.utils.data_utils import get_file
    (keras_home / "nietzsche.txt").write_text("Supposing that Truth is a woman--what then? " * 4)
    path = get_file("nietzsche.txt", origin="https://example.invalid/nietzsche.txt")
    with io.open(path, encoding="utf-8") as f:
        text = f.read().lower()
    chars = sorted(set(text))
    char_indices = {c: i for i, c in enumerate(chars)}
    indices_char = {i: c for i, c in enumerate(chars)}
    maxlen, step = 10, 3
    sentences = [text[i: i + maxlen] for i in range(0, len(text) - maxlen, step)]
    next_chars = [text[i + maxlen] for i in range(0, len(text) - maxlen, step)]
    x = np.zeros((len(sentences), maxlen, len(chars)), dtype=bool)
    y = np.zeros((len(sentences), len(chars)), dtype=bool)
    for i, sentence in enumerate(sentences):
        for t, char in enumerate(sentence):
            x[i, t, char_indices[char]] = 1
        y[i, char_indices[next_chars[i]]] = 1

    model = Sequential()
    model.add(LSTM(16, input_shape=(maxlen, len(chars))))
    model.add(Dense(len(chars), activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer=RMSprop(learning_rate=0.01))

    def sample(preds, temperature=1.0):
        preds = np.asarray(preds).astype("float64")
        preds = np.log(preds) / temperature
        exp_preds = np.exp(preds)
        preds = exp_preds / np.sum(exp_preds)
        return np.argmax(np.random.multinomial(1, preds, 1))

    generated = []

    def on_epoch_end(epoch, _):
        start_index = random.randint(0, len(text) - maxlen - 1)
        sentence = text[start_index: start_index + maxlen]
        for _ in range(3):
            x_pred = np.zeros((1, maxlen, len(chars)))
            for t, char in enumerate(sentence):
                x_pred[0, t, char_indices[char]] = 1.0
            preds = model.predict(x_pred, verbose=0)[0]
            assert preds.shape == (len(chars),) and abs(preds.sum() - 1) < 1e-4
            next_char = indices_char[sample(preds, 0.5)]
            sentence = sentence[1:] + next_char
            generated.append(next_char)

    history = model.fit(x, y, batch_size=16, epochs=3,
                        callbacks=[LambdaCallback(on_epoch_end=on_epoch_end)], verbose=0)
    losses = _finite_losses(history)
    assert losses[-1] < losses[0]
    assert len(generated) == 9 and set(generated) <= set(chars)


def test_conv_lstm_stacked_conv_lstm2d_batchnorm_conv3d_and_frame_by_frame_prediction():
    """conv_lstm: ConvLSTM2D(return_sequences=True) with `input_shape=(None, rows, cols, 1)`
    (any number of frames), BatchNormalization, Conv3D(data_format='channels_last'), the
    `adadelta` optimizer, float64 movies, then the prediction loop that appends frames."""
    from kestrel.layers.convolutional import Conv3D
    from kestrel.layers.convolutional_recurrent import ConvLSTM2D
    from kestrel.layers.normalization import BatchNormalization
    from kestrel.models import Sequential
    seq = Sequential()
    seq.add(ConvLSTM2D(filters=3, kernel_size=(3, 3), input_shape=(None, 8, 8, 1),
                       padding="same", return_sequences=True))
    seq.add(BatchNormalization())
    seq.add(ConvLSTM2D(filters=3, kernel_size=(3, 3), padding="same", return_sequences=True))
    seq.add(BatchNormalization())
    seq.add(Conv3D(filters=1, kernel_size=(3, 3, 3), activation="sigmoid", padding="same",
                   data_format="channels_last"))
    seq.compile(loss="binary_crossentropy", optimizer="adadelta")
    assert seq.output_shape == (None, None, 8, 8, 1)

    rng = np.random.default_rng(2)
    noisy_movies = (rng.random((6, 4, 8, 8, 1)) > 0.8).astype(np.float64)
    shifted_movies = np.roll(noisy_movies, 1, axis=3)
    history = seq.fit(noisy_movies[:5], shifted_movies[:5], batch_size=2, epochs=1,
                      validation_split=0.2, verbose=0)
    _finite_losses(history)
    assert len(history.history["val_loss"]) == 1

    track = noisy_movies[5][:2, ::, ::, ::]
    for _ in range(2):
        new_pos = seq.predict(track[np.newaxis, ::, ::, ::, ::], verbose=0)
        assert new_pos.shape == (1, track.shape[0], 8, 8, 1)
        track = np.concatenate((track, new_pos[::, -1, ::, ::, ::]), axis=0)
    assert track.shape == (4, 8, 8, 1) and np.all((track >= 0) & (track <= 1))


def test_mnist_denoising_autoencoder_nested_encoder_decoder_with_k_int_shape(monkeypatch):
    """mnist_denoising_autoencoder: the decoder's Dense/Reshape sizes come from
    `K.int_shape` of the encoder's last conv, Conv2DTranspose(strides=2, 'same') undoes the
    stride-2 convs, and the autoencoder calls `decoder(encoder(inputs))`."""
    from kestrel.layers import (Activation, Conv2D, Conv2DTranspose, Dense, Flatten, Input,
                                Reshape)
    from kestrel.models import Model
    _fake_mnist(monkeypatch, side=12)
    (x_train, _), (x_test, _) = mnist.load_data()
    image_size = x_train.shape[1]
    x_train = np.reshape(x_train, [-1, image_size, image_size, 1]).astype("float32") / 255
    x_test = np.reshape(x_test, [-1, image_size, image_size, 1]).astype("float32") / 255
    x_train_noisy = np.clip(x_train + np.random.normal(0.5, 0.5, x_train.shape), 0.0, 1.0)
    x_test_noisy = np.clip(x_test + np.random.normal(0.5, 0.5, x_test.shape), 0.0, 1.0)

    layer_filters, latent_dim = [4, 8], 6
    inputs = Input(shape=(image_size, image_size, 1), name="encoder_input")
    x = inputs
    for filters in layer_filters:
        x = Conv2D(filters=filters, kernel_size=3, strides=2, activation="relu",
                   padding="same")(x)
    shape = K.int_shape(x)
    assert shape == (None, 3, 3, 8)
    x = Flatten()(x)
    latent = Dense(latent_dim, name="latent_vector")(x)
    encoder = Model(inputs, latent, name="encoder")

    latent_inputs = Input(shape=(latent_dim,), name="decoder_input")
    x = Dense(shape[1] * shape[2] * shape[3])(latent_inputs)
    x = Reshape((shape[1], shape[2], shape[3]))(x)
    for filters in layer_filters[::-1]:
        x = Conv2DTranspose(filters=filters, kernel_size=3, strides=2, activation="relu",
                            padding="same")(x)
    x = Conv2DTranspose(filters=1, kernel_size=3, padding="same")(x)
    outputs = Activation("sigmoid", name="decoder_output")(x)
    decoder = Model(latent_inputs, outputs, name="decoder")
    autoencoder = Model(inputs, decoder(encoder(inputs)), name="autoencoder")
    assert [layer.name for layer in autoencoder.layers] == ["encoder_input", "encoder",
                                                           "decoder"]
    autoencoder.compile(loss="mse", optimizer="adam")
    history = autoencoder.fit(x_train_noisy, x_train, validation_data=(x_test_noisy, x_test),
                              epochs=3, batch_size=8, verbose=0)
    losses = _finite_losses(history)
    assert losses[-1] < losses[0]
    x_decoded = autoencoder.predict(x_test_noisy, verbose=0)
    assert x_decoded.shape == x_test.shape
    np.testing.assert_allclose(x_decoded, decoder.predict(encoder.predict(x_test_noisy,
                                                                          verbose=0),
                                                          verbose=0), rtol=1e-5, atol=1e-6)


def test_mnist_irnn_identity_recurrent_initializer_and_small_normal_kernel(monkeypatch):
    """mnist_irnn: SimpleRNN(relu) with `initializers.Identity(gain=1.0)` as the recurrent
    initializer (the recurrent kernel starts as the identity) and a RandomNormal(0.001)
    kernel, over pixel sequences of shape (rows * cols, 1)."""
    from kestrel import initializers
    from kestrel.layers import Activation, Dense, SimpleRNN
    from kestrel.models import Sequential
    from kestrel.optimizers import RMSprop
    _fake_mnist(monkeypatch, side=4)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train.reshape(x_train.shape[0], -1, 1).astype("float32") / 255
    x_test = x_test.reshape(x_test.shape[0], -1, 1).astype("float32") / 255
    y_train = keras.utils.to_categorical(y_train, 10)
    y_test = keras.utils.to_categorical(y_test, 10)

    model = Sequential()
    model.add(SimpleRNN(8, kernel_initializer=initializers.RandomNormal(stddev=0.001),
                        recurrent_initializer=initializers.Identity(gain=1.0),
                        activation="relu", input_shape=x_train.shape[1:]))
    model.add(Dense(10))
    model.add(Activation("softmax"))
    rnn = model.layers[0]
    np.testing.assert_array_equal(K.get_value(rnn.cell.recurrent_kernel), np.eye(8))
    assert abs(K.get_value(rnn.cell.kernel)).max() < 0.01
    model.compile(loss="categorical_crossentropy", optimizer=RMSprop(learning_rate=1e-3),
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=8, epochs=2, verbose=0,
                        validation_data=(x_test, y_test))
    _finite_losses(history)
    scores = model.evaluate(x_test, y_test, verbose=0)
    assert len(scores) == 2 and np.isfinite(scores[0])


def test_mnist_transfer_cnn_freezing_shared_feature_layers_between_compiles(monkeypatch):
    """mnist_transfer_cnn: one Sequential built from two lists of layer instances, trained,
    then `l.trainable = False` on the feature layers and compiled again: the second fit
    changes only the classifier's weights."""
    from kestrel.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from kestrel.models import Sequential
    _fake_mnist(monkeypatch, side=8)
    input_shape = (1, 8, 8) if K.image_data_format() == "channels_first" else (8, 8, 1)

    def train_model(model, train, test, num_classes):
        x_train = train[0].reshape((train[0].shape[0],) + input_shape).astype("float32") / 255
        x_test = test[0].reshape((test[0].shape[0],) + input_shape).astype("float32") / 255
        y_train = keras.utils.to_categorical(train[1], num_classes)
        y_test = keras.utils.to_categorical(test[1], num_classes)
        model.compile(loss="categorical_crossentropy", optimizer="adadelta",
                      metrics=["accuracy"])
        model.fit(x_train, y_train, batch_size=8, epochs=1, verbose=0,
                  validation_data=(x_test, y_test))
        score = model.evaluate(x_test, y_test, verbose=0)
        assert np.isfinite(score[0]) and 0.0 <= score[1] <= 1.0

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    feature_layers = [Conv2D(4, 3, padding="valid", input_shape=input_shape),
                      Activation("relu"), Conv2D(4, 3), Activation("relu"),
                      MaxPooling2D(pool_size=2), Dropout(0.25), Flatten()]
    classification_layers = [Dense(8), Activation("relu"), Dropout(0.5), Dense(5),
                             Activation("softmax")]
    model = Sequential(feature_layers + classification_layers)
    train_model(model, (x_train[y_train < 5], y_train[y_train < 5]),
                (x_test[y_test < 5], y_test[y_test < 5]), 5)
    for layer in feature_layers:
        layer.trainable = False
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 4
    features_before = [K.get_value(w) for w in feature_layers[0].weights]
    dense_before = K.get_value(classification_layers[0].kernel)
    train_model(model, (x_train[y_train >= 5], y_train[y_train >= 5] - 5),
                (x_test[y_test >= 5], y_test[y_test >= 5] - 5), 5)
    for before, weight in zip(features_before, feature_layers[0].weights):
        np.testing.assert_array_equal(before, K.get_value(weight))
    assert not np.array_equal(dense_before, K.get_value(classification_layers[0].kernel))


def test_mnist_hierarchical_rnn_time_distributed_lstm_over_rows(monkeypatch):
    """mnist_hierarchical_rnn: TimeDistributed(LSTM) encodes each row of an image (4D input),
    then an LSTM encodes the row codes; the row encoding equals the LSTM run on each row."""
    from kestrel.layers import LSTM, Dense, Input, TimeDistributed
    from kestrel.models import Model
    _fake_mnist(monkeypatch, side=6)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train.reshape(x_train.shape[0], 6, 6, 1).astype("float32") / 255
    x_test = x_test.reshape(x_test.shape[0], 6, 6, 1).astype("float32") / 255
    y_train = keras.utils.to_categorical(y_train, 10)
    y_test = keras.utils.to_categorical(y_test, 10)
    row, col, pixel = x_train.shape[1:]
    x = Input(shape=(row, col, pixel))
    row_lstm = LSTM(5)
    encoded_rows = TimeDistributed(row_lstm)(x)
    assert encoded_rows.shape == (None, row, 5)
    encoded_columns = LSTM(7)(encoded_rows)
    prediction = Dense(10, activation="softmax")(encoded_columns)
    model = Model(x, prediction)
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    history = model.fit(x_train[:16], y_train[:16], batch_size=8, epochs=1, verbose=0,
                        validation_data=(x_test, y_test))
    _finite_losses(history)
    rows = Model(x, encoded_rows).predict(x_test[:2], verbose=0)
    one_row = keras.ops.convert_to_numpy(row_lstm(x_test[:2, 3]))
    np.testing.assert_allclose(rows[:, 3], one_row, rtol=1e-5, atol=1e-6)


def test_variational_autoencoder_deconv_symbolic_loss_added_to_the_model(monkeypatch, tmp_path):
    """variational_autoencoder_deconv: the loss is built from the model's symbolic tensors
    (`mse`/`binary_crossentropy` of `K.flatten(inputs)` and `K.flatten(outputs)`, the KL term
    from `z_mean`/`z_log_var`), given to `vae.add_loss`, compiled without a loss, fit on x
    alone with `validation_data=(x_test, None)`, then `save_weights`/`load_weights` to .h5."""
    from kestrel.layers import Conv2D, Conv2DTranspose, Dense, Flatten, Input, Lambda, Reshape
    from kestrel.losses import binary_crossentropy, mse
    from kestrel.models import Model
    _fake_mnist(monkeypatch, n_train=16, n_test=8, side=8)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    image_size = x_train.shape[1]
    x_train = np.reshape(x_train, [-1, image_size, image_size, 1]).astype("float32") / 255
    x_test = np.reshape(x_test, [-1, image_size, image_size, 1]).astype("float32") / 255

    def sampling(args):
        z_mean, z_log_var = args
        batch = K.shape(z_mean)[0]
        dim = K.int_shape(z_mean)[1]
        epsilon = K.random_normal(shape=(batch, dim))
        return z_mean + K.exp(0.5 * z_log_var) * epsilon

    filters, latent_dim = 2, 2
    inputs = Input(shape=(image_size, image_size, 1), name="encoder_input")
    x = inputs
    for _ in range(2):
        filters *= 2
        x = Conv2D(filters=filters, kernel_size=3, activation="relu", strides=2,
                   padding="same")(x)
    shape = K.int_shape(x)
    x = Dense(8, activation="relu")(Flatten()(x))
    z_mean = Dense(latent_dim, name="z_mean")(x)
    z_log_var = Dense(latent_dim, name="z_log_var")(x)
    z = Lambda(sampling, output_shape=(latent_dim,), name="z")([z_mean, z_log_var])
    encoder = Model(inputs, [z_mean, z_log_var, z], name="encoder")
    latent_inputs = Input(shape=(latent_dim,), name="z_sampling")
    x = Dense(shape[1] * shape[2] * shape[3], activation="relu")(latent_inputs)
    x = Reshape((shape[1], shape[2], shape[3]))(x)
    for _ in range(2):
        x = Conv2DTranspose(filters=filters, kernel_size=3, activation="relu", strides=2,
                            padding="same")(x)
        filters //= 2
    outputs = Conv2DTranspose(filters=1, kernel_size=3, activation="sigmoid", padding="same",
                              name="decoder_output")(x)
    decoder = Model(latent_inputs, outputs, name="decoder")
    outputs = decoder(encoder(inputs)[2])
    vae = Model(inputs, outputs, name="vae")

    for reconstruction in (binary_crossentropy, mse):
        reconstruction_loss = reconstruction(K.flatten(inputs), K.flatten(outputs))
        assert K.int_shape(reconstruction_loss) == ()
    reconstruction_loss = binary_crossentropy(K.flatten(inputs), K.flatten(outputs))
    reconstruction_loss *= image_size * image_size
    kl_loss = 1 + z_log_var - K.square(z_mean) - K.exp(z_log_var)
    kl_loss = K.sum(kl_loss, axis=-1)
    kl_loss *= -0.5
    vae_loss = K.mean(reconstruction_loss + kl_loss)
    vae.add_loss(vae_loss)
    vae.compile(optimizer="rmsprop")
    history = vae.fit(x_train, epochs=3, batch_size=8, validation_data=(x_test, None),
                      verbose=0)
    losses = _finite_losses(history)
    assert losses[-1] < losses[0] and len(history.history["val_loss"]) == 3
    assert losses[0] > image_size * image_size * 0.3  # the scaled crossentropy is in the loss

    path = str(tmp_path / "vae_cnn_mnist.h5")
    vae.save_weights(path)
    z_mean_value, _, _ = encoder.predict(x_test, batch_size=8, verbose=0)
    assert z_mean_value.shape == (8, latent_dim)
    digit = decoder.predict(np.array([[0.5, -0.5]]), verbose=0)[0].reshape(image_size,
                                                                          image_size)
    for weight in vae.weights:
        weight.assign(np.zeros(weight.shape))
    vae.load_weights(path)
    np.testing.assert_allclose(encoder.predict(x_test, batch_size=8, verbose=0)[0],
                               z_mean_value, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(decoder.predict(np.array([[0.5, -0.5]]), verbose=0)[0, ..., 0],
                               digit, rtol=1e-6)


PAIRS = ["Go.\tVa !", "Hi.\tSalut !", "Run!\tCours !", "Wow!\tCa alors !", "Fire!\tAu feu !",
         "Help!\tA l'aide !", "Stop!\tStop !", "Wait!\tAttends !"]


def _seq2seq_data(pairs):
    """lstm_seq2seq's character one-hots: encoder input, decoder input, decoder target."""
    input_texts = [p.split("\t")[0] for p in pairs]
    target_texts = ["\t" + p.split("\t")[1] + "\n" for p in pairs]
    input_characters = sorted(set("".join(input_texts)) | {" "})
    target_characters = sorted(set("".join(target_texts)) | {" "})
    input_token_index = {c: i for i, c in enumerate(input_characters)}
    target_token_index = {c: i for i, c in enumerate(target_characters)}
    shape = (len(pairs), max(map(len, input_texts)), len(input_characters))
    encoder_input_data = np.zeros(shape, dtype="float32")
    shape = (len(pairs), max(map(len, target_texts)), len(target_characters))
    decoder_input_data = np.zeros(shape, dtype="float32")
    decoder_target_data = np.zeros(shape, dtype="float32")
    for i, (input_text, target_text) in enumerate(zip(input_texts, target_texts)):
        for t, char in enumerate(input_text):
            encoder_input_data[i, t, input_token_index[char]] = 1.0
        encoder_input_data[i, t + 1:, input_token_index[" "]] = 1.0
        for t, char in enumerate(target_text):
            decoder_input_data[i, t, target_token_index[char]] = 1.0
            if t > 0:
                decoder_target_data[i, t - 1, target_token_index[char]] = 1.0
        decoder_input_data[i, t + 1:, target_token_index[" "]] = 1.0
        decoder_target_data[i, t:, target_token_index[" "]] = 1.0
    return encoder_input_data, decoder_input_data, decoder_target_data, target_token_index


def _decode_sequence(encoder_model, decoder_model, input_seq, target_token_index, max_len):
    """lstm_seq2seq's greedy decoding loop, one character per decoder_model.predict."""
    reverse_target_char_index = {i: c for c, i in target_token_index.items()}
    states_value = encoder_model.predict(input_seq, verbose=0)
    target_seq = np.zeros((1, 1, len(target_token_index)))
    target_seq[0, 0, target_token_index["\t"]] = 1.0
    decoded_sentence = ""
    while True:
        output_tokens, h, c = decoder_model.predict([target_seq] + states_value, verbose=0)
        sampled_token_index = np.argmax(output_tokens[0, -1, :])
        sampled_char = reverse_target_char_index[sampled_token_index]
        decoded_sentence += sampled_char
        if sampled_char == "\n" or len(decoded_sentence) > max_len:
            return decoded_sentence
        target_seq = np.zeros((1, 1, len(target_token_index)))
        target_seq[0, 0, sampled_token_index] = 1.0
        states_value = [h, c]


def test_lstm_seq2seq_train_save_and_restore_inference_models(tmp_path):
    """lstm_seq2seq and lstm_seq2seq_restore: an encoder LSTM(return_state=True) whose states
    start the decoder LSTM; after fit and `model.save('s2s.h5')`, inference models reuse the
    trained layers. The restore script rebuilds them from `load_model` through
    `model.input[0]`, `model.layers[2].output` (three tensors) and `model.layers[3]` called
    on new Inputs; both decode the same sentence and give the same probabilities."""
    from kestrel.layers import LSTM, Dense, Input
    from kestrel.models import Model, load_model
    (encoder_input_data, decoder_input_data, decoder_target_data,
     target_token_index) = _seq2seq_data(PAIRS)
    num_encoder_tokens = encoder_input_data.shape[-1]
    num_decoder_tokens, latent_dim = decoder_input_data.shape[-1], 8
    max_decoder_seq_length = decoder_input_data.shape[1]

    encoder_inputs = Input(shape=(None, num_encoder_tokens))
    encoder_outputs, state_h, state_c = LSTM(latent_dim, return_state=True)(encoder_inputs)
    encoder_states = [state_h, state_c]
    decoder_inputs = Input(shape=(None, num_decoder_tokens))
    decoder_lstm = LSTM(latent_dim, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = Dense(num_decoder_tokens, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)
    model = Model([encoder_inputs, decoder_inputs], decoder_outputs)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit([encoder_input_data, decoder_input_data], decoder_target_data,
                        batch_size=4, epochs=3, validation_split=0.25, verbose=0)
    losses = _finite_losses(history)
    assert losses[-1] < losses[0]
    path = str(tmp_path / "s2s.h5")
    model.save(path)

    def inference_models(encoder_inputs, encoder_states, decoder_inputs, decoder_lstm,
                         decoder_dense, names=(None, None)):
        encoder_model = Model(encoder_inputs, encoder_states)
        decoder_states_inputs = [Input(shape=(latent_dim,), name=names[0]),
                                 Input(shape=(latent_dim,), name=names[1])]
        outputs, state_h, state_c = decoder_lstm(decoder_inputs,
                                                 initial_state=decoder_states_inputs)
        decoder_model = Model([decoder_inputs] + decoder_states_inputs,
                              [decoder_dense(outputs), state_h, state_c])
        return encoder_model, decoder_model

    trained = inference_models(encoder_inputs, encoder_states, decoder_inputs, decoder_lstm,
                               decoder_dense)
    restored_model = load_model(path)
    _, state_h_enc, state_c_enc = restored_model.layers[2].output
    restored = inference_models(restored_model.input[0], [state_h_enc, state_c_enc],
                                restored_model.input[1], restored_model.layers[3],
                                restored_model.layers[4], names=("input_3", "input_4"))
    input_seq = encoder_input_data[0:1]
    sentences = [_decode_sequence(*models, input_seq, target_token_index,
                                  max_decoder_seq_length) for models in (trained, restored)]
    assert sentences[0] == sentences[1] and 1 <= len(sentences[0]) <= max_decoder_seq_length + 1
    states = [models[0].predict(input_seq, verbose=0) for models in (trained, restored)]
    for a, b in zip(*states):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        restored_model.predict([encoder_input_data, decoder_input_data], verbose=0),
        model.predict([encoder_input_data, decoder_input_data], verbose=0), rtol=1e-6,
        atol=1e-6)


def test_cnn_seq2seq_causal_dilated_convolution1d_and_dot_attention(tmp_path):
    """cnn_seq2seq: `Convolution1D(padding='causal', dilation_rate=...)` on both sides,
    `Dot(axes=[2, 2])` attention scores, softmax, `Dot(axes=[2, 1])` context, Concatenate,
    and the decoding loop that feeds each predicted character back. The causal stack makes
    the output at step t independent of decoder inputs after t."""
    from kestrel.layers import Activation, Concatenate, Convolution1D, Dense, Dot, Input
    from kestrel.models import Model
    encoder_input_data, decoder_input_data, decoder_target_data, target_token_index = (
        _seq2seq_data(PAIRS))
    num_encoder_tokens = encoder_input_data.shape[-1]
    num_decoder_tokens = decoder_input_data.shape[-1]
    max_decoder_seq_length = decoder_input_data.shape[1]

    def causal_stack(x):
        for dilation_rate in (1, 2, 4):
            x = Convolution1D(6, kernel_size=3, activation="relu", padding="causal",
                              dilation_rate=dilation_rate)(x)
        return x

    encoder_inputs = Input(shape=(None, num_encoder_tokens))
    x_encoder = causal_stack(encoder_inputs)
    decoder_inputs = Input(shape=(None, num_decoder_tokens))
    x_decoder = causal_stack(decoder_inputs)
    attention = Dot(axes=[2, 2])([x_decoder, x_encoder])
    attention = Activation("softmax")(attention)
    context = Dot(axes=[2, 1])([attention, x_encoder])
    decoder_combined_context = Concatenate(axis=-1)([context, x_decoder])
    decoder_outputs = Convolution1D(5, kernel_size=3, activation="relu",
                                    padding="causal")(decoder_combined_context)
    decoder_outputs = Convolution1D(5, kernel_size=3, activation="relu",
                                    padding="causal")(decoder_outputs)
    decoder_outputs = Dense(num_decoder_tokens, activation="softmax")(decoder_outputs)
    model = Model([encoder_inputs, decoder_inputs], decoder_outputs)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    history = model.fit([encoder_input_data, decoder_input_data], decoder_target_data,
                        batch_size=4, epochs=3, validation_split=0.25, verbose=0)
    losses = _finite_losses(history)
    assert losses[-1] < losses[0]
    model.save(str(tmp_path / "cnn_s2s.h5"))

    full = model.predict([encoder_input_data, decoder_input_data], verbose=0)
    cut = decoder_input_data.copy()
    cut[:, 4:] = 0.0
    np.testing.assert_allclose(model.predict([encoder_input_data, cut], verbose=0)[:, :4],
                               full[:, :4], rtol=1e-5, atol=1e-6)

    in_decoder = np.zeros_like(decoder_input_data)
    in_decoder[:, 0, target_token_index["\t"]] = 1
    for i in range(max_decoder_seq_length - 1):
        predict = model.predict([encoder_input_data, in_decoder], verbose=0).argmax(axis=-1)
        for j, x in enumerate(predict[:, i].ravel().tolist()):
            in_decoder[j, i + 1, x] = 1
    assert predict.shape == (len(PAIRS), max_decoder_seq_length)
    np.testing.assert_array_equal(in_decoder.sum(axis=-1), 1.0)


def _resnet_layer(inputs, num_filters=16, kernel_size=3, strides=1, activation="relu",
                  batch_normalization=True, conv_first=True):
    """cifar10_resnet's Conv2D-BatchNormalization-Activation stack builder (v1 path)."""
    from kestrel.layers import Activation, BatchNormalization, Conv2D
    from kestrel.regularizers import l2
    conv = Conv2D(num_filters, kernel_size=kernel_size, strides=strides, padding="same",
                  kernel_initializer="he_normal", kernel_regularizer=l2(1e-4))
    x = conv(inputs)
    if batch_normalization:
        x = BatchNormalization()(x)
    if activation is not None:
        x = Activation(activation)(x)
    return x


def _resnet_v1(input_shape, depth, num_classes=10):
    from kestrel.layers import Activation, AveragePooling2D, Dense, Flatten, Input
    from kestrel.models import Model
    num_filters, num_res_blocks = 4, int((depth - 2) / 6)
    inputs = Input(shape=input_shape)
    x = _resnet_layer(inputs=inputs, num_filters=num_filters)
    for stack in range(3):
        for res_block in range(num_res_blocks):
            strides = 2 if stack > 0 and res_block == 0 else 1
            y = _resnet_layer(inputs=x, num_filters=num_filters, strides=strides)
            y = _resnet_layer(inputs=y, num_filters=num_filters, activation=None)
            if stack > 0 and res_block == 0:
                x = _resnet_layer(inputs=x, num_filters=num_filters, kernel_size=1,
                                  strides=strides, activation=None, batch_normalization=False)
            x = keras.layers.add([x, y])
            x = Activation("relu")(x)
        num_filters *= 2
    x = AveragePooling2D(pool_size=8)(x)
    outputs = Dense(num_classes, activation="softmax", kernel_initializer="he_normal")(
        Flatten()(x))
    return Model(inputs=inputs, outputs=outputs)


def test_cifar10_resnet_v1_callbacks_and_augmented_fit_generator(monkeypatch, tmp_path):
    """cifar10_resnet (v1, depth 8): `keras.layers.add` shortcuts, l2 kernel regularizers
    (in the loss), `Adam(learning_rate=lr_schedule(0))`, ModelCheckpoint('...{epoch:03d}.h5',
    monitor='val_acc', save_best_only=True), ReduceLROnPlateau(factor=np.sqrt(0.1)),
    LearningRateScheduler, ImageDataGenerator with every Keras 2 argument spelled out,
    `datagen.fit`, `fit_generator(..., workers=4)`.

    With metrics=['accuracy'] the logs say 'val_accuracy' (Keras 2.3+); 'val_acc' is the
    Keras 2.2 name the script was written for, so the checkpoint reads 'val_accuracy' (with a
    deprecation warning) and saves the epochs that improve it."""
    from kestrel.callbacks import LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau
    from kestrel.optimizers import Adam
    from kestrel.preprocessing.image import ImageDataGenerator
    rng = np.random.default_rng(3)

    def load_data():
        def split(n):
            return (rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
                    rng.integers(0, 10, size=(n, 1), dtype=np.uint8))
        return split(12), split(4)

    monkeypatch.setattr(cifar10, "load_data", load_data)
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    x_train = x_train.astype("float32") / 255
    x_test = x_test.astype("float32") / 255
    x_train_mean = np.mean(x_train, axis=0)
    x_train -= x_train_mean
    x_test -= x_train_mean
    y_train = keras.utils.to_categorical(y_train, 10)
    y_test = keras.utils.to_categorical(y_test, 10)

    def lr_schedule(epoch):
        lr = 1e-3
        if epoch > 1:
            lr *= 1e-1
        return lr

    model = _resnet_v1(input_shape=x_train.shape[1:], depth=8)
    assert len(model.losses) == 9  # one l2 penalty per Conv2D
    model.compile(loss="categorical_crossentropy", optimizer=Adam(learning_rate=lr_schedule(0)),
                  metrics=["accuracy"])
    filepath = str(tmp_path / "cifar10_ResNet8v1_model.{epoch:03d}.h5")
    checkpoint = ModelCheckpoint(filepath=filepath, monitor="val_acc", verbose=0,
                                 save_best_only=True)
    lr_reducer = ReduceLROnPlateau(factor=np.sqrt(0.1), cooldown=0, patience=5, min_lr=0.5e-6)
    lr_scheduler = LearningRateScheduler(lr_schedule)
    datagen = ImageDataGenerator(
        featurewise_center=False, samplewise_center=False, featurewise_std_normalization=False,
        samplewise_std_normalization=False, zca_whitening=False, zca_epsilon=1e-06,
        rotation_range=0, width_shift_range=0.1, height_shift_range=0.1, shear_range=0.0,
        zoom_range=0.0, channel_shift_range=0.0, fill_mode="nearest", cval=0.0,
        horizontal_flip=True, vertical_flip=False, rescale=None, preprocessing_function=None,
        data_format=None, validation_split=0.0)
    datagen.fit(x_train)
    with pytest.warns(DeprecationWarning, match="`val_acc` is the Keras 2.2 name"):
        history = model.fit_generator(datagen.flow(x_train, y_train, batch_size=6),
                                      validation_data=(x_test, y_test), epochs=3, verbose=0,
                                      workers=4,
                                      callbacks=[checkpoint, lr_reducer, lr_scheduler])
    _finite_losses(history)
    assert history.history["learning_rate"] == pytest.approx([1e-3, 1e-3, 1e-4])
    val_acc = history.history["val_acc"]
    assert val_acc is history.history["val_accuracy"]
    improved = [i + 1 for i, v in enumerate(val_acc) if v > max(val_acc[:i], default=-1)]
    saved = sorted(path.name for path in tmp_path.glob("*.h5"))
    assert saved == [f"cifar10_ResNet8v1_model.00{i}.h5" for i in improved]
    scores = model.evaluate(x_test, y_test, verbose=0)
    assert len(scores) == 2 and np.isfinite(scores[0])


def test_pretrained_word_embeddings_constant_initializer_frozen_embedding(tmp_path):
    """pretrained_word_embeddings: GloVe lines parsed with `np.fromstring`, Tokenizer over
    the texts, `Embedding(..., embeddings_initializer=Constant(matrix), trainable=False)`,
    Conv1D/MaxPooling1D/GlobalMaxPooling1D, `metrics=['acc']` (logged as 'acc'/'val_acc');
    the embedding table still holds the GloVe rows after fit."""
    from kestrel.initializers import Constant
    from kestrel.layers import (Conv1D, Dense, Embedding, GlobalMaxPooling1D, Input,
                                MaxPooling1D)
    from kestrel.models import Model
    from kestrel.preprocessing.sequence import pad_sequences
    from kestrel.preprocessing.text import Tokenizer
    from kestrel.utils import to_categorical
    rng = np.random.default_rng(5)
    words = ["space", "nasa", "orbit", "god", "church", "faith", "car", "engine", "wheel"]
    glove = tmp_path / "glove.6B.4d.txt"
    glove.write_text("".join(w + " " + " ".join(f"{v:.4f}" for v in rng.normal(size=4)) + "\n"
                             for w in words[:-1]))
    embeddings_index = {}
    with open(glove) as f:
        for line in f:
            word, coefs = line.split(maxsplit=1)
            embeddings_index[word] = np.fromstring(coefs, "f", sep=" ")
    texts, labels = [], []
    for label_id in range(3):
        for _ in range(6):
            texts.append(" ".join(rng.choice(words[3 * label_id: 3 * label_id + 3], size=40)))
            labels.append(label_id)
    MAX_SEQUENCE_LENGTH, MAX_NUM_WORDS, EMBEDDING_DIM = 40, 20, 4
    tokenizer = Tokenizer(num_words=MAX_NUM_WORDS)
    tokenizer.fit_on_texts(texts)
    sequences = tokenizer.texts_to_sequences(texts)
    word_index = tokenizer.word_index
    data = pad_sequences(sequences, maxlen=MAX_SEQUENCE_LENGTH)
    labels = to_categorical(np.asarray(labels))
    assert data.shape == (18, 40) and labels.shape == (18, 3)
    num_words = min(MAX_NUM_WORDS, len(word_index) + 1)
    embedding_matrix = np.zeros((num_words, EMBEDDING_DIM))
    for word, i in word_index.items():
        embedding_vector = embeddings_index.get(word)
        if embedding_vector is not None:
            embedding_matrix[i] = embedding_vector

    embedding_layer = Embedding(num_words, EMBEDDING_DIM,
                                embeddings_initializer=Constant(embedding_matrix),
                                input_length=MAX_SEQUENCE_LENGTH, trainable=False)
    sequence_input = Input(shape=(MAX_SEQUENCE_LENGTH,), dtype="int32")
    x = Conv1D(8, 5, activation="relu")(embedding_layer(sequence_input))
    x = MaxPooling1D(5)(x)
    x = Conv1D(8, 5, activation="relu")(x)
    x = GlobalMaxPooling1D()(x)
    x = Dense(8, activation="relu")(x)
    preds = Dense(3, activation="softmax")(x)
    model = Model(sequence_input, preds)
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["acc"])
    history = model.fit(data[:14], labels[:14], batch_size=4, epochs=2, verbose=0,
                        validation_data=(data[14:], labels[14:]))
    _finite_losses(history)
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc"}
    np.testing.assert_allclose(K.get_value(embedding_layer.embeddings), embedding_matrix,
                               rtol=1e-6)
    assert not any(w is embedding_layer.embeddings for w in model.trainable_weights)


def test_reuters_mlp_relu_vs_selu_alpha_dropout_and_lecun_normal(monkeypatch):
    """reuters_mlp_relu_vs_selu: `keras.layers.noise.AlphaDropout`, 'lecun_normal' kernels,
    'selu' Activation, the network factory called with a dict of layer classes, the 'sgd'
    optimizer, `validation_split=0.1`; the SELU network keeps unit-scale activations."""
    from kestrel.layers import Activation, Dense, Dropout
    from kestrel.layers.noise import AlphaDropout
    from kestrel.models import Sequential
    from kestrel.preprocessing.text import Tokenizer
    rng = np.random.default_rng(6)
    max_words = 60

    def load_data(num_words=None, test_split=0.2, **_):
        xs = [list(rng.integers(1, num_words, size=int(n))) for n in rng.integers(5, 20, 30)]
        ys = rng.integers(0, 4, size=30)
        cut = int(len(xs) * (1 - test_split))
        return (xs[:cut], ys[:cut]), (xs[cut:], ys[cut:])

    monkeypatch.setattr(reuters, "load_data", load_data)

    def create_network(n_dense=6, dense_units=16, activation="selu", dropout=AlphaDropout,
                       dropout_rate=0.1, kernel_initializer="lecun_normal", optimizer="adam",
                       num_classes=1, max_words=max_words):
        model = Sequential()
        model.add(Dense(dense_units, input_shape=(max_words,),
                        kernel_initializer=kernel_initializer))
        model.add(Activation(activation))
        model.add(dropout(dropout_rate))
        for _ in range(n_dense - 1):
            model.add(Dense(dense_units, kernel_initializer=kernel_initializer))
            model.add(Activation(activation))
            model.add(dropout(dropout_rate))
        model.add(Dense(num_classes))
        model.add(Activation("softmax"))
        model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
        return model

    (x_train, y_train), (x_test, y_test) = reuters.load_data(num_words=max_words, test_split=0.2)
    num_classes = np.max(y_train) + 1
    tokenizer = Tokenizer(num_words=max_words)
    x_train = tokenizer.sequences_to_matrix(x_train, mode="binary")
    x_test = tokenizer.sequences_to_matrix(x_test, mode="binary")
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)
    network1 = {"n_dense": 3, "dense_units": 16, "activation": "relu", "dropout": Dropout,
                "dropout_rate": 0.5, "kernel_initializer": "glorot_uniform", "optimizer": "sgd"}
    network2 = {"n_dense": 3, "dense_units": 64, "activation": "selu", "dropout": AlphaDropout,
                "dropout_rate": 0.1, "kernel_initializer": "lecun_normal", "optimizer": "sgd"}
    histories = []
    for network in (network1, network2):
        model = create_network(num_classes=num_classes, **network)
        histories.append(model.fit(x_train, y_train, batch_size=8, epochs=2, verbose=0,
                                   validation_split=0.1))
        score = model.evaluate(x_test, y_test, batch_size=8, verbose=0)
        assert np.isfinite(score[0])
    for history in histories:
        _finite_losses(history, "val_loss")
    assert isinstance(model.layers[2], AlphaDropout) and model.layers[2].rate == 0.1
    # lecun_normal + selu self-normalizes: a deep activation keeps roughly unit variance.
    deep = keras.Model(model.inputs, model.layers[7].output)
    activations = deep.predict(rng.normal(size=(256, max_words)).astype("float32"), verbose=0)
    assert 0.5 < activations.std() < 1.5


def test_mnist_sklearn_wrapper_grid_search_over_build_fn_arguments(monkeypatch):
    """mnist_sklearn_wrapper: `KerasClassifier(make_model, batch_size=32)` (build_fn given
    positionally), GridSearchCV over build_fn arguments and `epochs` with
    scoring='neg_log_loss' (needs predict_proba) on one-hot targets, then
    `best_estimator_.model` evaluated and zipped with `metrics_names`."""
    from sklearn.model_selection import GridSearchCV

    from kestrel.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from kestrel.models import Sequential
    from kestrel.wrappers.scikit_learn import KerasClassifier
    _fake_mnist(monkeypatch, n_train=30, n_test=10, side=8)
    num_classes = 10
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train.reshape(x_train.shape[0], 8, 8, 1).astype("float32") / 255
    x_test = x_test.reshape(x_test.shape[0], 8, 8, 1).astype("float32") / 255
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)

    def make_model(dense_layer_sizes, filters, kernel_size, pool_size):
        model = Sequential()
        model.add(Conv2D(filters, kernel_size, padding="valid", input_shape=(8, 8, 1)))
        model.add(Activation("relu"))
        model.add(Conv2D(filters, kernel_size))
        model.add(Activation("relu"))
        model.add(MaxPooling2D(pool_size=pool_size))
        model.add(Dropout(0.25))
        model.add(Flatten())
        for layer_size in dense_layer_sizes:
            model.add(Dense(layer_size))
            model.add(Activation("relu"))
        model.add(Dropout(0.5))
        model.add(Dense(num_classes))
        model.add(Activation("softmax"))
        model.compile(loss="categorical_crossentropy", optimizer="adadelta",
                      metrics=["accuracy"])
        return model

    my_classifier = KerasClassifier(make_model, batch_size=8, verbose=0)
    validator = GridSearchCV(my_classifier,
                             param_grid={"dense_layer_sizes": [[4], [4, 4]], "epochs": [1],
                                         "filters": [2], "kernel_size": [3], "pool_size": [2]},
                             scoring="neg_log_loss", n_jobs=1, cv=2)
    validator.fit(x_train, y_train)
    assert validator.best_params_["dense_layer_sizes"] in ([4], [4, 4])
    assert np.all(np.isfinite(validator.cv_results_["mean_test_score"]))
    assert np.all(validator.cv_results_["mean_test_score"] < 0)
    best_model = validator.best_estimator_.model
    metric_names = best_model.metrics_names
    metric_values = best_model.evaluate(x_test, y_test, verbose=0)
    assert metric_names == ["loss", "accuracy"] and len(metric_values) == 2
    proba = validator.predict_proba(x_test)
    assert proba.shape == (10, num_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_neural_doodle_vgg19_on_a_symbolic_batch_and_a_mask_model_from_input_tensor(tmp_path):
    """neural_doodle (weights=None instead of the ImageNet download): masks read with
    load_img/img_to_array and clustered, `vgg19.VGG19(include_top=False,
    input_tensor=K.concatenate([variable, placeholder, zeros]))`, a mask model started from
    `Input(tensor=masks)` with one AveragePooling2D per VGG layer, the layers zipped by
    position, the region style + total variation loss, `K.gradients` w.r.t. the placeholder,
    `K.function`, and L-BFGS steps that lower the loss; `save_img` writes the result."""
    from PIL import Image
    from scipy.cluster.vq import kmeans2
    from scipy.optimize import fmin_l_bfgs_b

    from kestrel.applications import vgg19
    from kestrel.layers import AveragePooling2D, Input
    from kestrel.models import Model
    from kestrel.preprocessing.image import img_to_array, load_img, save_img
    rng = np.random.default_rng(7)
    img_nrows = img_ncols = 32
    num_labels = 2
    paths = {}
    for name in ("style_image", "style_mask", "target_mask"):
        pixels = rng.integers(0, 256, size=(img_nrows, img_ncols, 3), dtype=np.uint8)
        if name != "style_image":
            pixels[:] = 0
            pixels[:, : img_ncols // 2 if name == "style_mask" else img_ncols // 3] = 255
        paths[name] = str(tmp_path / f"{name}.png")
        Image.fromarray(pixels).save(paths[name])

    def preprocess_image(image_path):
        img = img_to_array(load_img(image_path, target_size=(img_nrows, img_ncols)))
        return vgg19.preprocess_input(np.expand_dims(img, axis=0))

    def load_mask_labels():
        target_mask_img = img_to_array(load_img(paths["target_mask"],
                                                target_size=(img_nrows, img_ncols)))
        style_mask_img = img_to_array(load_img(paths["style_mask"],
                                               target_size=(img_nrows, img_ncols)))
        mask_vecs = np.vstack([style_mask_img.reshape((-1, 3)),
                               target_mask_img.reshape((-1, 3))])
        np.random.seed(0)
        _, labels = kmeans2(mask_vecs, num_labels, missing="raise", minit="++")
        style_mask_label = labels[:img_nrows * img_ncols].reshape((img_nrows, img_ncols))
        target_mask_label = labels[img_nrows * img_ncols:].reshape((img_nrows, img_ncols))
        style_mask = np.stack([style_mask_label == r for r in range(num_labels)], axis=-1)
        target_mask = np.stack([target_mask_label == r for r in range(num_labels)], axis=-1)
        return np.expand_dims(style_mask, axis=0), np.expand_dims(target_mask, axis=0)

    shape = (1, img_nrows, img_ncols, 3)
    style_image = K.variable(preprocess_image(paths["style_image"]))
    target_image = K.placeholder(shape=shape)
    content_image = K.zeros(shape=shape)
    images = K.concatenate([style_image, target_image, content_image], axis=0)
    raw_style_mask, raw_target_mask = load_mask_labels()
    assert raw_style_mask.shape == (1, img_nrows, img_ncols, num_labels)
    masks = K.concatenate([K.variable(raw_style_mask.astype("float32")),
                           K.variable(raw_target_mask.astype("float32"))], axis=0)
    STYLE, TARGET = 0, 1

    image_model = vgg19.VGG19(include_top=False, weights=None, input_tensor=images)
    mask_input = Input(tensor=masks, shape=(None, None, None), name="mask_input")
    x = mask_input
    for layer in image_model.layers[1:]:
        name = "mask_%s" % layer.name
        if "conv" in layer.name:
            x = AveragePooling2D((3, 3), padding="same", strides=(1, 1), name=name)(x)
        elif "pool" in layer.name:
            x = AveragePooling2D((2, 2), name=name)(x)
    mask_model = Model(mask_input, x)
    image_features, mask_features = {}, {}
    for img_layer, mask_layer in zip(image_model.layers, mask_model.layers):
        if "conv" in img_layer.name:
            assert "mask_" + img_layer.name == mask_layer.name
            image_features[img_layer.name] = img_layer.output
            mask_features[img_layer.name] = mask_layer.output
    assert len(image_features) == 16
    # The mask model runs on the tensor it was started from: a function of no inputs.
    (pooled_masks,) = K.function([], [mask_features["block2_conv1"]])([])
    assert pooled_masks.shape == (2, 16, 16, num_labels)
    np.testing.assert_allclose(pooled_masks.sum(axis=-1), 1.0, rtol=1e-5)

    def gram_matrix(x):
        assert K.ndim(x) == 3
        features = K.batch_flatten(x)
        return K.dot(features, K.transpose(features))

    def region_style_loss(style_image, target_image, style_mask, target_mask):
        masked_style = K.permute_dimensions(style_image, (2, 0, 1)) * style_mask
        masked_target = K.permute_dimensions(target_image, (2, 0, 1)) * target_mask
        num_channels = K.cast(K.shape(style_image)[-1], dtype="float32")
        s = gram_matrix(masked_style) / K.mean(style_mask) / num_channels
        c = gram_matrix(masked_target) / K.mean(target_mask) / num_channels
        return K.mean(K.square(s - c))

    def style_loss(style_image, target_image, style_masks, target_masks):
        assert 3 == K.ndim(style_image) == K.ndim(target_image)
        loss = K.variable(0)
        for i in range(num_labels):
            loss = loss + region_style_loss(style_image, target_image,
                                            style_masks[:, :, i], target_masks[:, :, i])
        return loss

    def total_variation_loss(x):
        assert 4 == K.ndim(x)
        a = K.square(x[:, :img_nrows - 1, :img_ncols - 1, :] - x[:, 1:, :img_ncols - 1, :])
        b = K.square(x[:, :img_nrows - 1, :img_ncols - 1, :] - x[:, :img_nrows - 1, 1:, :])
        return K.sum(K.pow(a + b, 1.25))

    style_feature_layers = ["block1_conv1", "block2_conv1"]
    loss = K.variable(0)
    for layer in style_feature_layers:
        sl = style_loss(image_features[layer][STYLE, :, :, :],
                        image_features[layer][TARGET, :, :, :],
                        mask_features[layer][STYLE, :, :, :],
                        mask_features[layer][TARGET, :, :, :])
        loss = loss + (1.0 / len(style_feature_layers)) * sl
    loss = loss + 50.0 * total_variation_loss(target_image)
    loss_grads = K.gradients(loss, target_image)
    outputs = [loss] + list(loss_grads) if isinstance(loss_grads, (list, tuple)) \
        else [loss, loss_grads]
    f_outputs = K.function([target_image], outputs)

    def eval_loss_and_grads(x):
        outs = f_outputs([x.reshape(shape)])
        return outs[0], outs[1].flatten().astype("float64")

    x = np.random.uniform(0, 255, shape) - 128.0
    first_loss, first_grads = eval_loss_and_grads(x)
    assert np.isfinite(first_loss) and first_grads.shape == (img_nrows * img_ncols * 3,)
    x, min_val, _ = fmin_l_bfgs_b(lambda v: eval_loss_and_grads(v)[0], x.flatten(),
                                  fprime=lambda v: eval_loss_and_grads(v)[1], maxfun=5)
    assert min_val < first_loss
    img = x.reshape((img_nrows, img_ncols, 3)) + [103.939, 116.779, 123.68]
    img = np.clip(img[:, :, ::-1], 0, 255).astype("uint8")
    save_img(str(tmp_path / "doodle_at_iteration_0.png"), img)
    assert load_img(str(tmp_path / "doodle_at_iteration_0.png")).size == (img_ncols, img_nrows)


def test_tensorboard_embeddings_mnist_projects_the_features_layer(monkeypatch, tmp_path):
    """tensorboard_embeddings_mnist: `np.savetxt` labels as metadata.tsv in the log folder,
    TensorBoard(batch_size=..., embeddings_freq=1, embeddings_layer_names=['features'],
    embeddings_metadata='metadata.tsv', embeddings_data=x_test) (Keras 2 arguments), a
    Sequential whose Dense is named 'features'; each epoch projects its outputs on x_test."""
    from kestrel.callbacks import TensorBoard
    from kestrel.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from kestrel.models import Sequential
    _fake_mnist(monkeypatch, n_train=16, n_test=6, side=8)
    log_dir = str(tmp_path / "logs")
    (tmp_path / "logs").mkdir()
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train.reshape(x_train.shape[0], 8, 8, 1).astype("float32") / 255
    x_test = x_test.reshape(x_test.shape[0], 8, 8, 1).astype("float32") / 255
    with open(tmp_path / "logs" / "metadata.tsv", "w") as f:
        np.savetxt(f, y_test)
    y_train = keras.utils.to_categorical(y_train, 10)
    y_test = keras.utils.to_categorical(y_test, 10)
    tensorboard = TensorBoard(log_dir=log_dir, batch_size=8, embeddings_freq=1,
                              embeddings_layer_names=["features"],
                              embeddings_metadata="metadata.tsv", embeddings_data=x_test)
    model = Sequential()
    model.add(Conv2D(4, kernel_size=(3, 3), activation="relu", input_shape=(8, 8, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(5, activation="relu", name="features"))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss=keras.losses.categorical_crossentropy,
                  optimizer=keras.optimizers.Adadelta(), metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=8, callbacks=[tensorboard], epochs=2, verbose=0,
              validation_data=(x_test, y_test))
    folder = tmp_path / "logs" / "train" / "00001" / "features"
    projected = np.loadtxt(folder / "tensors.tsv", delimiter="\t", ndmin=2)
    features = keras.Model(model.inputs, model.get_layer("features").output)
    np.testing.assert_allclose(projected, features.predict(x_test, verbose=0), rtol=1e-5,
                               atol=1e-6)
    labels = (folder / "metadata.tsv").read_text().splitlines()
    assert [float(v) for v in labels] == list(range(6))


def test_lstm_benchmark_implementation_modes_and_val_acc_history(monkeypatch):
    """lstm_benchmark: LSTM(dropout, recurrent_dropout, implementation=0/1/2) (the modes give
    the same numbers), and the plots read `history['val_acc']`, Keras 2.2's name of the
    'accuracy' metric's validation log."""
    from kestrel.layers import LSTM, Dense, Dropout, Embedding
    from kestrel.models import Sequential
    from kestrel.preprocessing import sequence
    _fake_imdb(monkeypatch, n_train=8, n_test=4)
    max_features, max_length = 50, 6
    (X_train, y_train), (X_test, y_test) = imdb.load_data(num_words=max_features)
    X_train = sequence.pad_sequences(X_train, max_length)
    X_test = sequence.pad_sequences(X_test, max_length)
    results = []
    for mode in [0, 1, 2]:
        kestrel.utils.set_random_seed(0)
        model = Sequential()
        model.add(Embedding(max_features, 6, input_length=max_length))
        model.add(Dropout(0.2))
        model.add(LSTM(6, dropout=0.2, recurrent_dropout=0.2, implementation=mode))
        model.add(Dense(1, activation="sigmoid"))
        model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
        history = model.fit(X_train, y_train, batch_size=8, epochs=2, verbose=0,
                            validation_data=(X_test, y_test))
        results.append(history)
    for history in results:
        assert len(history.history["val_acc"]) == len(history.epoch) == 2
        assert np.all(np.isfinite(history.history["val_loss"]))
    np.testing.assert_allclose(results[0].history["val_loss"], results[2].history["val_loss"],
                               rtol=1e-5)


def test_shared_layer_keras2_node_accessors():
    """Keras 2's `get_output_at` / `get_input_at` / `get_output_shape_at` / `inbound_nodes` of
    a layer shared between two inputs (the siamese pattern), one node per call."""
    from kestrel.layers import Dense, Input
    shared = Dense(4, name="shared")
    left, right = Input((3,)), Input((5, 3))
    out_left, out_right = shared(left), shared(right)
    assert len(shared.inbound_nodes) == 2
    assert shared.get_input_at(0) is left and shared.get_input_at(1) is right
    assert shared.get_output_at(1) is out_right and shared.get_output_at(0) is out_left
    assert shared.get_output_shape_at(1) == (None, 5, 4)
    assert shared.get_input_shape_at(0) == (None, 3)
    with pytest.raises(ValueError, match="node 2, but layer 'shared' has only 2 inbound nodes"):
        shared.get_output_at(2)


def test_mnist_swwae_k_gradients_lambda_in_validation_and_predict():
    """mnist_swwae validates during fit and predicts with a Lambda whose function takes
    `K.gradients` (the pooling switches, Keras 2 graph gradients): inference keeps autograd
    on for that model, and returns plain tensors; a model without one stays gradient-free."""
    import torch

    from kestrel.layers import Activation, Conv2D, Input, Lambda, MaxPooling2D, UpSampling2D
    from kestrel.models import Model

    def getwhere(x):
        y_prepool, y_postpool = x
        return K.gradients(K.sum(y_postpool), y_prepool)

    img_input = Input(shape=(4, 4, 1))
    y_prepool = Activation("relu")(Conv2D(2, 3, padding="same")(img_input))
    y = MaxPooling2D()(y_prepool)
    where = Lambda(getwhere, output_shape=lambda x: x[0])([y_prepool, y])
    y = keras.layers.multiply([UpSampling2D()(y), where])
    model = Model(img_input, Conv2D(1, 3, padding="same")(y))
    model.compile("adam", "mse")
    x = np.random.default_rng(14).random((4, 4, 4, 1)).astype("float32")
    history = model.fit(x, x, epochs=2, batch_size=2, validation_data=(x, x), verbose=0)
    _finite_losses(history, "val_loss")
    switches = Model(img_input, where).predict(x, verbose=0)
    np.testing.assert_array_equal(switches.reshape(4, 2, 2, 2, 2, 2).sum(axis=(2, 4)), 1.0)
    assert np.isfinite(model.evaluate(x, x, verbose=0))
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    assert not out.requires_grad
    plain = Model(img_input, y_prepool)
    with torch.no_grad():
        assert not plain(torch.from_numpy(x)).requires_grad
