"""keras.io nlp, structured_data and timeseries examples not replayed elsewhere
(Generative_Pretrained_Transformer(GPT), eeg_bci_ssvepformer, ...), condensed to tiny random
data and one or two epochs, their TensorFlow parts written with keras.ops and torch autograd as
the Keras 3 version of each example would. The same code runs with real Keras 3 (torch backend)
and with Kestrel: layouts, weight paths, summaries, histories and predictions (after copying
Keras' weights) agree. Training runs with `shuffle=False`: the two libraries draw their shuffle
orders from different random streams.
"""
import math
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


def _numpy(x):
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)


def _assert_close(got, expected, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(_numpy(got), _numpy(expected), rtol=rtol, atol=atol)


def _assert_same_weights(got_model, expected_model, atol=1e-5):
    assert [w.path for w in got_model.weights] == [w.path for w in expected_model.weights]
    for got, expected in zip(got_model.get_weights(), expected_model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=atol)


def _assert_same_history(got, expected, rtol=1e-4, atol=1e-5):
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=atol, err_msg=key)


# ---- Generative_Pretrained_Transformer(GPT)
def _gpt_class(keras, vocab_size=11, block_size=8, n_embd=16, n_head=4, n_layer=1,
               dropout=0.0):
    """The example's FeedForward, Block and BigramLanguageModel; the GradientTape train_step
    written with torch autograd, tf.range / tf.reshape / tf.concat with keras.ops."""
    layers, models, ops = keras.layers, keras.models, keras.ops

    class FeedForward(layers.Layer):
        def __init__(self, n_embd):
            super().__init__()
            self.net = models.Sequential([layers.Dense(4 * n_embd, activation="relu"),
                                          layers.Dense(n_embd), layers.Dropout(dropout)])

        def call(self, x):
            return self.net(x)

    class Block(layers.Layer):
        def __init__(self, n_embd, n_head):
            super().__init__()
            self.sa = layers.MultiHeadAttention(num_heads=n_head, key_dim=n_embd // n_head,
                                                dropout=dropout)
            self.ffwd = FeedForward(n_embd)
            self.ln1 = layers.LayerNormalization()
            self.ln2 = layers.LayerNormalization()

        def call(self, x):
            attn_output = self.sa(self.ln1(x), self.ln1(x), use_causal_mask=True)
            x = x + attn_output
            x = x + self.ffwd(self.ln2(x))
            return x

    class BigramLanguageModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.token_embedding_table = layers.Embedding(vocab_size, n_embd)
            self.position_embedding_table = layers.Embedding(block_size, n_embd)
            self.blocks = [Block(n_embd, n_head) for _ in range(n_layer)]
            self.ln_f = layers.LayerNormalization()
            self.lm_head = layers.Dense(vocab_size)

        def call(self, idx, targets=None):
            B, T = idx.shape
            tok_emb = self.token_embedding_table(idx)
            pos_emb = self.position_embedding_table(ops.arange(T)[None, :])
            x = tok_emb + pos_emb
            for block in self.blocks:
                x = block(x)
            x = self.ln_f(x)
            logits = self.lm_head(x)
            if targets is None:
                return logits, None
            logits_flat = ops.reshape(logits, [-1, logits.shape[-1]])
            targets_flat = ops.reshape(targets, [-1])
            loss = keras.losses.sparse_categorical_crossentropy(targets_flat, logits_flat,
                                                               from_logits=True)
            return logits, ops.mean(loss)

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            logits, loss = self(x, y)
            loss.backward()
            grads = [v.value.grad for v in self.trainable_variables]
            with torch.no_grad():
                self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            return {"loss": loss}

        def test_step(self, data):
            x, y = data
            logits, loss = self(x, y)
            return {"loss": loss}

        def generate(self, idx, max_new_tokens):
            for _ in range(max_new_tokens):
                idx_cond = idx[:, -block_size:]
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :]
                idx_next = keras.random.categorical(logits, num_samples=1, seed=3)
                idx = ops.concatenate([idx, ops.cast(idx_next, idx.dtype)], axis=1)
            return idx

    return BigramLanguageModel


def _gpt_batches(data, batch_size=4, block_size=8):
    """The example's get_batch as an endless generator (its tf.data.from_generator source)."""
    rng = np.random.default_rng(1)
    while True:
        ix = rng.integers(0, len(data) - block_size - 1, batch_size)
        yield (np.stack([data[i:i + block_size] for i in ix]),
               np.stack([data[i + 1:i + block_size + 1] for i in ix]))


