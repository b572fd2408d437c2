"""Condensed replays of the Keras 2 scripts that books and blog tutorials made famous (the
listings of "Deep Learning with Python", 1st edition, the Keras blog's VAE, and the tf.keras 2
chapters 10-12 of "Hands-On Machine Learning", 2nd edition), with `keras` renamed to
`kestrel`, on tiny synthetic data: what they rely on that the other Keras 2 replays do not
cover. Checked against real Keras 3 (torch backend)
where both run the same code, else against Keras 2's source (noted per test).
"""
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from kestrel import backend as K  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
RNG = np.random.default_rng(14)


def _boston_model(lib, n_features):
    """DLwP listing 3.26's `build_model` (smaller)."""
    lib.utils.set_random_seed(0)
    model = lib.models.Sequential()
    model.add(lib.layers.Dense(8, activation="relu", input_shape=(n_features,)))
    model.add(lib.layers.Dense(1))
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    return model


def test_boston_kfold_reads_the_keras22_name_of_the_mae_history():
    """DLwP 3.6's k-fold loop reads `history.history['val_mean_absolute_error']`: Keras 2.2
    logged `metrics=['mae']` under the function's name (training.py takes `metric_fn.__name__`
    of `metrics.get('mae')`, i.e. `mean_absolute_error`); Keras 3 logs `mae`. The history and
    the epoch logs keep Keras 3's keys and values; the long name reads them, with a warning."""
    data = RNG.random((24, 5)).astype("float32")
    targets = data @ np.arange(1, 6, dtype="float32")
    histories, weights = {}, _boston_model(keras, 5).get_weights()
    for lib in (keras, kestrel):
        model = _boston_model(lib, 5)
        model.set_weights(weights)
        histories[lib] = model.fit(data[6:], targets[6:], validation_data=(data[:6], targets[:6]),
                                   epochs=2, batch_size=6, shuffle=False, verbose=0).history
    ours, keras_history = histories[kestrel], histories[keras]
    assert sorted(ours) == sorted(keras_history) == ["loss", "mae", "val_loss", "val_mae"]
    with pytest.warns(DeprecationWarning, match="`val_mean_absolute_error` is the Keras 2.2 "
                                                "name of the `val_mae` log"):
        mae_history = ours["val_mean_absolute_error"]
    assert mae_history is ours["val_mae"]
    np.testing.assert_allclose(mae_history, keras_history["val_mae"], rtol=1e-5)
    with pytest.warns(DeprecationWarning, match="`mean_squared_error` is the Keras 2.2 name"):
        model = _boston_model(kestrel, 5)
        model.compile("rmsprop", "mae", metrics=["mse"])
        assert model.fit(data, targets, verbose=0).history["mean_squared_error"] is not None
    with pytest.raises(KeyError, match="val_mean_absolute_error"):
        model.fit(data, targets, verbose=0).history["val_mean_absolute_error"]  # no validation