def _gpt_replay(lib, data, weights=None):
    model = _gpt_class(_fresh(lib))()
    x, y = next(_gpt_batches(data))
    model(x)
    initial_weights = model.get_weights()
    if weights is not None:
        model.set_weights(weights)
    logits, loss = model(x, y)
    model.compile(optimizer=lib.optimizers.Adam(1e-3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(_gpt_batches(data), epochs=2, steps_per_epoch=2,
                            validation_data=_gpt_batches(data), validation_steps=2,
                            verbose=0).history
    shuffle_warnings = [str(w.message) for w in caught if "shuffle" in str(w.message)]
    generated = model.generate(np.zeros((1, 1), dtype=np.int64), max_new_tokens=5)
    return model, logits, loss, history, shuffle_warnings, generated, initial_weights


def test_generative_pretrained_transformer_gpt():
    """A subclassed language model whose call takes the targets and returns (logits, loss), a
    torch-autograd train_step returning {"loss": ...} (after compile without a loss Keras 3
    logs its untouched loss tracker, 0.0, as Kestrel does), causal self-attention, generator
    inputs with steps_per_epoch / validation_steps, and sampling with keras.random.categorical."""
    data = np.random.default_rng(0).integers(0, 11, 200)
    expected = _gpt_replay(keras, data)
    got = _gpt_replay(kestrel, data, weights=expected[6])
    _assert_close(got[1], expected[1])
    _assert_close(got[2], expected[2])
    assert got[3] == expected[3] == {"loss": [0.0, 0.0], "val_loss": [0.0, 0.0]}
    assert got[4] == expected[4] and len(got[4]) == 1
    _assert_same_weights(got[0], expected[0], atol=1e-4)  # Adam scales near-zero gradients
    assert got[5].dtype == expected[5].dtype and _numpy(got[5]).tolist() == \
        _numpy(expected[5]).tolist()
    assert got[0].count_params() == expected[0].count_params()


# ---- eeg_bci_ssvepformer
def _ssvepformer_builder(keras):
    """The example's layers and create_ssvepformer, as written (channels_first data)."""
    layers = keras.layers

    def normal():
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.01, seed=None)

    class ComplexSpectrum(keras.layers.Layer):
        def __init__(self, nfft=512, fft_start=8, fft_end=64):
            super().__init__()
            self.nfft = nfft
            self.fft_start = fft_start
            self.fft_end = fft_end

        def call(self, x):
            samples = x.shape[-1]
            x = keras.ops.rfft(x, fft_length=self.nfft)
            real = x[0] / samples
            imag = x[1] / samples
            real = real[:, :, self.fft_start:self.fft_end]
            imag = imag[:, :, self.fft_start:self.fft_end]
            return keras.ops.concatenate((real, imag), axis=-1)

    class ChannelComb(keras.layers.Layer):
        def __init__(self, n_channels, drop_rate=0.5):
            super().__init__()
            self.conv = layers.Conv1D(2 * n_channels, 1, padding="same",
                                      kernel_initializer=normal())
            self.normalization = layers.LayerNormalization()
            self.activation = layers.Activation(activation="gelu")
            self.drop = layers.Dropout(drop_rate)

        def call(self, x):
            return self.drop(self.activation(self.normalization(self.conv(x))))

    class ConvAttention(keras.layers.Layer):
        def __init__(self, n_channels, drop_rate=0.5):
            super().__init__()
            self.norm = layers.LayerNormalization()
            self.conv = layers.Conv1D(2 * n_channels, 31, padding="same",
                                      kernel_initializer=normal())
            self.activation = layers.Activation(activation="gelu")
            self.drop = layers.Dropout(drop_rate)

        def call(self, x):
            input = x
            x = self.drop(self.activation(self.conv(self.norm(x))))
            return x + input

    class ChannelMLP(keras.layers.Layer):
        def __init__(self, n_features, drop_rate=0.5):
            super().__init__()
            self.norm = layers.LayerNormalization()
            self.mlp = layers.Dense(2 * n_features, kernel_initializer=normal())
            self.activation = layers.Activation(activation="gelu")
            self.drop = layers.Dropout(drop_rate)
            self.cat = layers.Concatenate(axis=1)

        def call(self, x):
            input = x
            channels = x.shape[1]
            x = self.norm(x)
            output_channels = []
            for i in range(channels):
                c = self.mlp(x[:, :, i])
                c = layers.Reshape([1, -1])(c)
                output_channels.append(c)
            x = self.drop(self.activation(self.cat(output_channels)))
            return x + input

    class Encoder(keras.layers.Layer):
        def __init__(self, n_channels, n_features, drop_rate=0.5):
            super().__init__()
            self.attention1 = ConvAttention(n_channels, drop_rate=drop_rate)
            self.mlp1 = ChannelMLP(n_features, drop_rate=drop_rate)
            self.attention2 = ConvAttention(n_channels, drop_rate=drop_rate)
            self.mlp2 = ChannelMLP(n_features, drop_rate=drop_rate)

        def call(self, x):
            return self.mlp2(self.attention2(self.mlp1(self.attention1(x))))

    class MlpHead(keras.layers.Layer):
        def __init__(self, n_classes, drop_rate=0.5):
            super().__init__()
            self.flatten = layers.Flatten()
            self.drop = layers.Dropout(drop_rate)
            self.linear1 = layers.Dense(6 * n_classes, kernel_initializer=normal())
            self.norm = layers.LayerNormalization()
            self.activation = layers.Activation(activation="gelu")
            self.drop2 = layers.Dropout(drop_rate)
            self.linear2 = layers.Dense(n_classes, kernel_initializer=normal())

        def call(self, x):
            x = self.activation(self.norm(self.linear1(self.drop(self.flatten(x)))))
            return self.linear2(self.drop2(x))

    def create_ssvepformer(input_shape, fs, resolution, fq_band, n_channels, n_classes,
                           drop_rate):
        nfft = round(fs / resolution)
        fft_start = int(fq_band[0] / resolution)
        fft_end = int(fq_band[1] / resolution) + 1
        n_features = fft_end - fft_start
        return keras.Sequential([
            keras.Input(shape=input_shape),
            ComplexSpectrum(nfft, fft_start, fft_end),
            ChannelComb(n_channels=n_channels, drop_rate=drop_rate),
            Encoder(n_channels=n_channels, n_features=n_features, drop_rate=drop_rate),
            Encoder(n_channels=n_channels, n_features=n_features, drop_rate=drop_rate),
            MlpHead(n_classes=n_classes, drop_rate=drop_rate),
            layers.Activation(activation="softmax"),
        ])

    return create_ssvepformer


def _in_channels_first(lib, run):
    """`run()` under `set_image_data_format("channels_first")`, as the example sets it."""
    lib.backend.set_image_data_format("channels_first")
    try:
        return run()
    finally:
        lib.backend.set_image_data_format("channels_last")


def _ssvepformer_replay(lib, x, y, drop_rate, weights=None):
    """Build (Keras' initial weights copied in when given), predict, fit, evaluate."""
    def run():
        model = _ssvepformer_builder(_fresh(lib))((2, 64), 64, 0.5, [8, 16], 2, 3, drop_rate)
        initial_weights = model.get_weights()
        if weights is not None:
            model.set_weights(weights)
        sgd = lib.optimizers.SGD(learning_rate=0.01, momentum=0.9, weight_decay=0.001)
        # jit_compile=False: Keras 3's torch.compile fails on the Reshape made inside call
        model.compile(loss="sparse_categorical_crossentropy", optimizer=sgd,
                      metrics=["accuracy"])
        predictions = model.predict(x, verbose=0)
        history = model.fit(x, y, batch_size=2, epochs=2, validation_data=(x[:2], y[:2]),
                            shuffle=False, verbose=0).history
        return model, initial_weights, predictions, history, model.evaluate(x, y, verbose=0)
    return _in_channels_first(lib, run)


def test_eeg_bci_ssvepformer():
    """channels_first Conv1D, keras.ops.rfft, a Reshape layer made inside call, SGD with
    momentum and weight decay: the same summary and predictions; without dropout (whose
    masks come from different random streams) the same training too."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 2, 64)).astype("float32")
    y = rng.integers(0, 3, 4).astype("float32")
    expected = _ssvepformer_replay(keras, x, y, drop_rate=0.0)
    got = _ssvepformer_replay(kestrel, x, y, drop_rate=0.0, weights=expected[1])
    assert _summary(got[0]) == _summary(expected[0])
    _assert_close(got[2], expected[2])
    _assert_same_history(got[3], expected[3])
    _assert_close(got[4], expected[4])
    _assert_same_weights(got[0], expected[0])


# ---- multivariate_timeseries_forecasting_using_lstm
def _stock_lstm(keras, win_length, num_features):
    """The example's Sequential built with `add`, `input_shape=` and LeakyReLU(alpha=...)."""
    model = keras.Sequential()
    model.add(keras.layers.LSTM(16, input_shape=(win_length, num_features),
                                return_sequences=True))
    model.add(keras.layers.LeakyReLU(alpha=0.5))
    model.add(keras.layers.LSTM(16, return_sequences=True))
    model.add(keras.layers.LeakyReLU(alpha=0.5))
    model.add(keras.layers.Dropout(0.3))
    model.add(keras.layers.LSTM(8, return_sequences=False))
    model.add(keras.layers.Dropout(0.3))
    model.add(keras.layers.Dense(1))
    return model


def _endless(sequence):
    """A PyDataset's batches, repeated: what Keras 3 takes where it cannot read Kestrel's."""
    while True:
        yield from (sequence[i] for i in range(len(sequence)))


def test_multivariate_timeseries_forecasting_using_lstm():
    """Keras 2's TimeseriesGenerator feeding fit/evaluate/predict (Keras 3 gets the same
    batches from a generator), the deprecation warnings for `input_shape` and `alpha`,
    MeanAbsoluteError's history key. Dropout masks come from different random streams, so
    training is compared through its logs' keys and the trained weights' predictions."""
    from kestrel.preprocessing.sequence import TimeseriesGenerator

    features = np.random.default_rng(0).normal(size=(40, 5)).astype("float32")
    target = features[:, 0]
    x_train, x_test, y_train, y_test = features[:30], features[30:], target[:30], target[30:]
    first = TimeseriesGenerator(features, target, length=2, sampling_rate=1, batch_size=1)[0]
    np.testing.assert_array_equal(first[0], features[None, :2])
    np.testing.assert_array_equal(first[1], target[2:3])
    train_generator = TimeseriesGenerator(x_train, y_train, length=4, sampling_rate=1,
                                          batch_size=8)
    test_generator = TimeseriesGenerator(x_test, y_test, length=4, sampling_rate=1,
                                         batch_size=8)
    runs = {}
    for lib in (keras, kestrel):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = _stock_lstm(_fresh(lib), 4, 5)
        model.compile(loss=lib.losses.MeanSquaredError(), optimizer=lib.optimizers.Adam(),
                      metrics=[lib.metrics.MeanAbsoluteError()])
        runs[lib] = model, [str(w.message) for w in caught]
    (expected, expected_warnings), (got, got_warnings) = runs[keras], runs[kestrel]
    assert got_warnings == expected_warnings and len(expected_warnings) == 3
    assert _summary(got) == _summary(expected)
    assert got.layers[1].get_config() == expected.layers[1].get_config()
    got.set_weights(expected.get_weights())
    steps = len(test_generator)
    _assert_close(got.evaluate(test_generator, verbose=0),
                  expected.evaluate(_endless(test_generator), steps=steps, verbose=0))
    history = expected.fit(_endless(train_generator), steps_per_epoch=len(train_generator),
                           epochs=2, validation_data=_endless(test_generator),
                           validation_steps=steps, shuffle=False, verbose=0).history
    assert list(got.fit(train_generator, epochs=2, validation_data=test_generator,
                        shuffle=False, verbose=0).history) == list(history) == \
        ["loss", "mean_absolute_error", "val_loss", "val_mean_absolute_error"]
    got.set_weights(expected.get_weights())
    predictions = got.predict(test_generator, verbose=0)
    assert predictions.shape == (len(x_test) - 4, 1)
    _assert_close(predictions, expected.predict(_endless(test_generator), steps=steps,
                                                verbose=0))


# ---- timeseries_forecasting_with_lstm_for_temperature_prediction
def _temperature_model(keras, inputs):
    model = keras.Sequential([
        keras.layers.Input(shape=(inputs.shape[1], inputs.shape[2])),
        keras.layers.LSTM(20, return_sequences=False),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    return model


def test_timeseries_forecasting_with_lstm_for_temperature_prediction():
    """timeseries_dataset_from_array (float64 features as pandas gives them, a validation
    batch of `len - 10` windows) iterated with `for batch in ...: break`, `.numpy()` and
    `next(iter(...))`, then fit/predict. Keras 3 builds these datasets with TensorFlow, so its
    windows are written out with NumPy (window i = rows i..i+9, target i) and its model gets
    the same batches from a list."""
    rng = np.random.default_rng(0)
    temperature = rng.normal(70, 10, 80)
    table = np.stack([temperature, rng.integers(1, 13, 80), rng.integers(1, 29, 80)], 1)
    target = np.roll(temperature, -10)[:70]
    X_train, y_train = table[:40], target[:40]
    X_validation, y_validation = table[40:70], target[40:70]
    dataset_train = kestrel.preprocessing.timeseries_dataset_from_array(
        X_train, y_train, sequence_length=10, sequence_stride=1)
    dataset_validation = kestrel.preprocessing.timeseries_dataset_from_array(
        X_validation, y_validation, sequence_length=10,
        batch_size=X_validation.shape[0] - 10, sequence_stride=1)
    for batch in dataset_train:
        inputs, targets = batch
        break
    train_windows = np.stack([X_train[i:i + 10] for i in range(31)])
    np.testing.assert_array_equal(inputs.numpy(), train_windows)
    np.testing.assert_array_equal(targets.numpy(), y_train[:31])
    assert [tuple(b[0].shape) for b in dataset_validation] == [(20, 10, 3), (1, 10, 3)]
    validation_windows = np.stack([X_validation[i:i + 10] for i in range(21)])

    expected = _temperature_model(_fresh(keras), inputs)
    got = _temperature_model(_fresh(kestrel), inputs)
    got.set_weights(expected.get_weights())
    assert _summary(got) == _summary(expected)
    history = got.fit(dataset_train, epochs=2, validation_data=dataset_validation,
                      verbose=0).history
    expected_history = expected.fit(
        train_windows, y_train[:31], epochs=2, shuffle=False,
        validation_data=(validation_windows, y_validation[:21]), verbose=0).history
    _assert_same_history(history, expected_history)
    input_validation, target_validation = next(iter(dataset_validation))
    _assert_close(got.predict(input_validation, verbose=0),
                  expected.predict(np.asarray(input_validation), verbose=0))
    np.testing.assert_array_equal(target_validation.numpy(), y_validation[:len(target_validation)])


# ---- class_with_grn_and_vsn_with_hyperparameters_tuning
class _DefaultHyperParameters:
    """Stands in for KerasTuner's `hp`: each choice takes its default."""

    def Boolean(self, name, default=False):
        return default


_GRN_VOCABULARY = {"race": [" Black", " Other", " White"], "sex": [" Female", " Male"]}


def _grn_tuning_model(keras, num_units=8):
    """The example's GatedLinearUnit / GatedResidualNetwork (`build(self)` with no shape,
    `call(self, inputs, hp)`) and its VariableSelection block's body, on int64 / float32
    dict inputs; autokeras' Graph / ClassificationHead reduced to a Dense head and compile."""
    layers = keras.layers

    class GatedLinearUnit(layers.Layer):
        def __init__(self, num_units, activation, **kwargs):
            super().__init__(**kwargs)
            self.linear = layers.Dense(num_units)
            self.sigmoid = layers.Dense(num_units, activation=activation)

        def call(self, inputs):
            return self.linear(inputs) * self.sigmoid(inputs)

        def build(self):
            self.built = True

    class GatedResidualNetwork(layers.Layer):
        def __init__(self, num_units, dropout_rate, activation, use_layernorm=None, **kwargs):
            super().__init__(**kwargs)
            self.num_units = num_units
            self.use_layernorm = use_layernorm
            self.elu_dense = layers.Dense(num_units, activation=activation)
            self.linear_dense = layers.Dense(num_units)
            self.dropout = layers.Dropout(dropout_rate)
            self.gated_linear_unit = GatedLinearUnit(num_units, activation)
            self.layer_norm = layers.LayerNormalization()
            self.project = layers.Dense(num_units)

        def call(self, inputs, hp):
            x = self.dropout(self.linear_dense(self.elu_dense(inputs)))
            if inputs.shape[-1] != self.num_units:
                inputs = self.project(inputs)
            x = inputs + self.gated_linear_unit(x)
            use_layernorm = self.use_layernorm
            if use_layernorm is None:
                use_layernorm = hp.Boolean("use_layernorm", default=True)
            if use_layernorm:
                x = self.layer_norm(x)
            return x

        def build(self):
            self.built = True

    hp, dropout_rate, activation = _DefaultHyperParameters(), 0.0, "sigmoid"
    inputs = {name: keras.Input(name=name, shape=(), dtype="float32")
              for name in ("age", "wage_per_hour")}
    inputs.update({name: keras.Input(name=name, shape=(), dtype="int64")
                   for name in _GRN_VOCABULARY})
    concat_inputs = []
    for input_ in inputs:
        if input_ in _GRN_VOCABULARY:
            max_index = len(_GRN_VOCABULARY[input_]) - 1
            concat_inputs.append(layers.Embedding(
                input_dim=len(_GRN_VOCABULARY[input_]), output_dim=num_units)(
                    keras.ops.clip(inputs[input_], 0, max_index)))
        else:
            proj_feature = keras.ops.expand_dims(inputs[input_], -1)
            concat_inputs.append(layers.Dense(units=num_units)(proj_feature))
    v = layers.concatenate(concat_inputs)
    v = GatedResidualNetwork(num_units=num_units, dropout_rate=dropout_rate,
                             activation=activation)(v, hp=hp)
    v = keras.ops.expand_dims(layers.Dense(units=len(inputs), activation=activation)(v), axis=-1)
    x = [GatedResidualNetwork(num_units=num_units, dropout_rate=dropout_rate,
                              activation=activation)(input, hp=hp) for input in concat_inputs]
    x = keras.ops.stack(x, axis=1)
    features = keras.ops.squeeze(keras.ops.matmul(keras.ops.transpose(v, axes=[0, 2, 1]), x),
                                 axis=1)
    model = keras.models.Model(list(inputs.values()),
                               [layers.Dense(1, activation="sigmoid")(features)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), metrics=["accuracy"],
                  loss="binary_crossentropy")
    return model


def _census_process(features):
    """The example's `process`: categorical strings to indices with StringLookup (Keras 3
    needs TensorFlow for it; Kestrel runs it on NumPy strings)."""
    for feature_name in features:
        if feature_name in _GRN_VOCABULARY:
            index = kestrel.layers.StringLookup(
                vocabulary=_GRN_VOCABULARY[feature_name], mask_token=None, num_oov_indices=1,
                output_mode="int")
            features[feature_name] = index(features[feature_name])
    return dict(features)


def test_class_with_grn_and_vsn_with_hyperparameters_tuning():
    """Sub-layers built on first call under a no-argument `build(self)`, a non-tensor `hp`
    keyword through the functional API, ops on int64 inputs, sample weights; StringLookup
    indices as Keras' lookup defines them (vocabulary position + 1, out of vocabulary 0)."""
    rng = np.random.default_rng(0)
    raw = {"age": rng.normal(size=16).astype("float32"),
           "wage_per_hour": rng.normal(size=16).astype("float32"),
           "race": rng.choice(_GRN_VOCABULARY["race"] + [" Asian"], 16),
           "sex": rng.choice(_GRN_VOCABULARY["sex"], 16)}
    features = _census_process(dict(raw))
    for name, vocabulary in _GRN_VOCABULARY.items():
        lookup = [vocabulary.index(v) + 1 if v in vocabulary else 0 for v in raw[name]]
        assert _numpy(features[name]).tolist() == lookup
    features = {name: _numpy(value) for name, value in features.items()}
    y, weight = rng.integers(0, 2, 16), rng.random(16).astype("float32")
    models = {}
    for lib in (keras, kestrel):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            models[lib] = _grn_tuning_model(_fresh(lib)), [str(w.message) for w in caught]
    (expected, expected_warnings), (got, got_warnings) = models[keras], models[kestrel]
    assert got_warnings == expected_warnings
    assert _summary(got, 120) == _summary(expected, 120)
    got.set_weights(expected.get_weights())
    _assert_close(got.predict(features, verbose=0), expected.predict(features, verbose=0))
    histories = [model.fit(features, y, sample_weight=weight, batch_size=8, epochs=2,
                           shuffle=False, verbose=0).history for model in (expected, got)]
    _assert_same_history(histories[1], histories[0])
    _assert_same_weights(got, expected)


# ---- event_classification_for_payment_card_fraud_detection
_FRAUD_FEATURES = ["sum_transactions_7_days", "count_transactions_7_days", "calendar_hour",
                   "rate_fraud_transactions_7_days"]


def _fraud_replay(lib, features, labels, weights=None):
    """The example's model on a list of named (1,) Inputs, fed dicts of (batch,) columns (its
    tf.data batches), with Accuracy and AUC metrics."""
    def batches():
        while True:
            for start in range(0, len(labels), 32):
                yield ({name: column[start:start + 32] for name, column in features.items()},
                       labels[start:start + 32])

    keras = _fresh(lib)
    inputs = [keras.Input(shape=(1,), name=name) for name in _FRAUD_FEATURES]
    x = keras.layers.concatenate(inputs)
    x = keras.layers.Dense(32, activation="sigmoid")(x)
    x = keras.layers.Dense(16, activation="sigmoid")(x)
    x = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs=inputs, outputs=x)
    initial_weights = model.get_weights()
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.BinaryCrossentropy(),
                  metrics=[keras.metrics.Accuracy(), keras.metrics.AUC()])
    history = model.fit(batches(), steps_per_epoch=2, epochs=2, validation_data=batches(),
                        validation_steps=2, verbose=0).history
    results = model.evaluate(batches(), steps=2, verbose=0, return_dict=True)
    predictions = np.nan_to_num(model.predict(batches(), steps=2, verbose=0), nan=0)
    return initial_weights, history, results, predictions


def test_event_classification_for_payment_card_fraud_detection():
    """Dict batches of rank-1 columns matched by name to rank-2 Inputs; `Accuracy()` on
    sigmoid outputs (always 0.0 here, as in Keras) beside AUC."""
    rng = np.random.default_rng(0)
    features = {name: rng.normal(size=64).astype("float32") for name in _FRAUD_FEATURES}
    labels = (rng.random(64) < 0.3).astype("int32")
    expected = _fraud_replay(keras, features, labels)
    got = _fraud_replay(kestrel, features, labels, weights=expected[0])
    _assert_same_history(got[1], expected[1])
    assert list(got[2]) == list(expected[2]) == ["accuracy", "auc", "loss"]
    _assert_close(list(got[2].values()), list(expected[2].values()))
    _assert_close(got[3], expected[3])


# ---- sentiment_span_extraction
def _span_extraction_model(keras, max_len=12):
    """The example's RoBERTa_SpanExtraction head (a layer taking a dict and returning a dict)
    over a tiny stand-in for the Hugging Face encoder, in its build_model."""
    class TinyEncoder(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.embedding = keras.layers.Embedding(50, 8)
            self.dense = keras.layers.Dense(8, activation="tanh")

        def call(self, input_ids, attention_mask=None, token_type_ids=None):
            mask = keras.ops.expand_dims(keras.ops.cast(attention_mask, "float32"), -1)
            return (self.dense(self.embedding(input_ids)) * mask,)

    class RoBERTa_SpanExtraction(keras.layers.Layer):
        def __init__(self, model_checkpoint):
            super(RoBERTa_SpanExtraction, self).__init__()
            self.roberta = TinyEncoder()
            self.conv_1 = keras.layers.Conv1D(1, 1)
            self.conv_2 = keras.layers.Conv1D(1, 1)
            self.dropout_1 = keras.layers.Dropout(0.1)
            self.dropout_2 = keras.layers.Dropout(0.1)
            self.flatten = keras.layers.Flatten()
            self.softmax = keras.layers.Activation("softmax")

        def call(self, input_sample):
            hidden_states = self.roberta(
                input_sample["input_ids"], attention_mask=input_sample["attention_mask"],
                token_type_ids=input_sample["token_type_ids"])[0]
            start_tokens = self.dropout_1(hidden_states)
            start_tokens = self.softmax(self.flatten(self.conv_1(start_tokens)))
            end_tokens = self.dropout_2(hidden_states)
            end_tokens = self.softmax(self.flatten(self.conv_2(end_tokens)))
            return {"start_tokens": start_tokens, "end_tokens": end_tokens}

    inputs = {name: keras.layers.Input((max_len,), dtype="int32")
              for name in ("input_ids", "attention_mask", "token_type_ids")}
    model = keras.Model(inputs, RoBERTa_SpanExtraction("roberta-base")(inputs))
    model.compile(loss="categorical_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=3e-3))
    return model


def test_sentiment_span_extraction():
    """A model whose outputs are the dict a layer returns: the dict keys (not the output
    layer's name) name the targets, the per-output losses and their logs, as Keras 3 does
    (Kestrel looked the target keys up among the output layer names and failed)."""
    rng = np.random.default_rng(0)
    x = {"input_ids": rng.integers(0, 50, (16, 12)).astype("int32"),
         "attention_mask": (rng.random((16, 12)) < 0.8).astype("int32"),
         "token_type_ids": np.zeros((16, 12), "int32")}
    y = {name: np.eye(12, dtype="int32")[rng.integers(0, 12, 16)]
         for name in ("start_tokens", "end_tokens")}
    expected = _span_extraction_model(_fresh(keras))
    got = _span_extraction_model(_fresh(kestrel))
    got.set_weights(expected.get_weights())
    assert _summary(got, 120) == _summary(expected, 120)
    predictions = [model.predict(x, verbose=0) for model in (expected, got)]
    assert sorted(predictions[1]) == sorted(predictions[0]) == ["end_tokens", "start_tokens"]
    for name in predictions[0]:
        _assert_close(predictions[1][name], predictions[0][name])
    _assert_close(got.evaluate(x, y, verbose=0), expected.evaluate(x, y, verbose=0))
    histories = [model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=8, shuffle=False,
                           verbose=0).history for model in (expected, got)]
    assert list(histories[1]) == list(histories[0]) == [
        "end_tokens_loss", "loss", "start_tokens_loss", "val_end_tokens_loss", "val_loss",
        "val_start_tokens_loss"]
    got.set_weights(expected.get_weights())  # dropout masks differ: compare the trained state
    _assert_close(got.evaluate(x, y, verbose=0, return_dict=True)["start_tokens_loss"],
                  expected.evaluate(x, y, verbose=0, return_dict=True)["start_tokens_loss"])


def test_dict_outputs_named_by_their_keys():
    """Outputs given as a dict whose keys differ from the output layers' names: targets,
    losses, loss weights and metrics go by the keys (sorted, or in an OrderedDict's order;
    a list of targets follows that order), and a one-entry dict works as a single output."""
    from collections import OrderedDict

    x = np.ones((4, 4), "float32")
    targets = {"start": np.zeros((4, 3), "float32"), "end": np.ones((4, 3), "float32")}
    cases = [
        ("dict", dict(loss="mse", metrics={"start": ["mae"], "end": ["mse"]}), targets),
        ("dict", dict(loss={"end": "mae", "start": "mse"},
                      loss_weights={"end": 2.0, "start": 1.0}), targets),
        ("dict", dict(loss="mse"), [targets["end"], targets["start"]]),
        ("ordered", dict(loss="mse"), [targets["start"], targets["end"]]),
        ("single", dict(loss="mse"), {"start": targets["start"]}),
    ]
    for kind, compile_args, y in cases:
        histories = []
        for lib in (keras, kestrel):
            inputs = _fresh(lib).Input((4,))
            start = lib.layers.Dense(3, name="s")(inputs)
            end = lib.layers.Dense(3, name="e")(inputs)
            outputs = {"dict": {"start": start, "end": end},
                       "ordered": OrderedDict([("start", start), ("end", end)]),
                       "single": {"start": start}}[kind]
            model = lib.Model(inputs, outputs)
            model.compile(optimizer="sgd", **compile_args)
            histories.append(model.fit(x, y, epochs=1, verbose=0).history)
        _assert_same_history(histories[1], histories[0])


def _two_head_subclass(lib):
    class TwoHeads(lib.Model):
        def __init__(self):
            super().__init__()
            self.start = lib.layers.Dense(3)
            self.end = lib.layers.Dense(3)

        def call(self, x):
            return {"start": self.start(x), "end": self.end(x)}

    return TwoHeads()


def test_subclassed_model_returning_a_dict():
    """A subclassed model returning a dict: compile's dict losses / metrics name its outputs
    (Kestrel refused the keys at compile), and with a plain loss (or dicts naming only some
    outputs) the first batch's keys do,
    for fit and for an evaluate without fit, as Keras 3 builds its compiled loss there."""
    x = np.ones((4, 4), "float32")
    y = {"start": np.zeros((4, 3), "float32"), "end": np.ones((4, 3), "float32")}
    compile_args = [dict(loss="mse", metrics={"start": ["mae"], "end": ["mae"]}),
                    dict(loss={"start": "mse", "end": "mae"}), dict(loss="mse"),
                    dict(loss="mse", metrics={"start": ["mae"]})]
    for args in compile_args:
        results = []
        for lib in (keras, kestrel):
            model = _two_head_subclass(_fresh(lib))
            model.compile(optimizer="sgd", **args)
            results.append(model.fit(x, y, epochs=2, verbose=0).history)
        _assert_same_history(results[1], results[0])
    results = []
    for lib in (keras, kestrel):
        model = _two_head_subclass(_fresh(lib))
        model.compile(optimizer="sgd", loss="mse")
        results.append(model.evaluate(x, y, verbose=0, return_dict=True))
    assert list(results[1]) == list(results[0])
    _assert_close(list(results[1].values()), list(results[0].values()))


# ---- sentence_embeddings_with_siamese_bert
def _siamese_builders(keras):
    """The example's mean_pooling layer, encoders (an Embedding stands in for the RoBERTa
    preprocessor + backbone, int token ids for strings) and its two siamese models: subclasses
    of keras.Model that build a graph and hand it to `super().__init__(inputs, outputs)`,
    one returning a (2, batch) stack for its custom Triplet_loss; tf ops as keras.ops."""
    ops = keras.ops

    class mean_pooling(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

        def call(self, last_state, padding_mask):
            mask = ops.expand_dims(ops.cast(padding_mask, "float32"), axis=-1)
            count = ops.sum(mask, axis=1)
            sum = ops.sum(last_state * mask, axis=1)
            return sum / count

    def encoder(normalize):
        inputs = keras.Input(shape=(6,), dtype="int32", name="sentence")
        h = keras.layers.Embedding(20, 4)(inputs)
        embedding = mean_pooling(name="pooling_layer")(h, ops.not_equal(inputs, 0))
        if normalize:
            embedding = ops.normalize(embedding, axis=1)
        return keras.Model(inputs=inputs, outputs=embedding)

    class regression_siamese(keras.Model):
        def __init__(self, encoder, **kwargs):
            inputs = keras.Input(shape=(2, 6), dtype="int32", name="sentences")
            sen1, sen2 = ops.split(inputs, 2, axis=1)
            u = encoder(ops.squeeze(sen1, 1))
            v = encoder(ops.squeeze(sen2, 1))
            cosine_similarity = ops.matmul(u, ops.transpose(v))
            super().__init__(inputs=inputs, outputs=cosine_similarity, **kwargs)
            self.encoder = encoder

        def get_encoder(self):
            return self.encoder

    class triplet_siamese(keras.Model):
        def __init__(self, encoder, **kwargs):
            anchor = keras.Input(shape=(6,), dtype="int32")
            positive = keras.Input(shape=(6,), dtype="int32")
            negative = keras.Input(shape=(6,), dtype="int32")
            ea, ep, en = encoder(anchor), encoder(positive), encoder(negative)
            positive_dist = ops.sqrt(ops.sum(ops.power(ea - ep, 2), axis=1))
            negative_dist = ops.sqrt(ops.sum(ops.power(ea - en, 2), axis=1))
            output = ops.stack([positive_dist, negative_dist], axis=0)
            super().__init__(inputs=[anchor, positive, negative], outputs=output, **kwargs)
            self.encoder = encoder

        def get_encoder(self):
            return self.encoder

    class Triplet_loss(keras.losses.Loss):
        def __init__(self, margin=1, **kwargs):
            super().__init__(**kwargs)
            self.margin = margin

        def call(self, y_true, y_pred):
            positive_dist, negative_dist = ops.unstack(y_pred, axis=0)
            losses = ops.relu(positive_dist - negative_dist + self.margin)
            return ops.mean(losses, axis=0)

    return encoder, regression_siamese, triplet_siamese, Triplet_loss


def _siamese_replay(lib, data, weights=None):
    encoder, regression_siamese, triplet_siamese, Triplet_loss = _siamese_builders(_fresh(lib))
    anchor, positive, negative, similarity = data
    pairs = np.stack([anchor, positive], 1)
    regression = regression_siamese(encoder(True))
    triplet_encoder = encoder(False)
    triplet = triplet_siamese(triplet_encoder)
    initial_weights = [regression.get_weights(), triplet.get_weights()]
    if weights is not None:
        regression.set_weights(weights[0])
        triplet.set_weights(weights[1])
    regression.compile(loss=lib.losses.MeanSquaredError(), optimizer=lib.optimizers.Adam(2e-2),
                       metrics=[lib.metrics.MeanSquaredError()])
    triplet.compile(loss=Triplet_loss(), optimizer=lib.optimizers.Adam(2e-2))
    histories = [
        regression.fit(pairs, similarity, batch_size=6, epochs=2, shuffle=False,
                       validation_data=(pairs, similarity), verbose=0).history,
        triplet.fit((anchor, positive, negative), np.zeros(12), batch_size=6, epochs=2,
                    shuffle=False, verbose=0).history]
    assert triplet.get_encoder() is triplet_encoder
    return (regression, triplet), initial_weights, histories


def test_sentence_embeddings_with_siamese_bert():
    """Functional models made inside a keras.Model subclass's __init__, a shared encoder
    called on split / several inputs, ops.normalize, and a custom loss on a (2, batch)
    prediction with (batch,) labels. (The example's `Input(shape=(1))` is an int: Keras 3
    refuses it, Kestrel takes it as tf.keras 2 did; the replay writes `(6,)`.)"""
    rng = np.random.default_rng(0)
    data = [rng.integers(0, 20, (12, 6)).astype("int32") for _ in range(3)] + \
        [rng.uniform(-1, 1, (12, 1)).astype("float32")]
    expected = _siamese_replay(keras, data)
    got = _siamese_replay(kestrel, data, weights=expected[1])
    for got_model, expected_model in zip(got[0], expected[0]):
        assert type(got_model).__name__ == type(expected_model).__name__
        assert [l.name for l in got_model.layers] == [l.name for l in expected_model.layers]
        assert _summary(got_model) == _summary(expected_model)
        _assert_same_weights(got_model, expected_model)
    for got_history, expected_history in zip(got[2], expected[2]):
        _assert_same_history(got_history, expected_history)


# ---- dimension_adaptive_neural_architecture
def _dana_classes(keras):
    """The example's DimensionAdaptivePooling layers and Classifier, tf ops as keras.ops (the
    shapes are concrete when call runs; the graph goes by compute_output_shape)."""
    layers, ops = keras.layers, keras.ops

    class DimensionAdaptivePooling(layers.Layer):
        def __init__(self, pooling_parameters, forRNN=False, operation="max", name=None,
                     **kwargs):
            super(DimensionAdaptivePooling, self).__init__(name=name, **kwargs)
            self.pool_list = np.array(pooling_parameters)
            self.forRNN = forRNN
            self.W = self.pool_list[0]
            self.H = self.pool_list[1]
            self.num_outputs_per_feature_map = self.W * self.H
            if operation == "max":
                self.operation = ops.max
            elif operation == "avg":
                self.operation = ops.mean

        def build(self, input_shape):
            self.M = input_shape[3]

        def compute_output_shape(self, input_shape):
            if self.forRNN:
                return (input_shape[0], self.W, self.H * self.M)
            return (input_shape[0], self.W * self.H * self.M)

    class DimensionAdaptivePoolingForSensors(DimensionAdaptivePooling):
        def call(self, xp, mask=None):
            xp_dtype = xp.dtype
            input_shape = ops.shape(xp)
            wp, hp = input_shape[1], input_shape[2]
            xpp = ops.copy(xp)
            A = ops.cast(ops.maximum(ops.ceil((self.H - hp) / 3), 0), dtype=xp_dtype)
            for ia in range(int(A)):
                xpp = ops.concatenate([xpp, xp], 2)
            xpp = xpp[:, :wp, :max(hp, int(self.H)), :]
            p_w = ops.cast(wp / self.W, dtype=xp_dtype)
            p_h = ops.cast(hp / self.H, dtype=xp_dtype)
            Zp = []
            for iw in range(self.W):
                for ih in range(self.H):
                    r1 = int(ops.round(iw * p_w))
                    r2 = int(ops.round((iw + 1) * p_w))
                    if A == 0:
                        c1 = int(ops.round(ih * p_h))
                        c2 = int(ops.round((ih + 1) * p_h))
                    else:
                        c1 = int(ops.round(ih * ops.floor((A + 1) * p_h)))
                        c2 = int(ops.round((ih + 1) * ops.floor((A + 1) * p_h)))
                    Zp.append(self.operation(xpp[:, r1:r2, c1:c2, :], axis=(1, 2)))
            Zp = ops.concatenate(Zp, axis=-1)
            if self.forRNN:
                return ops.reshape(Zp, (input_shape[0], self.W, self.H * self.M))
            return ops.reshape(Zp, (input_shape[0], self.W * self.H * self.M))

    def Classifier(inp_shape, out_shape, pool_list=(4, 6)):
        inp = layers.Input(inp_shape)
        x = inp
        for _ in range(2):
            x = layers.Conv2D(8, kernel_size=(5, 1), strides=(1, 1), padding="same",
                              activation="relu")(x)
        x = DimensionAdaptivePoolingForSensors(pool_list, operation="max", name="DAP",
                                               forRNN=True)(x)
        act = layers.LSTM(8, return_sequences=True, activation="tanh", name="lstm_1")(x)
        act = layers.Dropout(0.5, name="dot_1")(act)
        act = layers.LSTM(8, activation="tanh", name="lstm_2")(act)
        act = layers.Dropout(0.5, name="dot_2")(act)
        out_act = layers.Dense(out_shape, activation="softmax", name="act_smx")(act)
        return keras.models.Model(inputs=inp, outputs=out_act)

    return Classifier


def _dimension_adaptive_training(keras, model, X_train, Y_train, X_val, Y_val, class_weights,
                                 batch_size, num_epochs, save_dir, W_combinations,
                                 H_combinations, n_batch_per_train_setp, rng):
    """The example's training loop: gradients of several re-sampled batches accumulated (the
    GradientTape written with torch autograd), per-combination validation accuracy, the best
    weights saved and restored. Returns the epoch losses and the accuracy records."""
    ops = keras.ops
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam()
    best_val_accuracy, log = 0.0, []
    for epoch in range(num_epochs):
        batches = iter([(X_train[i:i + batch_size], Y_train[i:i + batch_size])
                        for i in range(0, len(X_train), batch_size)])
        epoch_loss_avg = keras.metrics.Mean()
        for i in range(len(X_train) // (batch_size * n_batch_per_train_setp)):
            rnd_order_H = rng.permutation(len(H_combinations))
            rnd_order_W = rng.permutation(len(W_combinations))
            n_samples, accum_loss = 0.0, 0.0
            for j in range(n_batch_per_train_setp):
                X, Y = next(batches)
                sample_weight = np.array([class_weights[y] for y in Y], "float32")
                rnd_H = H_combinations[rnd_order_H[j % len(rnd_order_H)]]
                X = X[:, :, rnd_H, :]
                rnd_W = W_combinations[rnd_order_W[j % len(rnd_order_W)]]
                X = ops.image.resize(X, (rnd_W, len(rnd_H)))
                logits = model(X, training=True)
                accum_loss = accum_loss + loss_fn(Y, logits, sample_weight)
                n_samples = n_samples + 1.0
            model.zero_grad()
            accum_loss.backward()
            gradients = [v.value.grad * (1.0 / n_samples) for v in model.trainable_weights]
            with torch.no_grad():
                optimizer.apply_gradients(zip(gradients, model.trainable_weights))
            epoch_loss_avg.update_state(accum_loss.detach() * (1.0 / n_samples))
        accuracy_record = np.zeros((len(W_combinations), len(H_combinations)))
        for w, W_comb in enumerate(W_combinations):
            for h, H_comb in enumerate(H_combinations):
                val_accuracy = keras.metrics.Accuracy()
                X = ops.image.resize(X_val.copy()[:, :, H_comb, :], (W_comb, len(H_comb)))
                prediction = ops.argmax(model(X, training=False), axis=1)
                val_accuracy(prediction, Y_val)
                accuracy_record[w, h] = val_accuracy.result()
        if np.mean(accuracy_record) > np.mean(best_val_accuracy):
            best_val_accuracy = accuracy_record
            model.save_weights(save_dir)
        log.append((float(epoch_loss_avg.result()), accuracy_record))
    model.load_weights(save_dir)
    return log


def _dana_replay(lib, data, save_dir, weights=None):
    X_train, Y_train, X_val, Y_val = data
    model = _dana_classes(_fresh(lib))((None, None, 1), 3)
    initial_weights = model.get_weights()
    if weights is not None:
        model.set_weights(weights)
    log = _dimension_adaptive_training(
        lib, model, X_train, Y_train, X_val, Y_val, {0: 1.0, 1: 0.5, 2: 2.0}, batch_size=4,
        num_epochs=2, save_dir=save_dir, W_combinations=[8, 16],
        H_combinations=[[0, 1, 2], [0, 1, 2, 3, 4, 5]], n_batch_per_train_setp=2,
        rng=np.random.default_rng(1))
    return model, initial_weights, log


def test_dimension_adaptive_neural_architecture(tmp_path):
    """A pooling layer over inputs of unknown height and width (the graph takes its
    compute_output_shape, call sees concrete shapes), Conv2D on (None, None, None, 1),
    ops.image.resize, gradients accumulated over batches in a custom loop with sample
    weights, Accuracy() called as a function, save_weights / load_weights of the best."""
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(8, 16, 6, 1)).astype("float32"), rng.integers(0, 3, 8),
            rng.normal(size=(6, 16, 6, 1)).astype("float32"), rng.integers(0, 3, 6))
    expected = _dana_replay(keras, data, str(tmp_path / "keras.weights.h5"))
    got = _dana_replay(kestrel, data, str(tmp_path / "kestrel.weights.h5"), weights=expected[1])
    assert _summary(got[0]) == _summary(expected[0])
    for (got_loss, got_record), (loss, record) in zip(got[2], expected[2]):
        np.testing.assert_allclose(got_loss, loss, rtol=1e-4)
        np.testing.assert_array_equal(got_record, record)
    _assert_same_weights(got[0], expected[0])


# ---- advanced_techniques_for_structured_data
_COVER_VOCABULARY = {"Soil_Type": ["soil_type_1", "soil_type_2", "soil_type_3", "soil_type_4"],
                     "Wilderness_Area": ["area_type_1", "area_type_2"]}
_COVER_NUMERIC = ["Aspect", "Elevation", "Slope"]


def _cover_type_models(keras, string_inputs, rank_two_indices=True):
    """The example's baseline and deep & cross models with its encode_inputs (StringLookup
    with num_oov_indices=0, CategoryEncoding "binary" or Embedding, expand_dims on numeric
    inputs). `string_inputs=False` (real Keras, whose lookups need TensorFlow) feeds the
    lookup's indices instead of the strings. `rank_two_indices=False` is the example as
    written for tf.keras 2.3."""
    layers = keras.layers

    def create_model_inputs():
        inputs = {name: layers.Input(name=name, shape=(), dtype="float32")
                  for name in _COVER_NUMERIC}
        inputs.update({name: layers.Input(name=name, shape=(),
                                          dtype="string" if string_inputs else "int64")
                       for name in _COVER_VOCABULARY})
        return inputs

    def encode_inputs(inputs, use_embedding=False):
        encoded_features = []
        for feature_name in inputs:
            if feature_name in _COVER_VOCABULARY:
                vocabulary = _COVER_VOCABULARY[feature_name]
                value_index = inputs[feature_name]
                if string_inputs:
                    index = layers.StringLookup(vocabulary=vocabulary, mask_token=None,
                                                num_oov_indices=0)
                    value_index = index(value_index)
                if use_embedding:
                    embedding_dims = int(math.sqrt(len(vocabulary)))
                    encoded_feature = layers.Embedding(input_dim=len(vocabulary),
                                                       output_dim=embedding_dims)(value_index)
                else:
                    if rank_two_indices:  # Keras 3 encodes a (batch,) input as one sample
                        value_index = keras.ops.expand_dims(value_index, -1)
                    encoded_feature = layers.CategoryEncoding(
                        num_tokens=len(vocabulary), output_mode="binary")(value_index)
            else:
                encoded_feature = keras.ops.expand_dims(inputs[feature_name], -1)
            encoded_features.append(encoded_feature)
        return layers.concatenate(encoded_features)

    def create_baseline_model():
        inputs = create_model_inputs()
        features = encode_inputs(inputs)
        for units in [8, 8]:
            features = layers.Dense(units)(features)
            features = layers.BatchNormalization()(features)
            features = layers.ReLU()(features)
            features = layers.Dropout(0.1)(features)
        outputs = layers.Dense(units=7, activation="softmax")(features)
        return keras.Model(inputs=inputs, outputs=outputs)

    def create_deep_and_cross_model():
        inputs = create_model_inputs()
        x0 = encode_inputs(inputs, use_embedding=True)
        cross = x0
        for _ in [8, 8]:
            units = cross.shape[-1]
            x = layers.Dense(units)(cross)
            cross = x0 * x + cross
        cross = layers.BatchNormalization()(cross)
        deep = x0
        for units in [8, 8]:
            deep = layers.Dense(units)(deep)
            deep = layers.BatchNormalization()(deep)
            deep = layers.ReLU()(deep)
            deep = layers.Dropout(0.1)(deep)
        merged = layers.concatenate([cross, deep])
        outputs = layers.Dense(units=7, activation="softmax")(merged)
        return keras.Model(inputs=inputs, outputs=outputs)

    return create_baseline_model(), create_deep_and_cross_model()


def _weighted_layers(model):
    return {layer.name: layer for layer in model.layers if layer.weights}


def test_advanced_techniques_for_structured_data():
    """As written (tf.keras 2.3) CategoryEncoding encodes the (batch,) lookup as one sample
    and the concatenation fails, in Keras 3 as in Kestrel; with the indices made (batch, 1):
    string features through StringLookup inside the graph (Kestrel runs it on NumPy
    strings), and with Keras' weights copied in, the predictions and evaluation equal real
    Keras' on the looked-up indices, for one-hot ("binary") and embedding encodings and the
    cross layers' KerasTensor arithmetic."""
    rng = np.random.default_rng(0)
    features = {name: rng.normal(size=12).astype("float32") for name in _COVER_NUMERIC}
    strings = {name: rng.choice(vocabulary, 12) for name, vocabulary in _COVER_VOCABULARY.items()}
    indices = {name: np.array([_COVER_VOCABULARY[name].index(v) for v in values])
               for name, values in strings.items()}
    labels = rng.integers(0, 7, 12)
    errors = []
    for lib in (keras, kestrel):
        with pytest.raises(ValueError) as error:
            _cover_type_models(_fresh(lib), string_inputs=False, rank_two_indices=False)
        errors.append(str(error.value))
    assert "(None, 1), (None, 1), (None, 1), (4,), (2,)" in errors[0]
    assert "(None, 1), (None, 1), (None, 1), (4,), (2,)" in errors[1]
    expected_models = _cover_type_models(_fresh(keras), string_inputs=False)
    got_models = _cover_type_models(_fresh(kestrel), string_inputs=True)
    for expected, got in zip(expected_models, got_models):
        expected_layers, got_layers = _weighted_layers(expected), _weighted_layers(got)
        assert list(got_layers) == list(expected_layers)
        for name, layer in expected_layers.items():
            got_layers[name].set_weights(layer.get_weights())
        _assert_close(got.predict({**features, **strings}, verbose=0),
                      expected.predict({**features, **indices}, verbose=0))
        for lib, model in ((keras, expected), (kestrel, got)):
            model.compile(optimizer=lib.optimizers.Adam(learning_rate=0.001),
                          loss=lib.losses.SparseCategoricalCrossentropy(),
                          metrics=[lib.metrics.SparseCategoricalAccuracy()])
        _assert_close(got.evaluate({**features, **strings}, labels, verbose=0),
                      expected.evaluate({**features, **indices}, labels, verbose=0))


# ---- feature_engineering_with_custom_layer
_HEART_BINARY = ["sex", "fbs", "exang"]
_HEART_NUMERIC = ["trestbps", "chol", "thalach", "oldpeak", "slope", "cp", "restecg", "ca"]


def _heart_feature_layer(keras):
    """The example's FeatureLayer: comparisons on a string input, arithmetic on numeric ones,
    and `layers.concatenate` called inside `call`; tf ops as keras.ops."""
    ops = keras.ops

    class FeatureLayer(keras.layers.Layer):
        def __init__(self, *args, **kwargs):
            super(FeatureLayer, self).__init__(*args, **kwargs)

        def call(self, inputs):
            age_and_gender = ops.cast(
                ops.logical_and(inputs["age"] > 50, inputs["sex"] == 1), dtype="float32")
            thal_fixed_category = ops.cast(inputs["thal"] == "fixed", dtype="float32")
            thal_reversible_category = ops.cast(inputs["thal"] == "reversible", dtype="float32")
            thal_normal_category = ops.cast(inputs["thal"] == "normal", dtype="float32")
            trest_chol_ratio = inputs["trestbps"] / inputs["chol"]
            trest_cross_thalach = inputs["trestbps"] * inputs["thalach"]
            engineered_feature_layer = keras.layers.concatenate([
                thal_fixed_category, thal_reversible_category, thal_normal_category,
                age_and_gender, trest_chol_ratio, trest_cross_thalach])
            numeric_feature_layer = keras.layers.concatenate(
                [inputs[feature] for feature in _HEART_NUMERIC])
            binary_feature_layer = keras.layers.concatenate(
                [inputs[feature] for feature in _HEART_BINARY])
            return keras.layers.concatenate(
                [engineered_feature_layer, numeric_feature_layer, binary_feature_layer])

    return FeatureLayer


def _heart_head(keras, features):
    x = keras.layers.BatchNormalization(name="batch_norm")(features)
    return keras.layers.Dense(1, activation="sigmoid", name="target")(x)


def _heart_compile(keras, model):
    model.compile(loss=keras.losses.BinaryCrossentropy(),
                  optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"),
                           keras.metrics.AUC(name="auc")])
    return model


def _engineered_features(data):
    """What FeatureLayer computes, in NumPy."""
    thal = data["thal"]
    engineered = [thal == "fixed", thal == "reversible", thal == "normal",
                  (data["age"] > 50) & (data["sex"] == 1),
                  data["trestbps"] / data["chol"], data["trestbps"] * data["thalach"]]
    columns = engineered + [data[f] for f in _HEART_NUMERIC] + [data[f] for f in _HEART_BINARY]
    return np.concatenate([np.asarray(c, "float32") for c in columns], axis=1)


def test_feature_engineering_with_custom_layer(tmp_path):
    """A custom layer over a dict of (1,) inputs, one of them strings (Kestrel runs string
    inputs natively; Keras 3 on torch cannot, so its model takes the engineered features
    computed in NumPy): the same features, predictions, training and evaluation; the saved
    model loads with its custom layer, and `dict(zip(metrics_names, evaluate(...)))` on the
    fresh model pairs ['loss', 'compile_metrics'] as in Keras 3."""
    rng = np.random.default_rng(0)
    data = {f: rng.integers(0, 3, (16, 1)).astype("float32")
            for f in ["sex", "cp", "trestbps", "fbs", "restecg", "thalach", "exang", "oldpeak",
                      "slope", "ca"]}
    data.update(age=rng.integers(30, 70, (16, 1)).astype("float32"),
                chol=rng.integers(150, 300, (16, 1)).astype("float32"),
                thal=rng.choice(["fixed", "normal", "reversible"], (16, 1)))
    y = rng.integers(0, 2, 16)
    FeatureLayer = _heart_feature_layer(_fresh(kestrel))
    inputs = {feature: kestrel.Input(shape=(1,), name=feature,
                                     dtype="string" if feature == "thal" else "float32")
              for feature in data}
    feature_layer = FeatureLayer(name="feature_layer")(inputs)
    got = _heart_compile(kestrel, kestrel.Model(inputs=inputs,
                                                outputs=_heart_head(kestrel, feature_layer)))
    features = _engineered_features(data)
    np.testing.assert_allclose(_numpy(got.get_layer("feature_layer")(data)), features)
    keras_input = _fresh(keras).Input(shape=(features.shape[1],))
    expected = _heart_compile(keras, keras.Model(keras_input, _heart_head(keras, keras_input)))
    for name in ("batch_norm", "target"):
        got.get_layer(name).set_weights(expected.get_layer(name).get_weights())
    _assert_close(got.predict(data, verbose=0), expected.predict(features, verbose=0))
    _assert_same_history(got.fit(data, y, epochs=2, batch_size=8, shuffle=False,
                                 verbose=0).history,
                         expected.fit(features, y, epochs=2, batch_size=8, shuffle=False,
                                      verbose=0).history)
    got.save(str(tmp_path / "heart.keras"))
    expected.save(str(tmp_path / "heart_features.keras"))
    loaded_model = kestrel.models.load_model(str(tmp_path / "heart.keras"),
                                             custom_objects={"FeatureLayer": FeatureLayer})
    keras_loaded = keras.models.load_model(str(tmp_path / "heart_features.keras"))
    got_results = dict(zip(loaded_model.metrics_names, loaded_model.evaluate(data, y, verbose=0)))
    expected_results = dict(zip(keras_loaded.metrics_names,
                                keras_loaded.evaluate(features, y, verbose=0)))
    assert list(got_results) == list(expected_results) == ["loss", "compile_metrics"]
    _assert_close(list(got_results.values()), list(expected_results.values()))


# ---- bert_joint
def _joint_ner_replay(lib, rows, weights=None):
    """The example's NERDataset (a keras.utils.Sequence that never calls super().__init__,
    padding with pad_sequences, reshuffling in on_epoch_end) and CustomLoss (an unreduced
    inner loss masked by the ignore label); an Embedding + Dense token classifier on the
    dict batches stands in for TFBertForTokenClassification."""
    keras = _fresh(lib)

    class NERDataset(keras.utils.Sequence):
        def __init__(self, data, maxlen=8, batch_size=4, shuffle=True):
            self.data = np.array(data, dtype=object)
            self.batch_size, self.maxlen = batch_size, maxlen
            self.all_labels = list(range(13))
            self.ignore_label = self.all_labels[-1]
            self.shuffle = shuffle
            self.indices = np.arange(len(self.data))
            if self.shuffle:
                np.random.shuffle(self.indices)

        def __len__(self):
            return math.ceil(len(self.data) / self.batch_size)

        def __getitem__(self, idx):
            inds = self.indices[idx * self.batch_size:(idx + 1) * self.batch_size]
            all_tokens = [tokens for tokens, _ in self.data[inds]]
            all_tags = [tags for _, tags in self.data[inds]]
            all_masks = [[1] * len(tokens) for tokens in all_tokens]
            pad = keras.utils.pad_sequences
            return ({"input_ids": pad(all_tokens, padding="post", maxlen=self.maxlen),
                     "attention_mask": pad(all_masks, padding="post", maxlen=self.maxlen)},
                    pad(all_tags, padding="post", maxlen=self.maxlen))

        def on_epoch_end(self):
            if self.shuffle:
                np.random.shuffle(self.indices)

    train_dataset = NERDataset(rows, shuffle=False)

    class CustomLoss(keras.losses.Loss):
        def __init__(self, name="custom_ner_loss"):
            super().__init__(name=name)

        def call(self, y_true, y_pred):
            loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                 reduction=None)
            loss = loss_fn(y_true, y_pred)
            mask = keras.ops.cast((y_true != train_dataset.ignore_label), dtype="float32")
            loss = loss * mask
            return keras.ops.sum(loss) / keras.ops.sum(mask)

    input_ids = keras.Input((None,), dtype="int32", name="input_ids")
    attention_mask = keras.Input((None,), dtype="int32", name="attention_mask")
    mask = keras.ops.expand_dims(keras.ops.cast(attention_mask, "float32"), -1)
    hidden = keras.layers.Embedding(30, 8)(input_ids) * mask
    model = keras.Model({"input_ids": input_ids, "attention_mask": attention_mask},
                        keras.layers.Dense(len(train_dataset.all_labels))(hidden))
    if weights is not None:
        model.set_weights(weights)
    initial_weights = model.get_weights()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=5e-3), loss=CustomLoss())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(train_dataset, shuffle=True, epochs=2, verbose=0).history
    init_warnings = [str(w.message) for w in caught if "super().__init__" in str(w.message)]
    return initial_weights, history, init_warnings


def test_bert_joint():
    """A Sequence whose constructor skips super().__init__ (the same warning as Keras 3), a
    last batch of 2, a loss that masks an unreduced crossentropy itself."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(10):
        length = int(rng.integers(3, 8))
        rows.append((list(rng.integers(1, 30, length)), list(rng.integers(1, 13, length))))
    expected = _joint_ner_replay(keras, rows)
    got = _joint_ner_replay(kestrel, rows, weights=expected[0])
    _assert_same_history(got[1], expected[1])
    assert got[2] == expected[2] and len(got[2]) == 1


# ---- semantic_similarity_with_bert
def _similarity_replay(lib, pairs, labels, weights=None):
    """The example's BertSemanticDataGenerator (a Sequence shuffling in on_epoch_end, called
    from its constructor) and model; a small functional "bert" model over the three token
    inputs stands in for TFBertModel. It is frozen for the first fit and unfrozen, with a
    recompile, for the second, as in the example."""
    keras = _fresh(lib)
    max_length = 6

    class BertSemanticDataGenerator(keras.utils.Sequence):
        def __init__(self, sentence_pairs, labels, batch_size=4, shuffle=True,
                     include_targets=True):
            self.sentence_pairs = sentence_pairs
            self.labels = labels
            self.shuffle = shuffle
            self.batch_size = batch_size
            self.include_targets = include_targets
            self.indexes = np.arange(len(self.sentence_pairs))
            self.on_epoch_end()

        def __len__(self):
            return len(self.sentence_pairs) // self.batch_size

        def __getitem__(self, idx):
            indexes = self.indexes[idx * self.batch_size:(idx + 1) * self.batch_size]
            input_ids = np.array(self.sentence_pairs[indexes], dtype="int32")
            attention_masks = (input_ids > 0).astype("int32")
            token_type_ids = np.repeat([[0, 0, 0, 1, 1, 1]], len(indexes), 0).astype("int32")
            if self.include_targets:
                return ([input_ids, attention_masks, token_type_ids],
                        np.array(self.labels[indexes], dtype="int32"))
            return [input_ids, attention_masks, token_type_ids]

        def on_epoch_end(self):
            if self.shuffle:
                np.random.RandomState(42).shuffle(self.indexes)

    def bert_stand_in():
        ids, masks, types = (keras.Input((max_length,), dtype="int32") for _ in range(3))
        hidden = keras.layers.Embedding(20, 8)(ids) + keras.layers.Embedding(2, 8)(types)
        hidden = hidden * keras.ops.expand_dims(keras.ops.cast(masks, "float32"), -1)
        return keras.Model([ids, masks, types], hidden, name="bert")

    input_ids = keras.layers.Input(shape=(max_length,), dtype="int32", name="input_ids")
    attention_masks = keras.layers.Input(shape=(max_length,), dtype="int32",
                                         name="attention_masks")
    token_type_ids = keras.layers.Input(shape=(max_length,), dtype="int32",
                                        name="token_type_ids")
    bert_model = bert_stand_in()
    bert_model.trainable = False
    sequence_output = bert_model([input_ids, attention_masks, token_type_ids])
    bi_lstm = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True))(
        sequence_output)
    avg_pool = keras.layers.GlobalAveragePooling1D()(bi_lstm)
    max_pool = keras.layers.GlobalMaxPooling1D()(bi_lstm)
    concat = keras.layers.concatenate([avg_pool, max_pool])
    dropout = keras.layers.Dropout(0.3)(concat)
    output = keras.layers.Dense(3, activation="softmax")(dropout)
    model = keras.models.Model(inputs=[input_ids, attention_masks, token_type_ids],
                               outputs=output)
    initial_weights = model.get_weights()
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy",
                  metrics=["acc"])
    summaries = [_summary(model)]
    train_data = BertSemanticDataGenerator(pairs, labels, shuffle=True)
    valid_data = BertSemanticDataGenerator(pairs, labels, shuffle=False)
    histories = [model.fit(train_data, validation_data=valid_data, epochs=1,
                           verbose=0).history]
    bert_model.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    summaries.append(_summary(model))
    histories.append(model.fit(train_data, validation_data=valid_data, epochs=1,
                               verbose=0).history)
    return model, initial_weights, summaries, histories, train_data, BertSemanticDataGenerator


def test_semantic_similarity_with_bert():
    """A frozen functional sub-model unfrozen with a recompile (the summaries' trainable
    counts), metrics "acc" then "accuracy" naming the logs, a list batch from a Sequence
    passed to predict. (The example's `fit(..., use_multiprocessing=True, workers=-1)` is a
    TypeError in Keras 3; Kestrel takes the Keras 2 arguments, so the replay leaves them
    out.) Dropout masks differ, so training is compared through the logs' names and, with
    the trained weights copied, evaluation and predictions."""
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 20, (12, 6))
    labels = np.eye(3, dtype="int32")[rng.integers(0, 3, 12)]
    expected = _similarity_replay(keras, pairs, labels)
    got = _similarity_replay(kestrel, pairs, labels, weights=expected[1])
    assert got[2] == expected[2]
    assert [list(h) for h in got[3]] == [list(h) for h in expected[3]] == [
        ["acc", "loss", "val_acc", "val_loss"],
        ["accuracy", "loss", "val_accuracy", "val_loss"]]
    got[0].set_weights(expected[0].get_weights())
    _assert_close(got[0].evaluate(got[4], verbose=0), expected[0].evaluate(expected[4],
                                                                            verbose=0))
    test_batch = [generator(pairs[:1], None, batch_size=1, shuffle=False,
                            include_targets=False)[0] for generator in (expected[5], got[5])]
    _assert_close(got[0].predict(test_batch[1], verbose=0),
                  expected[0].predict(test_batch[0], verbose=0))


# ---- text_extraction_with_bert
def _text_extraction_replay(lib, x, y, weights=None):
    """The example's create_model head (Dense without bias, Flatten, Activation given the
    softmax function, two outputs, `loss=[loss, loss]`) over an Embedding standing in for
    TFBertModel, and its ExactMatch callback (no super().__init__) predicting each epoch."""
    keras = _fresh(lib)
    layers, max_len = keras.layers, x[0].shape[1]
    input_ids = layers.Input(shape=(max_len,), dtype="int32")
    token_type_ids = layers.Input(shape=(max_len,), dtype="int32")
    attention_mask = layers.Input(shape=(max_len,), dtype="int32")
    embedding = layers.Embedding(20, 8)(input_ids)
    start_logits = layers.Dense(1, name="start_logit", use_bias=False)(embedding)
    start_logits = layers.Flatten()(start_logits)
    end_logits = layers.Dense(1, name="end_logit", use_bias=False)(embedding)
    end_logits = layers.Flatten()(end_logits)
    start_probs = layers.Activation(keras.activations.softmax)(start_logits)
    end_probs = layers.Activation(keras.activations.softmax)(end_logits)
    model = keras.Model(inputs=[input_ids, token_type_ids, attention_mask],
                        outputs=[start_probs, end_probs])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss=[loss, loss])
    initial_weights = model.get_weights()
    if weights is not None:
        model.set_weights(weights)
    predicted_spans = []

    class ExactMatch(keras.callbacks.Callback):
        def __init__(self, x_eval, y_eval):
            self.x_eval = x_eval
            self.y_eval = y_eval

        def on_epoch_end(self, epoch, logs=None):
            pred_start, pred_end = self.model.predict(self.x_eval, verbose=0)
            predicted_spans.append((np.argmax(pred_start, -1).tolist(),
                                    np.argmax(pred_end, -1).tolist(), sorted(logs)))

    history = model.fit(x, y, epochs=2, verbose=0, batch_size=4, shuffle=False,
                        callbacks=[ExactMatch(x, y)]).history
    return initial_weights, history, predicted_spans, model.output_names


def test_text_extraction_with_bert():
    """Two softmax outputs with one loss object each: the same logs (named after the
    Activation layers), the same spans predicted by the callback each epoch. (The example's
    `Adam(lr=5e-5)` is refused by Keras 3; Kestrel takes Keras 2's `lr`.)"""
    with pytest.raises(ValueError, match="lr"):
        keras.optimizers.Adam(lr=5e-5)
    np.testing.assert_allclose(float(kestrel.optimizers.Adam(lr=5e-5).learning_rate), 5e-5)
    rng = np.random.default_rng(0)
    x = [rng.integers(0, 20, (10, 8)).astype("int32"), np.zeros((10, 8), "int32"),
         np.ones((10, 8), "int32")]
    y = [rng.integers(0, 8, 10), rng.integers(0, 8, 10)]
    expected = _text_extraction_replay(keras, x, y)
    got = _text_extraction_replay(kestrel, x, y, weights=expected[0])
    _assert_same_history(got[1], expected[1])
    assert got[2] == expected[2]
    assert got[3] == expected[3] == ["activation", "activation_1"]


# ---- multimodal_entailment
_BERT_FEATURES = ["input_type_ids", "input_mask", "input_word_ids"]


def _multimodal_model(keras, seq=6, size=16):
    """The example's project_embeddings, vision / text encoders and multimodal model: two
    images and a dict of token inputs, `inputs=[image_1, image_2, text_inputs]`. A small
    conv model stands in for ResNet50V2 (its layers frozen one by one, resnet_v2's
    preprocess_input kept) and a functional model returning a dict for the TF Hub BERT."""
    ops = keras.ops

    def project_embeddings(embeddings, num_projection_layers, projection_dims, dropout_rate):
        projected_embeddings = keras.layers.Dense(units=projection_dims)(embeddings)
        for _ in range(num_projection_layers):
            x = ops.gelu(projected_embeddings)
            x = keras.layers.Dense(projection_dims)(x)
            x = keras.layers.Dropout(dropout_rate)(x)
            x = keras.layers.Add()([projected_embeddings, x])
            projected_embeddings = keras.layers.LayerNormalization()(x)
        return projected_embeddings

    def resnet_stand_in():
        image = keras.Input((size, size, 3))
        features = keras.layers.Conv2D(4, 3, strides=2)(image)
        return keras.Model(image, keras.layers.GlobalAveragePooling2D()(features),
                           name="resnet50v2")

    def bert_stand_in():
        inputs = {f: keras.Input((seq,), dtype="int32", name=f) for f in _BERT_FEATURES}
        tokens = keras.layers.Embedding(20, 8)(inputs["input_word_ids"])
        pooled = keras.layers.Dense(8, activation="tanh")(ops.mean(tokens, axis=1))
        return keras.Model(inputs, {"pooled_output": pooled, "sequence_output": tokens},
                           name="bert")

    def create_vision_encoder(num_projection_layers, projection_dims, dropout_rate,
                              trainable=False):
        resnet_v2 = resnet_stand_in()
        for layer in resnet_v2.layers:
            layer.trainable = trainable
        image_1 = keras.Input(shape=(size, size, 3), name="image_1")
        image_2 = keras.Input(shape=(size, size, 3), name="image_2")
        preprocessed_1 = keras.applications.resnet_v2.preprocess_input(image_1)
        preprocessed_2 = keras.applications.resnet_v2.preprocess_input(image_2)
        embeddings = keras.layers.Concatenate()([resnet_v2(preprocessed_1),
                                                 resnet_v2(preprocessed_2)])
        outputs = project_embeddings(embeddings, num_projection_layers, projection_dims,
                                     dropout_rate)
        return keras.Model([image_1, image_2], outputs, name="vision_encoder")

    def create_text_encoder(num_projection_layers, projection_dims, dropout_rate,
                            trainable=False):
        bert = bert_stand_in()
        bert.trainable = trainable
        inputs = {feature: keras.Input(shape=(seq,), dtype="int32", name=feature)
                  for feature in _BERT_FEATURES}
        embeddings = bert(inputs)["pooled_output"]
        outputs = project_embeddings(embeddings, num_projection_layers, projection_dims,
                                     dropout_rate)
        return keras.Model(inputs, outputs, name="text_encoder")

    image_1 = keras.Input(shape=(size, size, 3), name="image_1")
    image_2 = keras.Input(shape=(size, size, 3), name="image_2")
    text_inputs = {feature: keras.Input(shape=(seq,), dtype="int32", name=feature)
                   for feature in _BERT_FEATURES}
    vision_projections = create_vision_encoder(1, 8, 0.1)([image_1, image_2])
    text_projections = create_text_encoder(1, 8, 0.1)(text_inputs)
    concatenated = keras.layers.Concatenate()([vision_projections, text_projections])
    outputs = keras.layers.Dense(3, activation="softmax")(concatenated)
    return keras.Model([image_1, image_2, text_inputs], outputs)


def test_multimodal_entailment():
    """Nested model inputs (a list holding a dict), frozen sub-models, a sub-model returning
    a dict indexed in the graph: the same summary (trainable counts), predictions and
    evaluation. The example's dataset yields {"image_1", "image_2", "text": {...}}, which Keras
    3 refuses with 'Missing data for input "input_mask"', as Kestrel now does (it named the
    unknown key instead); its `metrics="accuracy"` (a string) Keras 3 refuses too, while
    Kestrel takes it, so the replay passes a list. Dropout masks differ, so training is
    compared through the logs' names and the trained weights' evaluation."""
    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 255, (8, 16, 16, 3)).astype("float32") for _ in range(2)]
    text = {f: rng.integers(0, 20, (8, 6)).astype("int32") for f in _BERT_FEATURES}
    y = rng.integers(0, 3, 8)
    with pytest.raises(ValueError, match="to be a list, tuple, or dict"):
        _multimodal_model(_fresh(keras)).compile(loss="mse", metrics="accuracy")
    models, errors = [], []
    for lib in (keras, kestrel):
        model = _multimodal_model(_fresh(lib))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        with pytest.raises(ValueError) as error:
            model.predict({"image_1": images[0], "image_2": images[1], "text": text},
                          verbose=0)
        errors.append(str(error.value))
        models.append(model)
    expected, got = models
    assert errors[1] == errors[0] and errors[0].startswith('Missing data for input "input_mask"')
    assert _summary(got, 120) == _summary(expected, 120)
    got.set_weights(expected.get_weights())
    x = [images[0], images[1], text]
    _assert_close(got.predict(x, verbose=0), expected.predict(x, verbose=0))
    _assert_close(got.evaluate(x, y, verbose=0), expected.evaluate(x, y, verbose=0))
    histories = [model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0).history
                 for model in (expected, got)]
    assert list(histories[1]) == list(histories[0]) == ["accuracy", "loss"]
    got.set_weights(expected.get_weights())  # dropout masks differ: compare the trained state
    _assert_close(got.evaluate(x, y, verbose=0), expected.evaluate(x, y, verbose=0))


def test_dict_inputs_with_other_keys():
    """A model built on a dict of inputs takes a dict with more keys, warning that the
    structures differ, and names the first missing input as Keras 3 does (Kestrel refused
    the unknown key)."""
    x = {"a": np.ones((2, 2), "float32"), "b": np.ones((2, 2), "float32")}
    results = []
    for lib in (keras, kestrel):
        a, b = _fresh(lib).Input((2,), name="a"), lib.Input((2,), name="b")
        model = lib.Model({"a": a, "b": b},
                          lib.layers.Dense(1)(lib.layers.Concatenate()([a, b])))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            predictions = model.predict({**x, "c": x["a"]}, verbose=0)
        structure_warnings = [str(w.message) for w in caught
                              if "structure of `inputs`" in str(w.message)]
        with pytest.raises(ValueError) as error:
            model.predict({"b": x["b"], "c": x["a"]}, verbose=0)
        results.append((model, predictions, structure_warnings, str(error.value)))
    expected, got = results
    got[0].set_weights(expected[0].get_weights())
    _assert_close(got[0].predict({**x, "c": x["a"]}, verbose=0), expected[1])
    assert got[2] == expected[2] and len(got[2]) == 1
    assert got[3] == expected[3]