def test_callbacks_monitor_the_keras22_name_of_the_mae_log(tmp_path):
    """`ModelCheckpoint(monitor='val_mean_absolute_error')` of the same time saves on the
    `val_mae` log, as Keras 3 does when monitoring `val_mae`."""
    data = RNG.random((12, 5)).astype("float32")
    targets = data.sum(-1)
    saved, theirs = [], _boston_model(keras, 5)
    weights = theirs.get_weights()
    for lib, name in ((kestrel, "val_mean_absolute_error"), (keras, "val_mae")):
        model = _boston_model(lib, 5)
        model.set_weights(weights)
        path = str(tmp_path / f"{lib.__name__}.weights.h5")
        best = lib.callbacks.ModelCheckpoint(path, monitor=name, save_best_only=True,
                                             save_weights_only=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model.fit(data, targets, validation_data=(data, targets), epochs=2, verbose=0,
                      callbacks=[best])
        saved.append((best.best, os.path.exists(path)))
    assert saved[0][1] and saved[1][1]
    assert saved[0][0] == pytest.approx(saved[1][0], rel=1e-5)


class ActivationLogger(kestrel.callbacks.Callback):
    """DLwP 7.2.1's custom callback: it keeps the model in its own `set_model` and reads
    Keras 2's `self.validation_data`."""

    def set_model(self, model):
        self.model = model
        layer_outputs = [layer.output for layer in model.layers]
        self.activations_model = kestrel.models.Model(model.input, layer_outputs)
        self.logged = []

    def on_epoch_end(self, epoch, logs=None):
        if self.validation_data is None:
            raise RuntimeError("Requires validation_data.")
        validation_sample = self.validation_data[0][0:1]
        self.logged.append(self.activations_model.predict(validation_sample, verbose=0))


def _dense_model(lib):
    model = lib.models.Sequential([lib.layers.Dense(4, activation="relu", input_shape=(3,)),
                                   lib.layers.Dense(1, activation="sigmoid")])
    model.compile("rmsprop", "binary_crossentropy")
    return model


def test_activation_logger_sets_its_model_and_reads_keras2_validation_data():
    """Keras 2.0-2.3 set `callback.validation_data` after `on_train_begin` (training_arrays'
    `cbk.validation_data = val_ins`): the validation inputs, targets and sample weights (ones
    when none were given) as one list. A `set_model` that assigns `self.model` works as in
    Keras 2 and tf.keras 2 (Keras 3's `model` property has no setter)."""
    x, y = RNG.random((10, 3)).astype("float32"), (RNG.random((10, 1)) > 0.5).astype("float32")
    model = _dense_model(kestrel)
    logger = ActivationLogger()
    model.fit(x, y, epochs=2, validation_data=(x[:4], y[:4]), verbose=0, callbacks=[logger])
    inputs, targets, weights = logger.validation_data
    np.testing.assert_array_equal(inputs, x[:4])
    np.testing.assert_array_equal(targets, y[:4])
    np.testing.assert_array_equal(weights, np.ones(4, "float32"))
    assert len(logger.logged) == 2 and [a.shape for a in logger.logged[-1]] == [(1, 4), (1, 1)]
    np.testing.assert_allclose(logger.logged[-1][-1], model.predict(x[:1], verbose=0), rtol=1e-6)
    model.fit(x, y, validation_split=0.3, verbose=0, callbacks=[logger])
    np.testing.assert_array_equal(logger.validation_data[0], x[7:])  # the split's last rows
    with pytest.raises(RuntimeError, match="Requires validation_data"):
        model.fit(x, y, verbose=0, callbacks=[logger])

    class KerasLogger(keras.callbacks.Callback):
        set_model = ActivationLogger.set_model

    with pytest.raises(AttributeError, match="has no setter"):
        _dense_model(keras).fit(x, y, verbose=0, callbacks=[KerasLogger()])


def test_a_callback_keeping_its_own_validation_data_keeps_it():
    """tf.keras 2 never set `validation_data`: its scripts pass the data to the callback,
    which stores it under that name (an ROC AUC callback, say); fit leaves it alone."""
    x, y = RNG.random((8, 3)).astype("float32"), (RNG.random((8, 1)) > 0.5).astype("float32")

    class RocCallback(kestrel.callbacks.Callback):
        def __init__(self, validation_data):
            super().__init__()
            self.validation_data = validation_data

        def on_epoch_end(self, epoch, logs=None):
            logs["val_score"] = float(np.mean(self.model.predict(self.validation_data[0],
                                                                 verbose=0)))

    own = (x[:2], y[:2])
    callback = RocCallback(own)
    history = _dense_model(kestrel).fit(x, y, validation_data=(x, y), verbose=0,
                                        callbacks=[callback])
    assert callback.validation_data is own and "val_score" in history.history


def _closure_model(lib_layers, lib_models, penalty_of):
    """An encoder whose `z_mean` a custom layer reads from the graph, as DLwP's VAE."""
    inputs = lib_layers.Input(shape=(4,))
    z_mean = lib_layers.Dense(2, name="z_mean")(inputs)
    decoded = lib_layers.Dense(4, name="decoded")(z_mean)

    class PenaltyLayer(lib_layers.Layer):
        def call(self, inputs):
            self.add_loss(penalty_of(inputs, z_mean), inputs=inputs)
            return inputs[0]

    outputs = PenaltyLayer()([inputs, decoded])
    return lib_models.Model(inputs, outputs), lib_models.Model(inputs, [z_mean, decoded])


def test_a_layer_reading_graph_tensors_gets_their_values_of_the_batch():
    """DLwP 8.4's `CustomVariationalLayer.vae_loss` reads `z_mean` and `z_log_var`, graph
    tensors it is not given; in Keras 2's graph they hold the batch's values. Kestrel computes
    them from the model's inputs of the run; gradients reach the encoder through them."""
    def penalty(inputs, z_mean):
        return K.mean(K.square(inputs[1] - inputs[0])) + K.mean(K.square(z_mean))

    model, parts = _closure_model(kestrel.layers, kestrel.models, penalty)
    x = RNG.random((6, 4)).astype("float32")
    assert np.allclose(model.predict(x, verbose=0), x)
    z_mean, decoded = parts.predict(x, verbose=0)
    expected = np.mean((decoded - x) ** 2) + np.mean(z_mean ** 2)
    model(x)
    assert [float(t) for t in model.losses] == pytest.approx([expected], rel=1e-5)
    model.compile(optimizer="sgd", loss=None)
    assert model.evaluate(x, verbose=0) == pytest.approx(expected, rel=1e-5)
    before = model.get_layer("z_mean").get_weights()[0].copy()
    model.train_on_batch(x)
    assert not np.allclose(before, model.get_layer("z_mean").get_weights()[0])


def test_dlwp_variational_autoencoder_custom_variational_layer():
    """DLwP listing 8.23-8.27 as written (smaller): `sampling` in a Lambda, a decoder model,
    `CustomVariationalLayer` adding `vae_loss` with `self.add_loss(loss, inputs=inputs)`,
    `compile(loss=None)` and `fit(x=x_train, y=None, validation_data=(x_test, None))`."""
    layers, Model = kestrel.layers, kestrel.models.Model
    kestrel.utils.set_random_seed(0)
    img_shape, latent_dim = (8, 8, 1), 2
    input_img = kestrel.Input(shape=img_shape)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", strides=(2, 2))(input_img)
    shape_before_flattening = K.int_shape(x)
    x = layers.Flatten()(x)
    x = layers.Dense(8, activation="relu")(x)
    z_mean = layers.Dense(latent_dim)(x)
    z_log_var = layers.Dense(latent_dim)(x)

    def sampling(args):
        z_mean, z_log_var = args
        epsilon = K.random_normal(shape=(K.shape(z_mean)[0], latent_dim), mean=0., stddev=1.)
        return z_mean + K.exp(z_log_var) * epsilon

    z = layers.Lambda(sampling)([z_mean, z_log_var])
    decoder_input = layers.Input(K.int_shape(z)[1:])
    x = layers.Dense(np.prod(shape_before_flattening[1:]), activation="relu")(decoder_input)
    x = layers.Reshape(shape_before_flattening[1:])(x)
    x = layers.Conv2DTranspose(4, 3, padding="same", activation="relu", strides=(2, 2))(x)
    x = layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    decoder = Model(decoder_input, x)
    z_decoded = decoder(z)

    class CustomVariationalLayer(kestrel.layers.Layer):
        def vae_loss(self, x, z_decoded):
            x = K.flatten(x)
            z_decoded = K.flatten(z_decoded)
            xent_loss = kestrel.metrics.binary_crossentropy(x, z_decoded)
            kl_loss = -5e-4 * K.mean(1 + z_log_var - K.square(z_mean) - K.exp(z_log_var),
                                     axis=-1)
            return K.mean(xent_loss + kl_loss)

        def call(self, inputs):
            x, z_decoded = inputs[0], inputs[1]
            self.add_loss(self.vae_loss(x, z_decoded), inputs=inputs)
            return x

    y = CustomVariationalLayer()([input_img, z_decoded])
    vae = Model(input_img, y)
    vae.compile(optimizer="rmsprop", loss=None)
    x_train = RNG.random((12, *img_shape)).astype("float32")
    history = vae.fit(x=x_train, y=None, shuffle=True, epochs=2, batch_size=6,
                      validation_data=(x_train[:6], None), verbose=0)
    assert sorted(history.history) == ["loss", "val_loss"]
    assert np.all(np.isfinite(history.history["val_loss"]))
    assert history.history["loss"][0] == pytest.approx(np.log(2), abs=0.05)  # near chance
    assert decoder.predict(np.zeros((3, latent_dim)), verbose=0).shape == (3, *img_shape)


def test_keras_blog_vae_loss_function_reads_graph_tensors():
    """The Keras blog's 2016 VAE compiles `loss=vae_loss`, a function reading `z_mean` and
    `z_log_var` (through its closure or the script's globals): each batch's values, as Keras 2
    computed them in its graph."""
    layers = kestrel.layers
    x = layers.Input(shape=(4,))
    h = layers.Dense(3, activation="relu")(x)
    z_mean = layers.Dense(2)(h)
    x_decoded_mean = layers.Dense(4, activation="sigmoid")(z_mean)

    def vae_loss(x, x_decoded_mean):
        xent_loss = 4 * kestrel.metrics.binary_crossentropy(x, x_decoded_mean)
        return xent_loss + 0.5 * K.sum(K.square(z_mean), axis=-1)

    vae = kestrel.models.Model(x, x_decoded_mean)
    vae.compile(optimizer="rmsprop", loss=vae_loss)
    data = RNG.random((8, 4)).astype("float32")
    encoder = kestrel.models.Model(x, z_mean)
    means, decoded = encoder.predict(data, verbose=0), vae.predict(data, verbose=0)
    xent = -np.mean(data * np.log(decoded) + (1 - data) * np.log(1 - decoded), axis=-1)
    expected = np.mean(4 * xent + 0.5 * np.sum(means ** 2, axis=-1))
    assert vae.evaluate(data, data, verbose=0) == pytest.approx(expected, rel=1e-5)
    history = vae.fit(data, data, epochs=2, batch_size=4, verbose=0,
                      validation_data=(data, data))
    assert np.all(np.isfinite(history.history["val_loss"]))
    script = {"K": K, "z_mean": z_mean}  # the loss as the blog's script-level function
    exec("def vae_loss(x, x_decoded_mean):\n"
         "    return K.mean(K.square(x - x_decoded_mean), axis=-1) + K.sum(z_mean, axis=-1)",
         script)
    vae.compile(optimizer="rmsprop", loss=script["vae_loss"])
    expected = np.mean(np.mean((data - vae.predict(data, verbose=0)) ** 2, -1)
                       + encoder.predict(data, verbose=0).sum(-1))
    assert vae.evaluate(data, data, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_ops_outside_a_run_stay_symbolic():
    """Graph tensors are only given values inside a run: after `fit`, Keras 2 scripts still
    build symbolic losses from `model.output` for `K.function`."""
    model, _ = _closure_model(kestrel.layers, kestrel.models,
                              lambda inputs, z_mean: K.mean(K.square(z_mean)))
    model(RNG.random((2, 4)).astype("float32"))
    loss = K.mean(model.get_layer("z_mean").output)
    assert isinstance(loss, kestrel.KerasTensor)
    value = K.function([model.input], [loss])([np.ones((1, 4), "float32")])[0]
    expected = kestrel.ops.convert_to_numpy(model.get_layer("z_mean")(np.ones((1, 4))))
    assert float(value) == pytest.approx(float(np.mean(expected)), rel=1e-6)


def _wide_and_deep(lib):
    """Géron's subclassed `WideAndDeepModel` (Hands-On ML, 2nd ed., chapter 10)."""

    class WideAndDeepModel(lib.models.Model):
        def __init__(self, units=30, activation="relu", **kwargs):
            super().__init__(**kwargs)
            self.hidden1 = lib.layers.Dense(units, activation=activation)
            self.hidden2 = lib.layers.Dense(units, activation=activation)
            self.main_output = lib.layers.Dense(1)
            self.aux_output = lib.layers.Dense(1)

        def call(self, inputs):
            input_A, input_B = inputs
            hidden1 = self.hidden1(input_B)
            hidden2 = self.hidden2(hidden1)
            concat = lib.layers.concatenate([input_A, hidden2])
            return self.main_output(concat), self.aux_output(hidden2)

    return WideAndDeepModel(4, activation="relu")


def test_subclassed_two_output_model_with_one_loss_and_loss_weights():
    """A single loss for a subclassed model's two outputs applies to each (Keras 3 and
    tf.keras 2 alike); Géron's `loss_weights=[0.9, 0.1]` weighs them as tf.keras 2 did (Keras
    3 refuses the pair: "`loss_weights` must match the number of losses"). The outputs'
    losses are logged as tf.keras 2 named them, `output_1_loss` and `output_2_loss`."""
    x = RNG.random((8, 8)).astype("float32")
    inputs, y = (x[:, :5], x[:, 2:]), x.sum(1, keepdims=True)
    theirs, ours = _wide_and_deep(keras), _wide_and_deep(kestrel)
    theirs(inputs), ours(inputs)
    ours.set_weights(theirs.get_weights())
    theirs.compile(loss="mse", optimizer="sgd")
    ours.compile(loss="mse", optimizer="sgd")
    keras_total = theirs.evaluate(inputs, (y, y), verbose=0)[0]
    total, main_loss, aux_loss = ours.evaluate(inputs, (y, y), verbose=0)
    assert total == pytest.approx(keras_total, rel=1e-5)
    assert total == pytest.approx(main_loss + aux_loss, rel=1e-5)
    weighted = _wide_and_deep(kestrel)
    weighted.compile(loss="mse", loss_weights=[0.9, 0.1], optimizer="sgd")
    weighted(inputs)
    weighted.set_weights(theirs.get_weights())
    assert weighted.evaluate(inputs, (y, y), verbose=0)[0] == pytest.approx(
        0.9 * main_loss + 0.1 * aux_loss, rel=1e-5)
    history = weighted.fit(inputs, (y, y), epochs=1, verbose=0, validation_data=(inputs, (y, y)))
    assert sorted(history.history) == ["loss", "output_1_loss", "output_2_loss", "val_loss",
                                       "val_output_1_loss", "val_output_2_loss"]


def test_reconstructing_regressor_adds_a_metric_objects_result():
    """Géron's `ReconstructingRegressor` calls `self.add_metric(self.reconstruction_mean(x))`
    without a name: tf.keras 2 logged the metric object itself under its name."""
    class ReconstructingRegressor(kestrel.models.Model):
        def __init__(self, output_dim, **kwargs):
            super().__init__(**kwargs)
            self.hidden = [kestrel.layers.Dense(4, activation="selu") for _ in range(2)]
            self.out = kestrel.layers.Dense(output_dim)
            self.reconstruction_mean = kestrel.metrics.Mean(name="reconstruction_error")

        def build(self, batch_input_shape):
            self.reconstruct = kestrel.layers.Dense(batch_input_shape[-1])
            super().build(batch_input_shape)

        def call(self, inputs, training=None):
            Z = inputs
            for layer in self.hidden:
                Z = layer(Z)
            recon_loss = K.mean(K.square(self.reconstruct(Z) - inputs))
            self.add_loss(0.05 * recon_loss)
            if training:
                self.add_metric(self.reconstruction_mean(recon_loss))
            return self.out(Z)

    x = RNG.random((8, 3)).astype("float32")
    model = ReconstructingRegressor(1)
    model.compile(loss="mse", optimizer="nadam")
    history = model.fit(x, x.sum(1), epochs=2, batch_size=4, verbose=0)
    assert sorted(history.history) == ["loss", "reconstruction_error"]
    assert model.reconstruction_mean.count == 2  # reset each epoch, two batches each

    class Unnamed(kestrel.layers.Layer):
        def call(self, inputs):
            self.add_metric(K.mean(inputs))
            return inputs

    with pytest.raises(ValueError, match="add_metric needs a name"):
        Unnamed()(x)


def test_geron_chapter_11_keras2_spellings():
    """tf.keras 2 names of Géron's chapter 11: `bn.updates` (`[]` in TF 2's eager mode, with
    its deprecation warning), `history.history['lr']` of LearningRateScheduler (Keras 3 logs
    `learning_rate`) and `keras.wrappers.scikit_learn` read as an attribute."""
    model = kestrel.models.Sequential([kestrel.layers.Flatten(input_shape=[4, 4]),
                                       kestrel.layers.BatchNormalization(),
                                       kestrel.layers.Dense(3, activation="softmax")])
    with pytest.warns(DeprecationWarning, match="`layer.updates` will be removed"):
        assert model.layers[1].updates == []
    model.compile(loss="sparse_categorical_crossentropy", optimizer="nadam")
    x, y = RNG.random((6, 4, 4)).astype("float32"), np.arange(6) % 3

    def exponential_decay_fn(epoch):
        return 0.01 * 0.1 ** (epoch / 20)

    lr_scheduler = kestrel.callbacks.LearningRateScheduler(exponential_decay_fn)
    history = model.fit(x, y, epochs=2, callbacks=[lr_scheduler], verbose=0)
    with pytest.warns(DeprecationWarning, match="`lr` is the Keras 2 name of the "
                                                "`learning_rate` log"):
        assert history.history["lr"] == pytest.approx([0.01, 0.01 * 0.1 ** 0.05])
    assert kestrel.wrappers.scikit_learn.KerasRegressor.__name__ == "KerasRegressor"


def test_a_graph_built_inside_a_call_stays_symbolic():
    """A sublayer built lazily inside its parent's `call` may build a model of its own from
    new symbolic tensors: those stay symbolic (only tensors made before the run get values)."""
    class Child(kestrel.layers.Layer):
        def build(self, input_shape):
            inner = kestrel.Input(shape=input_shape[1:])
            self.inner_model = kestrel.models.Model(inner, kestrel.ops.add(inner, 1.0))

        def call(self, inputs):
            return self.inner_model(inputs)

    class Parent(kestrel.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.child = Child()

        def call(self, inputs):
            return self.child(inputs) * 2.0

    inputs = kestrel.Input(shape=(3,))
    model = kestrel.models.Model(inputs, Parent()(inputs))
    assert not model._closes_over_graph
    np.testing.assert_allclose(model.predict(np.zeros((2, 3)), verbose=0), np.full((2, 3), 2.0))


class DenseTranspose(kestrel.layers.Layer):
    """Géron's tied-weights layer (chapter 17): it keeps the Dense layer it transposes
    before calling `super().__init__()`, which tf.keras 2 allowed (Keras 3's torch backend
    raises torch's "cannot assign module before Module.__init__() call")."""

    def __init__(self, dense, activation=None, **kwargs):
        self.dense = dense
        self.activation = kestrel.activations.get(activation)
        super().__init__(**kwargs)

    def build(self, batch_input_shape):
        self.biases = self.add_weight(name="bias", shape=[self.dense.input_shape[-1]],
                                      initializer="zeros")
        super().build(batch_input_shape)

    def call(self, inputs):
        z = kestrel.ops.matmul(inputs, kestrel.ops.transpose(self.dense.weights[0]))
        return self.activation(z + self.biases)


def test_tied_autoencoder_layer_set_before_its_init():
    """The tied autoencoder trains the shared kernel once: its weights are the two Dense
    layers' and the two transposes' biases, as in tf.keras 2."""
    dense_1 = kestrel.layers.Dense(6, activation="selu")
    dense_2 = kestrel.layers.Dense(3, activation="selu")
    tied_encoder = kestrel.models.Sequential([kestrel.layers.Flatten(input_shape=[4, 4]),
                                              dense_1, dense_2])
    tied_decoder = kestrel.models.Sequential([DenseTranspose(dense_2, activation="selu"),
                                              DenseTranspose(dense_1, activation="sigmoid"),
                                              kestrel.layers.Reshape([4, 4])])
    tied_ae = kestrel.models.Sequential([tied_encoder, tied_decoder])
    tied_ae.compile(loss="binary_crossentropy", optimizer="sgd")
    x = RNG.random((8, 4, 4)).astype("float32")
    tied_ae.fit(x, x, epochs=1, verbose=0)
    assert [tuple(w.shape) for w in tied_ae.trainable_weights] == [(16, 6), (6,), (6, 3), (3,),
                                                                   (6,), (16,)]
    transpose = tied_decoder.layers[0]
    assert transpose.dense is dense_2
    assert [w.name for w in transpose.weights] == ["bias", "kernel", "bias"]  # own first
    codings = kestrel.ops.convert_to_numpy(tied_encoder(x))
    hidden = _selu(codings @ dense_2.get_weights()[0].T + transpose.get_weights()[0])
    logits = hidden @ dense_1.get_weights()[0].T + tied_decoder.layers[1].get_weights()[0]
    np.testing.assert_allclose(tied_ae.predict(x, verbose=0).reshape(8, 16),
                               1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)


def _selu(x):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return scale * np.where(x > 0, x, alpha * (np.exp(x) - 1))
