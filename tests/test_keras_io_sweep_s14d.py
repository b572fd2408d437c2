"""keras.io generative, keras_recipes, audio, rl and graph examples not replayed elsewhere,
condensed to tiny random data and one or two epochs, their TensorFlow parts written with
keras.ops and torch autograd. The same code runs with real Keras 3 (torch backend) and with
Kestrel: histories, predictions, summaries, weight paths and error messages agree.
"""
import math
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.fresh_session import both as _both  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread spares these replays the thread contention that slows
    them tenfold on a busy machine; the previous setting is restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _numpy(x):
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype="float64")


def _assert_close(got, expected, rtol=1e-4, atol=1e-5):
    """Nested dicts (same keys, same order) / lists / tuples of numbers and strings agree,
    numbers approximately."""
    if isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            _assert_close(got[key], expected[key], rtol, atol)
    elif isinstance(expected, (list, tuple)) and any(
            isinstance(e, (str, dict, list, tuple, np.ndarray)) for e in expected):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _assert_close(g, e, rtol, atol)
    elif isinstance(expected, str):
        assert got == expected
    else:
        np.testing.assert_allclose(_numpy(got), _numpy(expected), rtol=rtol, atol=atol)


def _apply_grads(optimizer, loss, variables):
    """The torch-backend form of a `tf.GradientTape` step: backward, then `apply`."""
    loss.backward()
    with torch.no_grad():
        optimizer.apply([v.value.grad for v in variables], variables)


# ---------------------------------------------------------------- generative: dcgan
def _dcgan(k):
    """dcgan_overriding_train_step: two Sequentials, a GAN whose `compile` takes two optimizers,
    a `metrics` property, and a callback whose `__init__` skips `super().__init__()`."""
    layers, ops, latent_dim = k.layers, k.ops, 8
    discriminator = k.Sequential([
        k.Input(shape=(16, 16, 3)),
        layers.Conv2D(8, kernel_size=4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(16, kernel_size=4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Flatten(), layers.Dropout(0.2), layers.Dense(1, activation="sigmoid"),
    ], name="discriminator")
    generator = k.Sequential([
        k.Input(shape=(latent_dim,)), layers.Dense(4 * 4 * 8), layers.Reshape((4, 4, 8)),
        layers.Conv2DTranspose(8, kernel_size=4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(16, kernel_size=4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(3, kernel_size=5, padding="same", activation="sigmoid"),
    ], name="generator")

    class GAN(k.Model):
        def __init__(self, discriminator, generator, latent_dim):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.latent_dim = latent_dim
            self.seed_generator = k.random.SeedGenerator(1337)

        def call(self, x):  # Keras' fit cannot build a model without `call`
            return x

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn
            self.d_loss_metric = k.metrics.Mean(name="d_loss")
            self.g_loss_metric = k.metrics.Mean(name="g_loss")

        @property
        def metrics(self):
            return [self.d_loss_metric, self.g_loss_metric]

        def train_step(self, real_images):
            batch_size = ops.shape(real_images)[0]
            noise = k.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
            combined = ops.concatenate([self.generator(noise), real_images], axis=0)
            labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], 0)
            labels += 0.05 * k.random.uniform(ops.shape(labels), seed=self.seed_generator)
            labels = ops.clip(labels, 0.0, 1.0)  # torch's binary cross-entropy wants [0, 1]
            self.zero_grad()
            d_loss = self.loss_fn(labels, self.discriminator(combined))
            _apply_grads(self.d_optimizer, d_loss, self.discriminator.trainable_weights)
            noise = k.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
            self.zero_grad()
            predictions = self.discriminator(self.generator(noise))
            g_loss = self.loss_fn(ops.zeros((batch_size, 1)), predictions)
            _apply_grads(self.g_optimizer, g_loss, self.generator.trainable_weights)
            self.d_loss_metric.update_state(d_loss)
            self.g_loss_metric.update_state(g_loss)
            return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}

    images = []

    class GANMonitor(k.callbacks.Callback):
        def __init__(self, num_img=3, latent_dim=128):
            self.num_img = num_img
            self.latent_dim = latent_dim
            self.seed_generator = k.random.SeedGenerator(42)

        def on_epoch_end(self, epoch, logs=None):
            noise = k.random.normal((self.num_img, self.latent_dim), seed=self.seed_generator)
            generated_images = self.model.generator(noise)
            generated_images *= 255
            generated_images = ops.convert_to_numpy(generated_images)
            images.extend(np.asarray(k.utils.array_to_img(generated_images[i]))
                          for i in range(self.num_img))

    gan = GAN(discriminator=discriminator, generator=generator, latent_dim=latent_dim)
    gan.compile(d_optimizer=k.optimizers.Adam(learning_rate=0.0001),
                g_optimizer=k.optimizers.Adam(learning_rate=0.0001),
                loss_fn=k.losses.BinaryCrossentropy())
    data = np.random.default_rng(0).random((16, 16, 16, 3), dtype="float32")
    history = gan.fit(data, batch_size=8, epochs=2, verbose=0,
                      callbacks=[GANMonitor(num_img=2, latent_dim=latent_dim)])
    return {"summaries": [_summary(discriminator), _summary(generator)],
            "history": history.history, "images": images,
            "optimizer": [v.path for v in gan.d_optimizer.variables]}


def test_dcgan_overriding_train_step_matches_keras():
    expected, got = _both(_dcgan)
    _assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert len(expected["images"]) == 4


# ---------------------------------------------------------------- recipes: mixture density
def _mixture_density_network(k):
    """approximating_non_function_mappings: a layer overriding `trainable_weights` and
    `non_trainable_weights`, `layers.concatenate(..., name=)` in `call`, a mixture loss, and
    EarlyStopping(restore_best_weights) with ReduceLROnPlateau on a validation split."""
    layers, ops, callbacks, hidden = k.layers, k.ops, k.callbacks, 16
    rng = np.random.RandomState(0)
    x = rng.uniform(-5, 5, (64, 1)).astype("float32")
    y = (np.sin(x[:, 0]) + rng.normal(0, 0.3, 64)).astype("float32")
    model = k.Sequential([layers.Dense(hidden, activation="relu"),
                          layers.Dense(hidden, activation="relu"), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    plain = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.15, verbose=0,
                      callbacks=[callbacks.EarlyStopping(monitor="val_loss", patience=5)])

    def elu_plus_one_plus_epsilon(x):
        return k.activations.elu(x) + 1 + k.backend.epsilon()

    class MixtureDensityOutput(layers.Layer):
        def __init__(self, output_dimension, num_mixtures, **kwargs):
            super().__init__(**kwargs)
            self.output_dim = output_dimension
            self.num_mix = num_mixtures
            self.mdn_mus = layers.Dense(self.num_mix * self.output_dim, name="mdn_mus")
            self.mdn_sigmas = layers.Dense(self.num_mix * self.output_dim,
                                           activation=elu_plus_one_plus_epsilon,
                                           name="mdn_sigmas")
            self.mdn_pi = layers.Dense(self.num_mix, name="mdn_pi")

        def build(self, input_shape):
            self.mdn_mus.build(input_shape)
            self.mdn_sigmas.build(input_shape)
            self.mdn_pi.build(input_shape)
            super().build(input_shape)

        @property
        def trainable_weights(self):
            return (self.mdn_mus.trainable_weights + self.mdn_sigmas.trainable_weights
                    + self.mdn_pi.trainable_weights)

        @property
        def non_trainable_weights(self):
            return (self.mdn_mus.non_trainable_weights + self.mdn_sigmas.non_trainable_weights
                    + self.mdn_pi.non_trainable_weights)

        def call(self, x, mask=None):
            return layers.concatenate([self.mdn_mus(x), self.mdn_sigmas(x), self.mdn_pi(x)],
                                      name="mdn_outputs")

    def get_mixture_loss_func(output_dim, num_mixes):
        def mdn_loss_func(y_true, y_pred):
            y_pred = ops.reshape(y_pred, [-1, (2 * num_mixes * output_dim) + num_mixes])
            y_true = ops.reshape(y_true, [-1, output_dim])
            out_mu, out_sigma, out_pi = ops.split(
                y_pred, [num_mixes * output_dim, 2 * num_mixes * output_dim], axis=-1)
            z = (y_true - out_mu) / out_sigma
            log_normal = -0.5 * z**2 - ops.log(out_sigma) - 0.5 * math.log(2 * math.pi)
            log_mixture = ops.logsumexp(ops.log_softmax(out_pi, axis=-1) + log_normal, axis=-1)
            return ops.mean(-log_mixture)
        return mdn_loss_func

    mdn_network = k.Sequential([layers.Dense(hidden, activation="relu"),
                                layers.Dense(hidden, activation="relu"),
                                MixtureDensityOutput(1, 3)])
    mdn_network.compile(loss=get_mixture_loss_func(1, 3), optimizer="adam")
    mixture = mdn_network.fit(x, y, epochs=4, batch_size=16, validation_split=0.15, verbose=0,
                              callbacks=[callbacks.EarlyStopping(monitor="loss", patience=10,
                                                                 restore_best_weights=True),
                                         callbacks.ReduceLROnPlateau(monitor="loss", patience=5)])
    mdn = mdn_network.layers[-1]
    return {"plain": plain.history, "y_pred": model.predict(x, verbose=0),
            "mixture": mixture.history, "params": mdn_network.predict(x, verbose=0),
            "summary": _summary(mdn_network),
            "paths": [w.path for w in mdn_network.weights] + [w.path for w in mdn.weights],
            "trainable": [w.path for w in mdn_network.trainable_weights]}


def test_mixture_density_network_matches_keras():
    expected, got = _both(_mixture_density_network)
    _assert_close(got, expected)


# ---------------------------------------------------------------- recipes: eikonal
def _eikonal(k):
    """eikonal: per-coordinate Inputs, a functional model called on two permutations of its
    inputs, Lambda layers on lists, and fit/predict on dicts keyed by input name (the
    equation's `tf.gradients` Lambda is left out: it needs graph-mode gradients)."""
    layers, ops = k.layers, k.ops
    velocity_min, velocity_max, num_dim = 1.0, 3.5, 2
    activation = lambda z: ops.exp(-(z**2))  # noqa: E731 - as the example writes it
    source_list = [layers.Input(shape=(1,), name=f"source_coord_{i}") for i in range(num_dim)]
    source = layers.Concatenate(name="source_coords", axis=-1)(source_list)
    receiver_list = [layers.Input(shape=(1,), name=f"receiver_coord_{i}")
                     for i in range(num_dim)]
    receiver = layers.Concatenate(name="receiver_coords", axis=-1)(receiver_list)
    velocity_at_receiver = layers.Input(shape=(1,), name="velocity_at_receiver")
    inputs_list = source_list + receiver_list
    both_coords = layers.Concatenate(name="source_receiver_coords", axis=-1)([source, receiver])
    hidden = layers.Rescaling(1 / 1.0, name="source_receiver_scaled")(both_coords)
    for _ in range(3):
        hidden = layers.Dense(8, activation=activation, kernel_initializer="he_normal")(hidden)
    output = layers.Dense(1, activation="sigmoid", kernel_initializer="he_normal")(hidden)
    initial = k.models.Model(inputs=inputs_list, outputs=output,
                             name="Traveltime_No_Reciprocity")
    traveltime = layers.Lambda(lambda x: 0.5 * (x[0] + x[1]), name="Reciprocity")(
        [initial(source_list + receiver_list), initial(receiver_list + source_list)])
    traveltime = layers.Lambda(
        lambda x: (1 / velocity_min - 1 / velocity_max) * x + 1 / velocity_max,
        name="velocity_scaling")(traveltime)
    difference = layers.Subtract(name="source_receiver_difference")([receiver, source])
    distance = layers.Lambda(lambda x: ops.norm(x, axis=-1, keepdims=True),
                             name="distance_factor")(difference)
    traveltime = layers.Multiply(name="Traveltime")([traveltime, distance])
    eikonal = layers.Lambda(lambda x: ((x[0] * x[1]) ** 2 - 1.0) / 2, name="Eikonal_Equation")(
        [traveltime, velocity_at_receiver])
    traveltime_model = k.models.Model(inputs=inputs_list, outputs=traveltime,
                                      name="Model_Traveltime")
    eikonal_model = k.models.Model(inputs=inputs_list + [velocity_at_receiver],
                                   outputs=eikonal, name="Model_Eikonal_Equation")
    eikonal_model.compile(optimizer=k.optimizers.Adam(learning_rate=2.5e-3), loss="mae")
    rng = np.random.RandomState(0)
    coords = {t.name: rng.uniform(0, 1, 32) for t in inputs_list}
    history = eikonal_model.fit(x={**coords, "velocity_at_receiver": rng.uniform(1, 3.5, 32)},
                                y=np.zeros(32), batch_size=8, epochs=2, verbose=0)
    return {"history": history.history,
            "traveltime": traveltime_model.predict(coords, batch_size=16, verbose=0),
            "summaries": [_summary(m) for m in (initial, traveltime_model, eikonal_model)]}


def test_eikonal_reciprocal_functional_on_dict_inputs_matches_keras():
    expected, got = _both(_eikonal)
    _assert_close(got, expected)


# ---------------------------------------------------------------- recipes: distillation
def _warmup_cosine(k):
    """distillation_recipe's WarmUpCosine schedule, its `tf` ops written with keras.ops."""
    ops = k.ops

    class WarmUpCosine(k.optimizers.schedules.LearningRateSchedule):
        def __init__(self, learning_rate_base, total_steps, warmup_learning_rate,
                     warmup_steps):
            super().__init__()
            self.learning_rate_base = learning_rate_base
            self.total_steps = total_steps
            self.warmup_learning_rate = warmup_learning_rate
            self.warmup_steps = warmup_steps
            self.pi = ops.array(np.pi)

        def __call__(self, step):
            cos_annealed_lr = ops.cos(
                self.pi * (ops.cast(step, "float32") - self.warmup_steps)
                / float(self.total_steps - self.warmup_steps))
            learning_rate = 0.5 * self.learning_rate_base * (1 + cos_annealed_lr)
            slope = (self.learning_rate_base - self.warmup_learning_rate) / self.warmup_steps
            warmup_rate = slope * ops.cast(step, "float32") + self.warmup_learning_rate
            learning_rate = ops.where(step < self.warmup_steps, warmup_rate, learning_rate)
            return ops.where(step > self.total_steps, 0.0, learning_rate)

    return WarmUpCosine(learning_rate_base=0.003, total_steps=12, warmup_learning_rate=0.0,
                        warmup_steps=3)


def _distillation_recipe(k):
    """distillation_recipe: a frozen teacher, a Distiller whose `metrics` property extends
    `super().metrics`, a custom `test_step` reporting `compute_metrics`, AdamW with clipnorm
    on a schedule; sklearn_metric_callbacks' JaccardScoreCallback (no `super().__init__()`,
    `Mean("jaccard_score")`, `.result().numpy()`) watches it."""
    from sklearn.metrics import jaccard_score

    layers, ops, temperature = k.layers, k.ops, 10

    def convnet(name, filters):
        return k.Sequential([k.Input((8, 8, 3)), layers.Conv2D(filters, 3, activation="relu"),
                             layers.GlobalAveragePooling2D(), layers.Dense(5)], name=name)

    teacher = convnet("teacher", 6)
    teacher.trainable = False

    class Distiller(k.Model):
        def __init__(self, student, teacher):
            super().__init__()
            self.student = student
            self.teacher = teacher
            self.loss_tracker = k.metrics.Mean(name="distillation_loss")

        @property
        def metrics(self):
            metrics = super().metrics
            metrics.append(self.loss_tracker)
            return metrics

        def compile(self, optimizer, metrics, distillation_loss_fn, temperature=temperature):
            super().compile(optimizer=optimizer, metrics=metrics)
            self.distillation_loss_fn = distillation_loss_fn
            self.temperature = temperature

        def call(self, inputs):
            return self.student(inputs)

        def _distillation_loss(self, x, training):
            teacher_predictions = self.teacher(x, training=False)
            student_predictions = self.student(x, training=training)
            loss = self.distillation_loss_fn(
                ops.softmax(teacher_predictions / self.temperature, axis=1),
                ops.softmax(student_predictions / self.temperature, axis=1))
            return loss, student_predictions

        def train_step(self, data):
            x, _ = data
            self.zero_grad()
            distillation_loss, _ = self._distillation_loss(x, training=True)
            _apply_grads(self.optimizer, distillation_loss, self.student.trainable_variables)
            self.loss_tracker.update_state(distillation_loss)
            return {"distillation_loss": self.loss_tracker.result()}

        def test_step(self, data):
            x, y = data
            distillation_loss, student_predictions = self._distillation_loss(x, training=False)
            self.loss_tracker.update_state(distillation_loss)
            return self.compute_metrics(x, y, student_predictions, sample_weight=None)

    jaccard = []

    class JaccardScoreCallback(k.callbacks.Callback):
        def __init__(self, name, x_test, y_test, log_dir):
            self.x_test = x_test
            self.y_test = y_test
            self.keras_metric = k.metrics.Mean("jaccard_score")
            self.epoch = 0

        def on_epoch_end(self, batch, logs=None):
            self.epoch += 1
            self.keras_metric.reset_state()
            predictions = self.model.predict(self.x_test, verbose=0)
            self.keras_metric.update_state(
                jaccard_score(np.argmax(predictions, axis=-1), self.y_test, average=None))
            jaccard.append([self.keras_metric.name,
                            self.keras_metric.result().numpy().astype(float)])

    schedule = _warmup_cosine(k)
    optimizer = k.optimizers.AdamW(weight_decay=0.001, learning_rate=schedule, clipnorm=1.0)
    distiller = Distiller(student=convnet("student", 4), teacher=teacher)
    distiller.compile(optimizer, metrics=[k.metrics.SparseCategoricalAccuracy()],
                      distillation_loss_fn=k.losses.KLDivergence())
    rng = np.random.RandomState(0)
    x, y = rng.rand(16, 8, 8, 3).astype("float32"), rng.randint(0, 5, 16)
    history = distiller.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x, y),
                            callbacks=[JaccardScoreCallback("student", x, y, "logs")])
    return {"lrs": [float(schedule(step)) for step in range(14)], "history": history.history,
            "evaluate": distiller.evaluate(x, y, verbose=0),
            "evaluate_dict": distiller.evaluate(x, y, verbose=0, return_dict=True),
            "jaccard": jaccard, "iterations": int(optimizer.iterations),
            "metrics": [m.name for m in distiller.metrics], "summary": _summary(distiller),
            "optimizer": [v.path for v in optimizer.variables]}


def test_distillation_recipe_and_sklearn_metric_callback_match_keras():
    expected, got = _both(_distillation_recipe)
    _assert_close(got, expected)


# ---------------------------------------------------------------- recipes: numpy-style models
def _numpy_style_models(k):
    """tensorflow_numpy_models (`tnp` written as keras.ops): a Model subclass creating weights
    named `block-0`, ..., a Dense-like layer whose weight is named `weights`, a loss reducing
    over axis 0, `evaluate` before `fit` on an unbuilt subclass, Sequential.build."""
    tnp, layers = k.ops, k.layers
    rng = np.random.RandomState(0)
    x_train, y_train = rng.rand(24, 5).astype("float32"), rng.rand(24).astype("float32") + 1
    x_test, y_test = rng.rand(8, 5).astype("float32"), rng.rand(8).astype("float32") + 1
    results = {}

    def evaluate_model(model, key):
        before = model.evaluate(x_test, y_test, verbose=0)
        history = model.fit(x_train, y_train, epochs=2, batch_size=8, verbose=0)
        results[key] = [before, history.history, model.evaluate(x_test, y_test, verbose=0),
                        [w.path for w in model.weights]]

    class TNPForwardFeedRegressionNetwork(k.Model):
        def __init__(self, blocks=None, **kwargs):
            super().__init__(**kwargs)
            if not isinstance(blocks, list):
                raise ValueError(f"blocks must be a list, got blocks={blocks}")
            self.blocks = blocks
            self.block_weights = None
            self.biases = None

        def build(self, input_shape):
            current_shape = input_shape[1]
            self.block_weights = []
            self.biases = []
            for i, block in enumerate(self.blocks):
                self.block_weights.append(self.add_weight(
                    shape=(current_shape, block), trainable=True, name=f"block-{i}",
                    initializer="glorot_normal"))
                self.biases.append(self.add_weight(
                    shape=(block,), trainable=True, name=f"bias-{i}", initializer="zeros"))
                current_shape = block
            self.linear_layer = self.add_weight(shape=(current_shape, 1),
                                                name="linear_projector", trainable=True,
                                                initializer="glorot_normal")

        def call(self, inputs):
            activations = inputs
            for w, b in zip(self.block_weights, self.biases):
                activations = tnp.maximum(tnp.matmul(activations, w) + b, 0.0)
            return tnp.matmul(activations, self.linear_layer)

    def tnp_mse(y_true, y_pred):
        return tnp.mean(tnp.square(y_true - y_pred), axis=0)

    def tnp_relu(x):
        return tnp.maximum(x, 0)

    class TNPDense(k.layers.Layer):
        def __init__(self, units, activation=None):
            super().__init__()
            self.units = units
            self.activation = activation

        def build(self, input_shape):
            self.w = self.add_weight(name="weights", shape=(input_shape[1], self.units),
                                     initializer="random_normal", trainable=True)
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros",
                                        trainable=True)

        def call(self, inputs):
            outputs = tnp.matmul(inputs, self.w) + self.bias
            return self.activation(outputs) if self.activation else outputs

    for key, loss in (("subclass", "mean_squared_error"), ("tnp_mse", tnp_mse)):
        k.backend.clear_session()
        model = TNPForwardFeedRegressionNetwork(blocks=[3, 3])
        model.compile(optimizer="adam", loss=loss,
                      metrics=[k.metrics.MeanAbsolutePercentageError()])
        evaluate_model(model, key)
    for key, middle in (("layered", TNPDense(3, activation=tnp_relu)),
                        ("mixed", layers.Dense(3, activation="relu"))):
        model = k.Sequential([TNPDense(3, activation=tnp_relu), middle, TNPDense(1)])
        model.compile(optimizer="adam", loss="mean_squared_error",
                      metrics=[k.metrics.MeanAbsolutePercentageError()])
        model.build((None, 5))
        results[key + "_summary"] = _summary(model)
        evaluate_model(model, key)
    return results


def test_tensorflow_numpy_models_match_keras():
    expected, got = _both(_numpy_style_models)
    _assert_close(got, expected)
    assert got["layered"][3][:2] == ["sequential/tnp_dense_1/weights",
                                     "sequential/tnp_dense_1/bias"]


def test_add_weight_named_as_a_layer_attribute_keeps_that_attribute():
    """A weight named `weights`, `trainable` or `call` (names of Layer attributes) is created
    under that name, as in Keras, and the layer's own attributes stay what they were."""
    for k in (keras, kestrel):
        class Named(k.layers.Layer):
            def build(self, input_shape):
                self.a = self.add_weight(name="weights", shape=(1,))
                self.b = self.add_weight(name="trainable", shape=(1,), trainable=False)
                self.c = self.add_weight(name="call", shape=(1,))

            def call(self, x):
                return x * self.a

        layer = Named()
        layer.build((1,))
        assert [w.path for w in layer.weights] == ["named/weights", "named/call", "named/trainable"]
        assert layer.trainable is True and len(layer.get_weights()) == 3
        assert layer(np.ones((1, 1), "float32")).shape == (1, 1)


# ---------------------------------------------------------------- rl: actor-critic, PPO
class _TinyEnv:
    """A deterministic stand-in for gym's CartPole: the state drifts with the action and an
    episode ends after `length` steps, each rewarded 1."""

    def __init__(self, length):
        self.length = length

    def reset(self):
        self.t, self.state = 0, np.array([0.1, -0.2, 0.05, 0.0], "float32")
        return self.state

    def step(self, action):
        self.t += 1
        self.state = (self.state * 0.9 + (0.1 if action else -0.1)).astype("float32")
        return self.state, 1.0, self.t >= self.length, {}


def _actor_critic(k):
    """actor_critic_cartpole: a two-headed functional model called step by step, log-probs and
    critic values kept as graph-connected scalars, Huber losses summed with `sum()`, one
    backward per episode."""
    layers, ops = k.layers, k.ops
    gamma, eps = 0.99, np.finfo(np.float32).eps.item()
    env, rng = _TinyEnv(6), np.random.RandomState(42)
    inputs = layers.Input(shape=(4,))
    common = layers.Dense(16, activation="relu")(inputs)
    action = layers.Dense(2, activation="softmax")(common)
    critic = layers.Dense(1)(common)
    model = k.Model(inputs=inputs, outputs=[action, critic])
    optimizer = k.optimizers.Adam(learning_rate=0.01)
    huber_loss = k.losses.Huber()
    episode_losses = []
    for _ in range(3):
        state, action_probs_history, critic_value_history, rewards_history = env.reset(), [], [], []
        done = False
        while not done:
            action_probs, critic_value = model(ops.expand_dims(ops.convert_to_tensor(state), 0))
            critic_value_history.append(critic_value[0, 0])
            action = rng.choice(2, p=np.squeeze(ops.convert_to_numpy(action_probs)))
            action_probs_history.append(ops.log(action_probs[0, action]))
            state, reward, done, _ = env.step(action)
            rewards_history.append(reward)
        returns, discounted_sum = [], 0
        for r in rewards_history[::-1]:
            discounted_sum = r + gamma * discounted_sum
            returns.insert(0, discounted_sum)
        returns = np.array(returns)
        returns = ((returns - np.mean(returns)) / (np.std(returns) + eps)).tolist()
        actor_losses, critic_losses = [], []
        for log_prob, value, ret in zip(action_probs_history, critic_value_history, returns):
            actor_losses.append(-log_prob * (ret - value))
            critic_losses.append(huber_loss(ops.expand_dims(value, 0), ops.expand_dims(ret, 0)))
        loss_value = sum(actor_losses) + sum(critic_losses)
        model.zero_grad()
        _apply_grads(optimizer, loss_value, model.trainable_variables)
        episode_losses.append(loss_value.item())
    return {"losses": episode_losses, "weights": model.get_weights(), "summary": _summary(model)}


def test_actor_critic_episodes_match_keras():
    expected, got = _both(_actor_critic)
    _assert_close(got, expected)


def _ppo(k, tmp_path):
    """ppo_cartpole: actor and critic functionals (the critic ends in `ops.squeeze`),
    `keras.random.categorical` with a SeedGenerator, a numpy trajectory buffer, clipped
    policy and value updates with two optimizers, and the models saved as the example does."""
    from scipy.signal import lfilter

    layers, ops = k.layers, k.ops
    num_actions, steps_per_epoch, clip_ratio = 2, 12, 0.2
    seed_generator = k.random.SeedGenerator(1337)

    def mlp(x, sizes, activation=k.activations.tanh, output_activation=None):
        for size in sizes[:-1]:
            x = layers.Dense(units=size, activation=activation)(x)
        return layers.Dense(units=sizes[-1], activation=output_activation)(x)

    def logprobabilities(logits, a):
        return ops.sum(ops.one_hot(a, num_actions) * ops.log_softmax(logits), axis=1)

    def discounted_cumulative_sums(x, discount):
        return lfilter([1], [1, float(-discount)], x[::-1], axis=0)[::-1]

    observation_input = k.Input(shape=(4,), dtype="float32")
    actor = k.Model(inputs=observation_input, outputs=mlp(observation_input, [8, 8, 2]))
    value = ops.squeeze(mlp(observation_input, [8, 8, 1]), axis=1)
    critic = k.Model(inputs=observation_input, outputs=value)
    policy_optimizer = k.optimizers.Adam(learning_rate=3e-4)
    value_optimizer = k.optimizers.Adam(learning_rate=1e-3)

    def train_policy(observations, actions, old_logprobabilities, advantages):
        actor.zero_grad()
        ratio = ops.exp(logprobabilities(actor(observations), actions) - old_logprobabilities)
        min_advantage = ops.where(advantages > 0, (1 + clip_ratio) * advantages,
                                  (1 - clip_ratio) * advantages)
        policy_loss = -ops.mean(ops.minimum(ratio * advantages, min_advantage))
        _apply_grads(policy_optimizer, policy_loss, actor.trainable_variables)
        return ops.mean(old_logprobabilities - logprobabilities(actor(observations), actions))

    def train_value_function(observations, returns):
        critic.zero_grad()
        value_loss = ops.mean((returns - critic(observations)) ** 2)
        _apply_grads(value_optimizer, value_loss, critic.trainable_variables)
        return value_loss.item()

    env, losses = _TinyEnv(5), []
    observation = env.reset()
    for _ in range(2):
        buffers = {"obs": [], "act": [], "rew": [], "val": [], "logp": []}
        advantages, returns, start = np.zeros(steps_per_epoch), np.zeros(steps_per_epoch), 0
        for t in range(steps_per_epoch):
            observation = observation.reshape(1, -1)
            logits = actor(observation)
            action = ops.squeeze(k.random.categorical(logits, 1, seed=seed_generator), axis=1)
            step = [observation[0], ops.convert_to_numpy(action)[0]]
            observation, reward, done, _ = env.step(step[1])
            for key, item in zip(buffers, step + [reward] + [
                    ops.convert_to_numpy(critic(step[0][None]))[0],
                    ops.convert_to_numpy(logprobabilities(logits, action))[0]]):
                buffers[key].append(item)
            if done or t == steps_per_epoch - 1:
                last = 0 if done else ops.convert_to_numpy(critic(observation[None]))[0]
                rewards = np.append(buffers["rew"][start:], last)
                values = np.append(buffers["val"][start:], last)
                deltas = rewards[:-1] + 0.99 * values[1:] - values[:-1]
                advantages[start:t + 1] = discounted_cumulative_sums(deltas, 0.99 * 0.95)
                returns[start:t + 1] = discounted_cumulative_sums(rewards, 0.99)[:-1]
                start, observation = t + 1, env.reset()
        advantages = (advantages - advantages.mean()) / advantages.std()
        data = [ops.convert_to_tensor(np.asarray(b, dtype)) for b, dtype in (
            (buffers["obs"], "float32"), (buffers["act"], "int32"),
            (buffers["logp"], "float32"), (advantages, "float32"), (returns, "float32"))]
        for _ in range(3):
            kl = train_policy(*data[:4])
            losses.append(kl.item())
            if kl > 1.5 * 0.01:
                break
        losses += [train_value_function(data[0], data[4]) for _ in range(3)]
    critic.save(tmp_path / f"{k.__name__}_critic.h5")
    try:
        k.models.load_model(tmp_path / f"{k.__name__}_critic.h5")
    except ValueError as error:  # Keras 3 has no Squeeze layer to revive from an .h5 file
        h5_error = "'Squeeze'" in str(error)
    critic.save(tmp_path / f"{k.__name__}_critic.keras")
    revived = k.models.load_model(tmp_path / f"{k.__name__}_critic.keras")
    x = np.random.default_rng(0).random((3, 4), dtype="float32")
    return {"losses": losses, "summaries": [_summary(actor), _summary(critic), _summary(revived)],
            "revived": revived.predict(x, verbose=0), "critic": critic.predict(x, verbose=0),
            "h5_error": [h5_error], "config": critic.get_config()}


def test_ppo_actor_critic_updates_and_saving_match_keras(tmp_path):
    """Also: get_config() writes a node's `args` and a tensor's `shape` as tuples, as Keras
    (a config passed to from_config without a JSON round trip still rebuilds)."""
    expected, got = _both(_ppo, tmp_path)
    config = got.pop("config")
    assert [l["inbound_nodes"] for l in config["layers"]] == [
        l["inbound_nodes"] for l in expected.pop("config")["layers"]]
    _assert_close(got, expected)
    assert got["h5_error"] == [True]
    rebuilt = kestrel.Model.from_config(config)
    assert [tuple(t.shape) for t in rebuilt.outputs] == [(None,)]


# ---------------------------------------------------------------- graph: GAT
def _gat(k, as_tensor):
    """gat_node_classification: GraphAttention layers on (node states, edges) with
    ops.take/segment_sum, a model holding the graph as attributes (NumPy arrays or tensors)
    and called on node indices, SGD with momentum, EarlyStopping on val_accuracy."""
    layers, ops = k.layers, k.ops

    class GraphAttention(layers.Layer):
        def __init__(self, units, kernel_initializer="glorot_uniform", kernel_regularizer=None,
                     **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.kernel_initializer = k.initializers.get(kernel_initializer)
            self.kernel_regularizer = k.regularizers.get(kernel_regularizer)

        def build(self, input_shape):
            self.kernel = self.add_weight(
                shape=(input_shape[0][-1], self.units), trainable=True,
                initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                name="kernel")
            self.kernel_attention = self.add_weight(
                shape=(self.units * 2, 1), trainable=True, initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer, name="kernel_attention")
            self.built = True

        def call(self, inputs):
            node_states, edges = inputs
            z = ops.matmul(node_states, self.kernel)
            source_indices, target_indices = edges[:, 1], edges[:, 0]
            z_concat = ops.concatenate([ops.take(z, target_indices, axis=0),
                                        ops.take(z, source_indices, axis=0)], axis=-1)
            attention_scores = ops.leaky_relu(ops.matmul(z_concat, self.kernel_attention))
            attention_scores = ops.squeeze(attention_scores, -1)
            attention_scores = ops.exp(ops.clip(attention_scores, -2, 2))
            num_nodes = ops.shape(node_states)[0]
            attention_sum = ops.segment_sum(attention_scores, target_indices,
                                            num_segments=num_nodes)
            attention_sum_per_edge = ops.take(attention_sum, target_indices, axis=0)
            attention_norm = attention_scores / (attention_sum_per_edge + 1e-8)
            weighted_neighbors = ops.take(z, source_indices, axis=0) * ops.expand_dims(
                attention_norm, axis=-1)
            return ops.segment_sum(weighted_neighbors, target_indices, num_segments=num_nodes)

    class MultiHeadGraphAttention(layers.Layer):
        def __init__(self, units, num_heads=8, merge_type="concat", **kwargs):
            super().__init__(**kwargs)
            self.num_heads = num_heads
            self.merge_type = merge_type
            self.attention_layers = [GraphAttention(units) for _ in range(num_heads)]

        def call(self, inputs):
            node_states, edges = inputs
            outputs = [layer([node_states, edges]) for layer in self.attention_layers]
            if self.merge_type == "concat":
                outputs = ops.concatenate(outputs, axis=-1)
            else:
                outputs = ops.mean(ops.stack(outputs, axis=0), axis=0)
            return ops.relu(outputs)

    class GraphAttentionNetwork(k.Model):
        def __init__(self, node_states, edges, hidden_units, num_heads, num_layers, output_dim,
                     **kwargs):
            super().__init__(**kwargs)
            self.node_states = node_states
            self.edges = edges
            self.preprocess = layers.Dense(hidden_units * num_heads, activation="relu")
            self.attention_layers = [MultiHeadGraphAttention(hidden_units, num_heads)
                                     for _ in range(num_layers)]
            self.output_layer = layers.Dense(output_dim)

        def call(self, inputs, training=False):
            x = self.preprocess(self.node_states)
            for attention_layer in self.attention_layers:
                x = attention_layer([x, self.edges]) + x
            return ops.take(self.output_layer(x), inputs, axis=0)

    rng, n = np.random.RandomState(0), 20
    node_states = rng.rand(n, 6).astype("float32")
    edges = np.stack([rng.randint(0, n, 40), rng.randint(0, n, 40)], axis=1)
    if as_tensor:
        node_states, edges = ops.convert_to_tensor(node_states), ops.convert_to_tensor(edges)
    labels = rng.randint(0, 3, n)
    gat_model = GraphAttentionNetwork(node_states, edges, 4, 2, 2, 3)
    gat_model.compile(loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer=k.optimizers.SGD(learning_rate=0.003, momentum=0.9),
                      metrics=["accuracy"])
    stopper = k.callbacks.EarlyStopping(monitor="val_accuracy", patience=5,
                                        restore_best_weights=True)
    history = gat_model.fit(x=np.arange(14), y=labels[:14], validation_split=0.1, batch_size=4,
                            epochs=3, callbacks=[stopper], verbose=0)
    test_logits = gat_model.predict(x=np.arange(14, 20), verbose=0)
    return {"history": history.history,
            "evaluate": gat_model.evaluate(x=np.arange(14, 20), y=labels[14:], verbose=0),
            "probs": ops.convert_to_numpy(ops.softmax(test_logits)),
            "summary": _summary(gat_model), "paths": [v.path for v in gat_model.weights]}


def test_gat_node_classification_matches_keras():
    for as_tensor in (False, True):
        expected, got = _both(_gat, as_tensor)
        _assert_close(got, expected)


# ---------------------------------------------------------------- audio: transformer ASR
def _asr_layers(k):
    """transformer_asr's embeddings, encoder and decoder layers (`tf` ops as keras.ops)."""
    layers, ops = k.layers, k.ops

    class TokenEmbedding(layers.Layer):
        def __init__(self, num_vocab=1000, maxlen=100, num_hid=64):
            super().__init__()
            self.emb = k.layers.Embedding(num_vocab, num_hid)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=num_hid)

        def call(self, x):
            maxlen = ops.shape(x)[-1]
            return self.emb(x) + self.pos_emb(ops.arange(start=0, stop=maxlen, step=1))

    class SpeechFeatureEmbedding(layers.Layer):
        def __init__(self, num_hid=64, maxlen=100):
            super().__init__()
            self.conv1, self.conv2, self.conv3 = (
                k.layers.Conv1D(num_hid, 11, strides=2, padding="same", activation="relu")
                for _ in range(3))

        def call(self, x):
            return self.conv3(self.conv2(self.conv1(x)))

    def feed_forward(embed_dim, feed_forward_dim):
        return k.Sequential([layers.Dense(feed_forward_dim, activation="relu"),
                             layers.Dense(embed_dim)])

    class TransformerEncoder(layers.Layer):
        def __init__(self, embed_dim, num_heads, feed_forward_dim, rate=0.1):
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = feed_forward(embed_dim, feed_forward_dim)
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs, training=False):
            attn_output = self.dropout1(self.att(inputs, inputs), training=training)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.dropout2(self.ffn(out1), training=training)
            return self.layernorm2(out1 + ffn_output)

    class TransformerDecoder(layers.Layer):
        def __init__(self, embed_dim, num_heads, feed_forward_dim, dropout_rate=0.1):
            super().__init__()
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm3 = layers.LayerNormalization(epsilon=1e-6)
            self.self_att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.enc_att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.self_dropout = layers.Dropout(0.5)
            self.enc_dropout = layers.Dropout(0.1)
            self.ffn_dropout = layers.Dropout(0.1)
            self.ffn = feed_forward(embed_dim, feed_forward_dim)

        def causal_attention_mask(self, batch_size, n_dest, n_src, dtype):
            m = ops.arange(n_dest)[:, None] >= ops.arange(n_src) - n_src + n_dest
            mask = ops.reshape(ops.cast(m, dtype), [1, n_dest, n_src])
            mult = ops.concatenate([ops.expand_dims(batch_size, -1),
                                    ops.convert_to_tensor([1, 1])], 0)
            return ops.tile(mask, mult)

        def call(self, enc_out, target):
            batch_size, seq_len = ops.shape(target)[0], ops.shape(target)[1]
            causal_mask = self.causal_attention_mask(batch_size, seq_len, seq_len, "bool")
            target_att = self.self_att(target, target, attention_mask=causal_mask)
            target_norm = self.layernorm1(target + self.self_dropout(target_att))
            enc_out = self.enc_att(target_norm, enc_out)
            enc_out_norm = self.layernorm2(self.enc_dropout(enc_out) + target_norm)
            ffn_out = self.ffn(enc_out_norm)
            return self.layernorm3(enc_out_norm + self.ffn_dropout(ffn_out))

    return TokenEmbedding, SpeechFeatureEmbedding, TransformerEncoder, TransformerDecoder


def _transformer_asr(k):
    """transformer_asr: a Transformer model whose train/test steps read dict batches and call
    `compute_loss(None, one_hot, preds, sample_weight=mask)` with a boolean mask, decoder
    layers set with `setattr`, greedy `generate` in a callback, a LearningRateSchedule."""
    ops = k.ops
    TokenEmbedding, SpeechFeatureEmbedding, TransformerEncoder, TransformerDecoder = \
        _asr_layers(k)

    class Transformer(k.Model):
        def __init__(self, num_hid=64, num_head=2, num_feed_forward=128, source_maxlen=100,
                     target_maxlen=100, num_layers_enc=4, num_layers_dec=1, num_classes=10):
            super().__init__()
            self.loss_metric = k.metrics.Mean(name="loss")
            self.num_layers_enc = num_layers_enc
            self.num_layers_dec = num_layers_dec
            self.target_maxlen = target_maxlen
            self.num_classes = num_classes
            self.enc_input = SpeechFeatureEmbedding(num_hid=num_hid, maxlen=source_maxlen)
            self.dec_input = TokenEmbedding(num_vocab=num_classes, maxlen=target_maxlen,
                                            num_hid=num_hid)
            self.encoder = k.Sequential([self.enc_input] + [
                TransformerEncoder(num_hid, num_head, num_feed_forward)
                for _ in range(num_layers_enc)])
            for i in range(num_layers_dec):
                setattr(self, f"dec_layer_{i}",
                        TransformerDecoder(num_hid, num_head, num_feed_forward))
            self.classifier = k.layers.Dense(num_classes)

        def decode(self, enc_out, target):
            y = self.dec_input(target)
            for i in range(self.num_layers_dec):
                y = getattr(self, f"dec_layer_{i}")(enc_out, y)
            return y

        def call(self, inputs):
            return self.classifier(self.decode(self.encoder(inputs[0]), inputs[1]))

        @property
        def metrics(self):
            return [self.loss_metric]

        def _loss(self, batch):
            target = batch["target"]
            preds = self([batch["source"], target[:, :-1]])
            one_hot = ops.one_hot(target[:, 1:], self.num_classes)
            mask = ops.logical_not(ops.equal(target[:, 1:], 0))
            return self.compute_loss(None, one_hot, preds, sample_weight=mask)

        def train_step(self, batch):
            self.zero_grad()
            loss = self._loss(batch)
            _apply_grads(self.optimizer, loss, self.trainable_variables)
            self.loss_metric.update_state(loss)
            return {"loss": self.loss_metric.result()}

        def test_step(self, batch):
            self.loss_metric.update_state(self._loss(batch))
            return {"loss": self.loss_metric.result()}

        def generate(self, source, target_start_token_idx):
            enc = self.encoder(source)
            dec_input = ops.ones((ops.shape(source)[0], 1), dtype="int32") * \
                target_start_token_idx
            for _ in range(self.target_maxlen - 1):
                logits = ops.argmax(self.classifier(self.decode(enc, dec_input)), axis=-1)
                last_logit = ops.cast(ops.expand_dims(logits[:, -1], axis=-1), "int32")
                dec_input = ops.concatenate([dec_input, last_logit], axis=-1)
            return dec_input

    generated = []

    class DisplayOutputs(k.callbacks.Callback):
        def __init__(self, batch, idx_to_token, target_start_token_idx=27,
                     target_end_token_idx=28):
            self.batch = batch
            self.target_start_token_idx = target_start_token_idx
            self.target_end_token_idx = target_end_token_idx
            self.idx_to_char = idx_to_token

        def on_epoch_end(self, epoch, logs=None):
            preds = self.model.generate(self.batch["source"], self.target_start_token_idx)
            generated.append(ops.convert_to_numpy(preds))

    class CustomSchedule(k.optimizers.schedules.LearningRateSchedule):
        def __init__(self, init_lr=0.00001, lr_after_warmup=0.001, final_lr=0.00001,
                     warmup_epochs=15, decay_epochs=85, steps_per_epoch=203):
            super().__init__()
            self.init_lr = init_lr
            self.lr_after_warmup = lr_after_warmup
            self.final_lr = final_lr
            self.warmup_epochs = warmup_epochs
            self.decay_epochs = decay_epochs
            self.steps_per_epoch = steps_per_epoch

        def calculate_lr(self, epoch):
            warmup_lr = self.init_lr + (
                (self.lr_after_warmup - self.init_lr) / (self.warmup_epochs - 1)) * epoch
            decay_lr = ops.maximum(self.final_lr, self.lr_after_warmup - (
                epoch - self.warmup_epochs) * (self.lr_after_warmup - self.final_lr)
                / self.decay_epochs)
            return ops.minimum(warmup_lr, decay_lr)

        def __call__(self, step):
            return self.calculate_lr(ops.cast(step // self.steps_per_epoch, "float32"))

    rng = np.random.RandomState(0)
    source = rng.rand(8, 16, 5).astype("float32")
    target = rng.randint(1, 12, (8, 5))
    target[:, 0], target[:, -2:] = 2, 0
    val = {"source": source[:4], "target": target[:4]}
    model = Transformer(num_hid=8, num_head=2, num_feed_forward=16, target_maxlen=5,
                        num_layers_enc=1, num_layers_dec=1, num_classes=12)
    learning_rate = CustomSchedule(warmup_epochs=2, decay_epochs=3, steps_per_epoch=2)
    model.compile(optimizer=k.optimizers.Adam(learning_rate),
                  loss=k.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    # Keras' fit cannot build the model nor its compiled loss from dict batches: built here
    preds = model([source[:1], target[:1, :-1]])
    model.compute_loss(None, ops.one_hot(target[:1, 1:], 12), preds)
    history = model.fit({"source": source, "target": target}, batch_size=4, epochs=2,
                        validation_data=val, verbose=0,
                        callbacks=[DisplayOutputs(val, list("abcdefghijkl"), 2, 3)])
    return {"history": history.history, "generated": generated, "summary": _summary(model),
            "paths": [v.path for v in model.weights],
            "lrs": [float(learning_rate(step)) for step in range(12)]}


def test_transformer_asr_matches_keras():
    expected, got = _both(_transformer_asr)
    _assert_close(got, expected)


# ---------------------------------------------------------------- audio: vocal separation
def _tfc_tdf_layers(k):
    """vocal_track_separation's registered layers: sublayers created in `build(*_)`,
    GroupNormalization(groups=-1), a `conv_cls` class attribute that a subclass overrides."""
    layers, ops, saving = k.layers, k.ops, k.saving

    @saving.register_keras_serializable()
    class TimeDistributedDenseBlock(layers.Layer):
        def __init__(self, bottleneck_factor, fft_dim, **kwargs):
            super().__init__(**kwargs)
            self.fft_dim = fft_dim
            self.hidden_dim = fft_dim // bottleneck_factor

        def build(self, *_):
            self.group_norm_1 = layers.GroupNormalization(groups=-1)
            self.group_norm_2 = layers.GroupNormalization(groups=-1)
            self.dense_1 = layers.Dense(self.hidden_dim, use_bias=False)
            self.dense_2 = layers.Dense(self.fft_dim, use_bias=False)

        def call(self, x):
            x = self.dense_1(ops.swapaxes(ops.gelu(self.group_norm_1(x)), -1, -2))
            x = ops.gelu(self.group_norm_2(ops.swapaxes(x, -1, -2)))
            return ops.swapaxes(self.dense_2(ops.swapaxes(x, -1, -2)), -1, -2)

    @saving.register_keras_serializable()
    class TimeFrequencyConvolution(layers.Layer):
        def __init__(self, channels, **kwargs):
            super().__init__(**kwargs)
            self.channels = channels

        def build(self, *_):
            self.group_norm = layers.GroupNormalization(groups=-1)
            self.conv = layers.Conv2D(self.channels, 3, padding="same", use_bias=False)

        def call(self, x):
            return self.conv(ops.gelu(self.group_norm(x)))

    @saving.register_keras_serializable()
    class TimeFrequencyTransformBlock(layers.Layer):
        def __init__(self, channels, length, fft_dim, bottleneck_factor, in_channels=None,
                     **kwargs):
            super().__init__(**kwargs)
            self.channels = channels
            self.length = length
            self.fft_dim = fft_dim
            self.bottleneck_factor = bottleneck_factor
            self.in_channels = in_channels or channels

        def build(self, *_):
            self.blocks = []
            for i in range(self.length):
                in_channels = self.channels if i > 0 else self.in_channels
                self.blocks.append(TimeFrequencyConvolution(in_channels))
                self.blocks.append(TimeDistributedDenseBlock(self.bottleneck_factor,
                                                             self.fft_dim))
                self.blocks.append(TimeFrequencyConvolution(self.channels))
                self.blocks.append(layers.Conv2D(self.channels, 1, 1, use_bias=False))

        def call(self, inputs):
            x = inputs
            for i in range(0, len(self.blocks), 4):
                tfc_1 = self.blocks[i](x)
                tdf = self.blocks[i + 1](x)
                x = self.blocks[i + 2](tfc_1 + tdf) + self.blocks[i + 3](x)
            return x

    @saving.register_keras_serializable()
    class Downscale(layers.Layer):
        conv_cls = layers.Conv2D

        def __init__(self, channels, scale, **kwargs):
            super().__init__(**kwargs)
            self.channels = channels
            self.scale = scale

        def build(self, *_):
            self.conv = self.conv_cls(self.channels, self.scale, self.scale, use_bias=False)
            self.norm = layers.GroupNormalization(groups=-1)

        def call(self, inputs):
            return self.norm(ops.gelu(self.conv(inputs)))

    @saving.register_keras_serializable()
    class Upscale(Downscale):
        conv_cls = layers.Conv2DTranspose

    return TimeFrequencyTransformBlock, Downscale, Upscale


def _vocal_track_separation(k, tmp_path):
    """vocal_track_separation: ops.stft/istft around a TFC-TDF U-Net, a PyDataset, registered
    loss and metric functions, Adam with gradient accumulation, ModelCheckpoint on val_sdr,
    ReduceLROnPlateau, CSVLogger, then load_model, evaluate and predict."""
    layers, ops, saving, callbacks = k.layers, k.ops, k.saving, k.callbacks
    n_subbands, chunk_size, n_fft, hop = 2, 112, 64, 16
    transform_block, downscale, upscale = _tfc_tdf_layers(k)
    model_path, csv_log_path = (tmp_path / f"model_{k.__name__}.keras",
                                tmp_path / f"training_{k.__name__}.csv")

    class Dataset(k.utils.PyDataset):
        def __init__(self, seed, batches_per_epoch=2, **kwargs):
            super().__init__(**kwargs)
            rng = np.random.RandomState(seed)
            self.tracks = [rng.uniform(-1, 1, (2, 4, chunk_size)).astype("float32")
                           for _ in range(batches_per_epoch)]

        def __len__(self):
            return len(self.tracks)

        def __getitem__(self, idx):
            tracks = self.tracks[idx or 0]  # the example reads `val_ds[None]`
            return ops.sum(tracks, axis=1), ops.convert_to_tensor(tracks[:, 3:4])

    def stft(inputs):
        real_x, imag_x = ops.stft(inputs, n_fft, hop, n_fft)
        x = ops.concatenate((ops.expand_dims(real_x, -1), ops.expand_dims(imag_x, -1)), -1)
        return ops.split(x, [x.shape[2] - 1], axis=2)[0]

    def inverse_stft(inputs):
        x = ops.pad(inputs, ((0, 0), (0, 0), (0, 1), (0, 0)))
        real_x, imag_x = ops.split(x, 2, axis=-1)
        return ops.istft((ops.squeeze(real_x, axis=-1), ops.squeeze(imag_x, axis=-1)),
                         n_fft, hop, n_fft)

    def build_model(inputs, channels=4, fft_dim=(n_fft // 2) // n_subbands, n_scales=1,
                    scale=(2, 2), growth=4, **kwargs):
        x = stft(inputs)
        mix = ops.reshape(x, (-1, x.shape[1], x.shape[2] // n_subbands, 2 * n_subbands))
        first_conv_out = layers.Conv2D(channels, 1, 1, use_bias=False)(mix)
        x, encoder_outs = first_conv_out, []
        for _ in range(n_scales):
            x = transform_block(channels, 1, fft_dim, 2)(x)
            encoder_outs.append(x)
            fft_dim, channels = fft_dim // scale[0], channels + growth
            x = downscale(channels, scale)(x)
        x = transform_block(channels, 1, fft_dim, 2)(x)
        for _ in range(n_scales):
            fft_dim, channels = fft_dim * scale[0], channels - growth
            x = ops.concatenate([upscale(channels, scale)(x), encoder_outs.pop()], axis=-1)
            x = transform_block(channels, 1, fft_dim, 2, in_channels=x.shape[-1])(x)
        x = ops.concatenate([mix, x * first_conv_out], axis=-1)
        x = layers.Conv2D(channels, 1, 1, use_bias=False, activation="gelu")(x)
        x = layers.Conv2D(n_subbands * 2, 1, 1, use_bias=False)(x)
        x = ops.reshape(x, (-1, x.shape[1], x.shape[2] * n_subbands, 1, 2))
        x = ops.transpose(x, (0, 3, 1, 2, 4))
        x = ops.reshape(x, (-1, 1, x.shape[2], x.shape[3] * 2))
        return k.Model(inputs=inputs, outputs=x, **kwargs)

    def prediction_to_wave(x):
        x = inverse_stft(ops.reshape(x, (-1, x.shape[2], x.shape[3] // 2, 2)))
        return ops.reshape(x, (-1, 1, x.shape[1]))

    def target_to_stft(y):
        y_real, y_imag = ops.stft(ops.reshape(y, (-1, chunk_size)), n_fft, hop, n_fft)
        y = ops.stack([y_real[..., :-1], y_imag[..., :-1]], axis=-1)
        return ops.reshape(y, (-1, 1, y.shape[1], y.shape[2] * 2))

    @saving.register_keras_serializable()
    def sdr(y_true, y_pred):
        y_pred = prediction_to_wave(y_pred)
        num = ops.sum(ops.square(y_true), axis=-1) + 1e-8
        den = ops.sum(ops.square(y_true - y_pred), axis=-1) + 1e-8
        return 10 * ops.log10(num / den)

    @saving.register_keras_serializable()
    def spectral_loss(y_true, y_pred):
        return ops.mean(ops.absolute(target_to_stft(y_true) - y_pred))

    train_ds, val_ds = Dataset(0), Dataset(1, batches_per_epoch=1)
    sample_batch_x, _ = val_ds[None]
    model = build_model(k.Input(sample_batch_x.shape[1:]), name="tfc_tdf_net")
    model.compile(optimizer=k.optimizers.Adam(5e-05, gradient_accumulation_steps=2),
                  loss=spectral_loss, metrics=[sdr])
    cbs = [callbacks.ModelCheckpoint(model_path, "val_sdr", save_best_only=True, mode="max"),
           callbacks.ReduceLROnPlateau(factor=0.95, patience=2),
           callbacks.CSVLogger(csv_log_path)]
    history = model.fit(train_ds, validation_data=val_ds, epochs=1, callbacks=cbs,
                        shuffle=False, verbose=0)
    revived = saving.load_model(model_path)
    csv_lines = csv_log_path.read_text().splitlines()
    return {"summary": _summary(model), "history": history.history,
            "evaluate": revived.evaluate(val_ds, verbose=0),
            "wave": prediction_to_wave(revived.predict(sample_batch_x, verbose=0)),
            "csv_header": csv_lines[0],
            "csv_rows": [[float(v) for v in line.split(",")] for line in csv_lines[1:]],
            "revived_summary": _summary(revived), "paths": [v.path for v in revived.weights]}


def test_vocal_track_separation_matches_keras(tmp_path):
    expected, got = _both(_vocal_track_separation, tmp_path)
    _assert_close(got, expected)


# ---------------------------------------------------------------- structured: lifetime value
def _customer_lifetime_value(k):
    """customer_lifetime_value's hybrid model (its keras_hub TransformerEncoder written as
    an attention block): Embedding of a one-hot country vector, Flatten, RepeatVector, LSTMs
    (one with a recurrent L1L2 regularizer), three named inputs; EarlyStopping and
    ReduceLROnPlateau on val_loss."""
    layers = k.layers

    def encoder_block(x, num_heads):
        attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=4)(x, x)
        x = layers.LayerNormalization()(x + attention)
        feed_forward = layers.Dense(x.shape[-1])(layers.Dense(16, activation="relu")(x))
        return layers.LayerNormalization()(x + feed_forward)

    def build_hybrid_model(input_sequence_length, output_sequence_length, num_countries,
                           d_model=8, num_heads=4):
        temporal_inputs = layers.Input(shape=(input_sequence_length, 5), name="temporal_inputs")
        trend_inputs = layers.Input(shape=(input_sequence_length, 12), name="trend_inputs")
        country_inputs = layers.Input(shape=(num_countries,), dtype="int32",
                                      name="country_inputs")
        country_embedding = layers.Embedding(input_dim=num_countries, output_dim=d_model,
                                             mask_zero=False,
                                             name="country_embedding")(country_inputs)
        country_embedding = layers.Flatten(name="flatten_country_embedding")(country_embedding)
        country_embedding_repeated = layers.RepeatVector(
            input_sequence_length, name="repeat_country_embedding")(country_embedding)
        temporal_projection = layers.Dense(d_model, activation="tanh",
                                           name="temporal_projection")(temporal_inputs)
        transformer_output = layers.Concatenate()(
            [temporal_projection, country_embedding_repeated])
        for _ in range(2):
            transformer_output = encoder_block(transformer_output, num_heads)
        lstm_output = layers.LSTM(units=8, name="lstm_trend")(trend_inputs)
        transformer_flattened = layers.GlobalAveragePooling1D(name="flatten_transformer")(
            transformer_output)
        transformer_flattened = layers.Dense(1, activation="sigmoid")(transformer_flattened)
        merged_features = layers.Concatenate(name="concatenate_transformer_lstm")(
            [transformer_flattened, lstm_output])
        decoder_initial = layers.RepeatVector(output_sequence_length,
                                              name="repeat_merged_features")(merged_features)
        decoder_lstm = layers.LSTM(units=8, return_sequences=True,
                                   recurrent_regularizer=k.regularizers.L1L2(l1=1e-5, l2=1e-4)
                                   )(decoder_initial)
        output = layers.Dense(units=1, activation="linear", name="output_dense")(decoder_lstm)
        model = k.Model(inputs=[temporal_inputs, trend_inputs, country_inputs], outputs=output)
        model.compile(optimizer=k.optimizers.Adam(learning_rate=0.001), loss="mse",
                      metrics=["mse"])
        return model

    model = build_hybrid_model(6, 6, num_countries=4)
    rng = np.random.RandomState(0)

    def data(n):
        return ([rng.rand(n, 6, 5).astype("float32"), rng.rand(n, 6, 12).astype("float32"),
                 np.eye(4, dtype="int32")[rng.randint(0, 4, n)]],
                rng.rand(n, 6).astype("float32"))

    (x_train, y_train), (x_val, y_val) = data(16), data(8)
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=2, batch_size=8,
                        verbose=0, callbacks=[
                            k.callbacks.EarlyStopping(monitor="val_loss", patience=10,
                                                      restore_best_weights=True, mode="min"),
                            k.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2,
                                                          patience=5, min_lr=1e-6, mode="min")])
    predictions = k.ops.squeeze(model.predict(x_val, verbose=0))
    return {"history": history.history, "predictions": predictions, "summary": _summary(model),
            "losses": [loss.item() for loss in model.losses]}


def test_customer_lifetime_value_hybrid_model_matches_keras():
    expected, got = _both(_customer_lifetime_value)
    _assert_close(got, expected)


# ---------------------------------------------------------------- recipes: sample size
def _sample_size_estimate(k):
    """sample_size_estimate: an augmentation Sequential called on NumPy images, a frozen
    MobileNetV2 on `input_tensor=` a Rescaling output, a new head, `unfreeze` from a block
    name (BatchNormalization kept frozen), two compiles with EarlyStopping on val_auc (mode
    max), `history.epoch`, and the learning-curve fit on two Variables with autograd."""
    layers, ops = k.layers, k.ops
    rng, counts = np.random.RandomState(0), []
    images = rng.uniform(0, 255, (18, 32, 32, 3)).astype("float32")
    labels = np.eye(3, dtype="float32")[rng.randint(0, 3, 18)]
    image_augmentation = k.Sequential([
        layers.RandomFlip(mode="horizontal"), layers.RandomRotation(factor=0.1),
        layers.RandomZoom(height_factor=(-0.1, -0)), layers.RandomContrast(factor=0.1)])
    augmented = image_augmentation(images[:12]).numpy()

    def build_model(num_classes, img_size=32, top_dropout=0.3):
        inputs = layers.Input(shape=(img_size, img_size, 3))
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1)(inputs)
        model = k.applications.MobileNetV2(include_top=False, weights=None, input_tensor=x,
                                           alpha=0.35)
        model.trainable = False
        x = layers.GlobalAveragePooling2D(name="avg_pool")(model.output)
        outputs = layers.Dense(num_classes, activation="softmax")(layers.Dropout(top_dropout)(x))
        model = k.Model(inputs, outputs)
        counts.append([len(model.trainable_weights), len(model.non_trainable_weights)])
        return model

    def compile_and_train(model, training_data, training_labels, metrics, optimizer,
                          patience=5, epochs=5):
        stopper = k.callbacks.EarlyStopping(monitor="val_auc", mode="max", min_delta=0,
                                            patience=patience, restore_best_weights=True)
        model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=metrics)
        return model.fit(x=training_data, y=training_labels, batch_size=4, epochs=epochs,
                         validation_split=0.1, callbacks=[stopper], verbose=0)

    def unfreeze(model, block_name):
        set_trainable = False
        for layer in model.layers:
            if block_name in layer.name:
                set_trainable = True
            if set_trainable and not isinstance(layer, layers.BatchNormalization):
                layer.trainable = True
        counts.append([len(model.trainable_weights), len(model.non_trainable_weights)])
        return model

    def fit_learning_curve(train_acc, sample_sizes, pred_sample_size):
        x = ops.convert_to_tensor(sample_sizes, "float32")
        mean_acc = ops.convert_to_tensor([np.mean(i) for i in train_acc])
        mse = k.losses.MeanSquaredError()
        a, b = k.Variable(0.0), k.Variable(0.0)
        for _ in range(50):
            a.value.grad = b.value.grad = None
            mse(a * x**b, mean_acc).backward()
            with torch.no_grad():
                a.assign_sub(a.value.grad * 0.01)
                b.assign_sub(b.value.grad * 0.01)
        mae = k.losses.MeanAbsoluteError()
        return [float(a.numpy()), float(b.numpy()), (a * pred_sample_size**b).item(),
                mae(mean_acc, a * x**b).item()]

    model = build_model(3)
    history = compile_and_train(model, images[:12], labels[:12],
                                [k.metrics.AUC(name="auc"), "acc"], k.optimizers.Adam(),
                                patience=3, epochs=2)
    model = unfreeze(model, "block_10")
    fine = compile_and_train(model, images[:12], labels[:12], [k.metrics.AUC(name="auc"), "acc"],
                             k.optimizers.Adam(learning_rate=1e-4), epochs=history.epoch[-1] + 2)
    return {"augmented": augmented, "counts": counts, "history": history.history,
            "fine": fine.history, "evaluate": model.evaluate(images[12:], labels[12:], verbose=0),
            "curve": fit_learning_curve([[0.82, 0.74], [0.86, 0.87], [0.89, 0.92]],
                                        [1.65, 3.30, 8.25], pred_sample_size=16.51),
            "summary": _summary(model)}


def test_sample_size_estimate_matches_keras():
    expected, got = _both(_sample_size_estimate)
    _assert_close(got, expected)


# ---------------------------------------------------------------- rl: deep Q-network
def _deep_q_network(k):
    """deep_q_network_breakout: a Sequential opening with a channels-first Lambda given
    `output_shape` and `input_shape` (Keras' warning about `input_shape`), a target network
    refreshed with set_weights, `predict` on replayed states, Huber loss on masked Q-values,
    Adam with clipnorm. The Lambda closes over the `keras` module: its config writes it as
    Keras does and saves as JSON."""
    import json
    import warnings

    layers, ops, side = k.layers, k.ops, 36
    rng = np.random.RandomState(42)

    def create_q_model():
        return k.Sequential([
            layers.Lambda(lambda tensor: k.ops.transpose(tensor, [0, 2, 3, 1]),
                          output_shape=(side, side, 4), input_shape=(4, side, side)),
            layers.Conv2D(8, 8, strides=4, activation="relu", input_shape=(4, side, side)),
            layers.Conv2D(8, 4, strides=2, activation="relu"),
            layers.Conv2D(8, 3, strides=1, activation="relu"),
            layers.Flatten(), layers.Dense(16, activation="relu"),
            layers.Dense(4, activation="linear")])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = create_q_model()
    model_target = create_q_model()
    optimizer = k.optimizers.Adam(learning_rate=0.00025, clipnorm=1.0)
    loss_function = k.losses.Huber()
    states = rng.rand(12, 4, side, side).astype("float32")
    history = {"action": [], "state": [], "state_next": [], "reward": [], "done": []}
    losses = []
    for frame_count in range(1, 11):
        state = states[frame_count]
        action_probs = model(ops.expand_dims(ops.convert_to_tensor(state), 0), training=False)
        action = int(ops.argmax(action_probs[0]).numpy())  # Keras: a 0-d array fails one_hot
        for key, value in zip(history, (action, state, states[frame_count + 1],
                                        float(frame_count % 3), frame_count % 5 == 0)):
            history[key].append(value)
        if frame_count % 2 == 0 and len(history["done"]) > 4:
            indices = rng.choice(range(len(history["done"])), size=4)
            state_sample = np.array([history["state"][i] for i in indices])
            state_next_sample = np.array([history["state_next"][i] for i in indices])
            rewards_sample = ops.convert_to_tensor([history["reward"][i] for i in indices])
            action_sample = [history["action"][i] for i in indices]
            done_sample = ops.convert_to_tensor([float(history["done"][i]) for i in indices])
            future_rewards = model_target.predict(state_next_sample, verbose=0)
            updated_q_values = rewards_sample + 0.99 * ops.amax(future_rewards, axis=1)
            updated_q_values = updated_q_values * (1 - done_sample) - done_sample
            masks = ops.one_hot(action_sample, 4)
            model.zero_grad()
            q_action = ops.sum(ops.multiply(model(state_sample), masks), axis=1)
            loss = loss_function(updated_q_values, q_action)
            _apply_grads(optimizer, loss, model.trainable_variables)
            losses.append(loss.item())
        if frame_count % 6 == 0:
            model_target.set_weights(model.get_weights())
    return {"warnings": sorted({str(w.message)[:60] for w in caught}),
            "actions": history["action"], "losses": losses, "summary": _summary(model),
            "target": model_target.get_weights(),
            "config": json.loads(json.dumps(model.get_config()))}


def test_deep_q_network_matches_keras():
    expected, got = _both(_deep_q_network)
    _assert_close(got, expected)


def test_lambda_closing_over_the_keras_module_saves_and_loads(tmp_path):
    """Keras writes the closed-over module by name (and cannot call the lambda it reloads);
    Kestrel writes the same config and, with safe_mode=False, reloads a working lambda."""
    def build(k):
        return k.Sequential([k.Input((2, 3)),
                             k.layers.Lambda(lambda t: k.ops.transpose(t, [0, 2, 1]))])

    closures = [build(k).get_config()["layers"][1]["config"]["function"]["config"]["closure"]
                for k in (keras, kestrel)]
    assert list(closures[1]) == list(closures[0]) == [{
        "module": "builtins", "class_name": "module", "config": "keras",
        "registered_name": "module"}]
    model = build(kestrel)
    model.save(tmp_path / "lambda.keras")
    revived = kestrel.models.load_model(tmp_path / "lambda.keras", safe_mode=False)
    x = np.arange(6, dtype="float32").reshape(1, 2, 3)
    np.testing.assert_array_equal(_numpy(revived(x)), x.transpose(0, 2, 1))


# ---------------------------------------------------------------- audio: CTC ASR
def _ctc_asr(k):
    """ctc_asr (`keras.backend.ctc_batch_cost`/`ctc_decode` as keras.ops.ctc_loss and
    ctc_decode): Conv1D and bidirectional LSTMs with dropout, BatchNormalization, Dense
    layers between two Permutes, a CTC loss function, greedy decoding in a callback."""
    layers, ops, vocab = k.layers, k.ops, 6

    def ctc_loss(y_true, y_pred):
        batch_len = ops.shape(y_true)[0]
        input_length = ops.shape(y_pred)[1] * ops.ones(shape=(batch_len,), dtype="int32")
        label_length = ops.shape(y_true)[1] * ops.ones(shape=(batch_len,), dtype="int32")
        return ops.ctc_loss(y_true, y_pred, label_length, input_length)

    def conv(name):
        return layers.Conv1D(8, 5, activation="relu", kernel_initializer="he_normal",
                             padding="same", name=name)

    input_spectrogram = layers.Input(shape=(12, 9), name="spectrogram", dtype="float32")
    x = layers.BatchNormalization()(conv("Conv1")(input_spectrogram))
    x = layers.BatchNormalization()(conv("Conv2")(x))
    for _ in range(2):
        x = layers.Bidirectional(layers.LSTM(8, return_sequences=True, dropout=0.25))(x)
        x = layers.BatchNormalization()(x)
    x = layers.Permute((2, 1))(x)
    for name in ("compress_layer_1", "compress_layer_2"):
        x = layers.Dense(12, activation="relu", name=name)(x)
        x = layers.BatchNormalization()(layers.Dropout(0.2)(x))
    x = layers.Permute((2, 1))(x)
    output = layers.Dense(vocab + 1, activation="softmax", name="output_layer")(x)
    model = k.models.Model(inputs=input_spectrogram, outputs=output, name="speech_transcript_v1")
    model.compile(optimizer=k.optimizers.Adam(learning_rate=1e-4), loss=ctc_loss)

    def decode_batch_predictions(pred):
        input_len = np.ones(pred.shape[0]) * pred.shape[1]
        decoded = ops.ctc_decode(pred, sequence_lengths=input_len, strategy="greedy")
        return ops.convert_to_numpy(decoded[0][0][:, :4])

    decoded = []

    class DisplayOutputs(k.callbacks.Callback):
        def __init__(self, spectrograms):
            self.spectrograms = spectrograms

        def on_epoch_end(self, epoch, logs=None):
            preds = self.model.predict(self.spectrograms, verbose=0)
            decoded.append(decode_batch_predictions(preds))

    rng = np.random.RandomState(0)
    x, y = rng.rand(8, 12, 9).astype("float32"), rng.randint(1, vocab, (8, 4))
    history = model.fit(x, y, validation_data=(x[:4], y[:4]), epochs=2, batch_size=4,
                        callbacks=[DisplayOutputs(x[:4])], verbose=0)
    return {"summary": _summary(model, line_length=110), "history": history.history,
            "decoded": decoded, "predictions": model.predict(x, verbose=0)}


def test_ctc_asr_matches_keras():
    expected, got = _both(_ctc_asr)
    _assert_close(got, expected)


# ---------------------------------------------------------------- rl: RLHF demo
class _GridWorld:
    """rlhf_dummy_demo's SimpleEnvironment: move left (0) or right (1), rewarded at the end."""

    def __init__(self, size=3):
        self.size, self.state = size, 0

    def reset(self):
        self.state = 0
        return self.state

    def step(self, action):
        self.state = max(0, self.state - 1) if action == 0 else min(self.size - 1,
                                                                    self.state + 1)
        return self.state, int(self.state == self.size - 1), self.state == self.size - 1


def _rlhf(k):
    """rlhf_dummy_demo (its `jax.value_and_grad` as torch autograd): policy and reward models
    differentiated through `stateless_call` on copies of their trainable variables, episode
    gradients accumulated, clipped and applied with `apply_gradients`."""
    ops, rng = k.ops, np.random.RandomState(0)

    def dense_model(inputs, outputs, activation=None):
        x = k.Input(shape=(inputs,))
        hidden = k.layers.Dense(8, activation="relu")(x)
        return k.Model(inputs=x, outputs=k.layers.Dense(outputs, activation=activation)(hidden))

    def value_and_grad(loss_fn, model, *args):
        params = [v.value.detach().clone().requires_grad_(True)
                  for v in model.trainable_variables]
        loss = loss_fn({"trainable": params,
                        "non_trainable": [v.value for v in model.non_trainable_variables]}, *args)
        return loss.item(), list(torch.autograd.grad(loss, params))

    env = _GridWorld()
    policy_model, reward_model = dense_model(1, 2, "softmax"), dense_model(3, 1)
    policy_optimizer = k.optimizers.Adam(learning_rate=0.001)
    reward_optimizer = k.optimizers.Adam(learning_rate=0.001)

    def policy_loss_fn(params, state_input, action, predicted_reward_value_stopped):
        predictions_tuple = policy_model.stateless_call(params["trainable"],
                                                        params["non_trainable"], state_input)
        selected_action_prob = predictions_tuple[0][0][action]
        return -ops.log(selected_action_prob + 1e-7) * predicted_reward_value_stopped

    def reward_loss_fn(params, reward_model_input, true_reward_val):
        predictions_tuple = reward_model.stateless_call(params["trainable"],
                                                        params["non_trainable"],
                                                        reward_model_input)
        loss = k.losses.mean_squared_error(ops.convert_to_tensor([float(true_reward_val)]),
                                           predictions_tuple[0][0])
        return ops.mean(loss)

    losses = []
    for _ in range(3):
        state, done, steps = env.reset(), False, 0
        policy_grads_accum = [ops.zeros_like(v) for v in policy_model.trainable_variables]
        reward_grads_accum = [ops.zeros_like(v) for v in reward_model.trainable_variables]
        while not done and steps < 6:
            state_input = np.array([state], dtype="float32").reshape(1, -1)
            probs = ops.convert_to_numpy(policy_model(state_input)[0]).astype("float64")
            action = int(rng.choice(2, p=probs / probs.sum()))
            next_state, true_reward, done = env.step(action)
            reward_input = np.concatenate([state_input.flatten(), ops.convert_to_numpy(
                ops.one_hot(action, 2)).flatten()]).reshape(1, -1)
            stopped = ops.stop_gradient(reward_model(reward_input)[0][0])
            policy_loss, policy_grads = value_and_grad(policy_loss_fn, policy_model,
                                                       state_input, action, stopped)
            reward_loss, reward_grads = value_and_grad(reward_loss_fn, reward_model,
                                                       reward_input, true_reward)
            policy_grads_accum = [a + g for a, g in zip(policy_grads_accum, policy_grads)]
            reward_grads_accum = [a + g for a, g in zip(reward_grads_accum, reward_grads)]
            losses.append([policy_loss, reward_loss])
            steps, state = steps + 1, next_state
        policy_optimizer.apply_gradients(zip(
            [ops.clip(g / steps, -1.0, 1.0) for g in policy_grads_accum],
            policy_model.trainable_variables))
        reward_optimizer.apply_gradients(zip(
            [ops.clip(g / steps, -1.0, 1.0) for g in reward_grads_accum],
            reward_model.trainable_variables))
    return {"summaries": [_summary(policy_model), _summary(reward_model)], "losses": losses,
            "weights": policy_model.get_weights() + reward_model.get_weights()}


def test_rlhf_stateless_call_gradients_match_keras():
    expected, got = _both(_rlhf)
    _assert_close(got, expected)


# ---------------------------------------------------------------- recipes: memory-efficient
_USERS = [f"user_{i}" for i in range(12)]
_MOVIES = [f"movie_{i}" for i in range(10)]
_MOVIE_BLOCKS, _BLOCK_DIMS, _BASE_DIM = [_MOVIES[:3], _MOVIES[3:7], _MOVIES[7:]], [8, 4, 2], 8


def _string_embeddings_model(k):
    """memory_efficient_embeddings as written, on string Inputs: a QREmbedding whose `call`
    runs a StringLookup(num_oov_indices=0), an MDEmbedding of per-block StringLookup +
    Embedding Sequentials (its tf.lookup table as a StringLookup and ops.take)."""
    layers, ops = k.layers, k.ops

    def embedding_encoder(vocabulary, embedding_dim, num_oov_indices=0, name=None):
        return k.Sequential([
            layers.StringLookup(vocabulary=vocabulary, mask_token=None,
                                num_oov_indices=num_oov_indices),
            layers.Embedding(input_dim=len(vocabulary) + num_oov_indices,
                             output_dim=embedding_dim)],
            name=f"{name}_embedding" if name else None)

    class QREmbedding(layers.Layer):
        def __init__(self, vocabulary, embedding_dim, num_buckets, name=None):
            super().__init__(name=name)
            self.num_buckets = num_buckets
            self.index_lookup = layers.StringLookup(vocabulary=vocabulary, mask_token=None,
                                                    num_oov_indices=0)
            self.q_embeddings = layers.Embedding(num_buckets, embedding_dim)
            self.r_embeddings = layers.Embedding(num_buckets, embedding_dim)

        def call(self, inputs):
            embedding_index = self.index_lookup(inputs)
            quotient_embedding = self.q_embeddings(
                ops.floor_divide(embedding_index, self.num_buckets))
            remainder_embedding = self.r_embeddings(ops.mod(embedding_index, self.num_buckets))
            return quotient_embedding * remainder_embedding

    class MDEmbedding(layers.Layer):
        def __init__(self, blocks_vocabulary, blocks_embedding_dims, base_embedding_dim,
                     name=None):
            super().__init__(name=name)
            self.num_blocks = len(blocks_vocabulary)
            keys, values = [], []
            for block_idx, block_vocab in enumerate(blocks_vocabulary):
                keys.extend(block_vocab)
                values.extend([block_idx] * len(block_vocab))
            self.vocab_to_index = layers.StringLookup(vocabulary=keys, mask_token=None)
            self.index_to_block = np.array([-1] + values)  # the out-of-vocabulary index: -1
            self.block_embedding_encoders = []
            self.block_embedding_projectors = []
            for vocabulary, embedding_dim in zip(blocks_vocabulary, blocks_embedding_dims):
                self.block_embedding_encoders.append(
                    embedding_encoder(vocabulary, embedding_dim, num_oov_indices=1))
                self.block_embedding_projectors.append(
                    layers.Lambda(lambda x: x) if embedding_dim == base_embedding_dim
                    else layers.Dense(units=base_embedding_dim))

        def call(self, inputs):
            block_indicies = ops.take(self.index_to_block, self.vocab_to_index(inputs))
            embeddings = ops.zeros(shape=(ops.shape(inputs)[0], _BASE_DIM))
            for idx in range(self.num_blocks):
                block_embeddings = self.block_embedding_projectors[idx](
                    self.block_embedding_encoders[idx](inputs))
                mask = ops.expand_dims(ops.cast(block_indicies == idx, "float32"), 1)
                embeddings += block_embeddings * mask
            return embeddings

    user_input = layers.Input(name="user_id", shape=(), dtype="string")
    user_embedding = QREmbedding(_USERS, _BASE_DIM, 4, name="user_embedding")(user_input)
    movie_input = layers.Input(name="movie_id", shape=(), dtype="string")
    movie_embedding = MDEmbedding(_MOVIE_BLOCKS, _BLOCK_DIMS, _BASE_DIM,
                                  name="movie_embedding")(movie_input)
    logits = layers.Dot(axes=1, name="dot_similarity")([user_embedding, movie_embedding])
    return k.Model(inputs=[user_input, movie_input], outputs=k.activations.sigmoid(logits) * 5,
                   name="baseline_model")


def _index_embeddings_model(k):
    """The same model on indices looked up beforehand (Keras' StringLookup needs TensorFlow):
    a user's vocabulary index; a movie's block, then its index in each block (0 when out)."""
    layers, ops = k.layers, k.ops

    class QREmbedding(layers.Layer):
        def __init__(self, embedding_dim, num_buckets, name=None):
            super().__init__(name=name)
            self.num_buckets = num_buckets
            self.q_embeddings = layers.Embedding(num_buckets, embedding_dim)
            self.r_embeddings = layers.Embedding(num_buckets, embedding_dim)

        def call(self, index):
            return self.q_embeddings(ops.floor_divide(index, self.num_buckets)) * \
                self.r_embeddings(ops.mod(index, self.num_buckets))

    class MDEmbedding(layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.encoders, self.projectors = [], []
            for vocabulary, dim in zip(_MOVIE_BLOCKS, _BLOCK_DIMS):
                self.encoders.append(k.Sequential([layers.Embedding(len(vocabulary) + 1, dim)]))
                self.projectors.append(layers.Lambda(lambda x: x) if dim == _BASE_DIM
                                       else layers.Dense(_BASE_DIM))

        def call(self, inputs):
            embeddings = ops.zeros(shape=(ops.shape(inputs)[0], _BASE_DIM))
            for idx, (encoder, projector) in enumerate(zip(self.encoders, self.projectors)):
                mask = ops.expand_dims(ops.cast(inputs[:, 0] == idx, "float32"), 1)
                embeddings += projector(encoder(inputs[:, idx + 1])) * mask
            return embeddings

    user_input = layers.Input(name="user_id", shape=(), dtype="int32")
    movie_input = layers.Input(name="movie_id", shape=(4,), dtype="int32")
    logits = layers.Dot(axes=1, name="dot_similarity")(
        [QREmbedding(_BASE_DIM, 4, name="user_embedding")(user_input),
         MDEmbedding(name="movie_embedding")(movie_input)])
    return k.Model(inputs=[user_input, movie_input], outputs=k.activations.sigmoid(logits) * 5,
                   name="baseline_model")


def _fit_ratings(k, model, x, y):
    """memory_efficient_embeddings' run_experiment, on arrays."""
    model.compile(optimizer=k.optimizers.Adam(0.001), loss=k.losses.MeanSquaredError(),
                  metrics=[k.metrics.MeanAbsoluteError(name="mae")])
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x, y))
    return {"history": history.history, "predictions": model.predict(x, verbose=0),
            "paths": [w.path for w in model.weights]}


def test_memory_efficient_embeddings_on_strings_match_keras_on_indices():
    """Kestrel runs the example on strings (StringLookup inside a layer's `call` traced on a
    string Input); it trains exactly as Keras' model on the looked-up indices."""
    rng = np.random.RandomState(0)
    users = np.array([_USERS[i] for i in rng.randint(0, 12, 16)])
    movies = np.array([_MOVIES[i] for i in rng.randint(0, 10, 16)])
    ratings = rng.uniform(1, 5, 16).astype("float32")
    user_index = np.array([_USERS.index(u) for u in users], dtype="int32")
    movie_index = np.array([
        [next(b for b, block in enumerate(_MOVIE_BLOCKS) if m in block)]
        + [block.index(m) + 1 if m in block else 0 for block in _MOVIE_BLOCKS]
        for m in movies], dtype="int32")
    indices = {"user_id": user_index, "movie_id": movie_index}
    expected = _fit_ratings(keras, _index_embeddings_model(_fresh(keras)), indices, ratings)
    on_indices = _fit_ratings(kestrel, _index_embeddings_model(_fresh(kestrel)), indices,
                              ratings)
    on_strings = _fit_ratings(kestrel, _string_embeddings_model(_fresh(kestrel)),
                              {"user_id": users, "movie_id": movies}, ratings)
    _assert_close(on_indices, expected)
    _assert_close(on_strings, expected)


# ---------------------------------------------------------------- graph: MPNN
def _mpnn_layers(k, batch_size, max_atoms):
    """mpnn-molecular-graphs' layers, with the `compute_output_shape` Keras' torch backend
    needs (its symbolic trace of the message passing fails on the fixed `num_segments`)."""
    layers, ops = k.layers, k.ops

    class EdgeNetwork(layers.Layer):
        def build(self, input_shape):
            self.atom_dim, self.bond_dim = input_shape[0][-1], input_shape[1][-1]
            self.kernel = self.add_weight(shape=(self.bond_dim, self.atom_dim**2),
                                          initializer="glorot_uniform")
            self.bias = self.add_weight(shape=(self.atom_dim**2,), initializer="zeros")

        def call(self, inputs):
            atom_feat, bond_feat, pair_idx = inputs
            bond_transformed = ops.reshape(ops.matmul(bond_feat, self.kernel) + self.bias,
                                           (-1, self.atom_dim, self.atom_dim))
            neighbor_feat = ops.take(atom_feat, ops.cast(pair_idx[:, 1], "int32"), axis=0)
            messages = ops.squeeze(
                ops.matmul(bond_transformed, ops.expand_dims(neighbor_feat, -1)), -1)
            return ops.segment_sum(messages, ops.cast(pair_idx[:, 0], "int32"),
                                   num_segments=batch_size * max_atoms)

    class MessagePassing(layers.Layer):
        def __init__(self, units, steps=4, **kwargs):
            super().__init__(**kwargs)
            self.units, self.steps = units, steps
            self.edge_net = EdgeNetwork()
            self.gru = layers.GRUCell(units)
            self.norm = layers.LayerNormalization()

        def call(self, inputs):
            atom_feat, bond_feat, pair_idx = inputs
            atom_feat = ops.pad(atom_feat,
                                [(0, 0), (0, max(0, self.units - ops.shape(atom_feat)[-1]))])
            for _ in range(self.steps):
                m = self.edge_net([atom_feat, bond_feat, pair_idx])
                atom_feat, _ = self.gru(m, atom_feat)
                atom_feat = self.norm(atom_feat)
            return atom_feat

        def compute_output_shape(self, input_shape):
            return (input_shape[0][0], self.units)

    class GatedReadout(layers.Layer):
        def __init__(self, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.gate = layers.Dense(embed_dim, activation="sigmoid")
            self.feat = layers.Dense(embed_dim, activation="tanh")

        def call(self, inputs):
            nodes, indicator, mask = inputs
            mask = ops.expand_dims(mask, -1)
            gated_x = self.gate(nodes) * self.feat(nodes) * mask
            indicator = ops.cast(indicator, "int32")
            x_mean = ops.segment_sum(gated_x, indicator, num_segments=batch_size) / ops.maximum(
                ops.segment_sum(mask, indicator, num_segments=batch_size), 1e-6)
            x_max = ops.segment_max(gated_x, indicator, num_segments=batch_size)
            return ops.concatenate([x_mean, x_max], axis=-1)

        def compute_output_shape(self, input_shape):
            return (batch_size, 2 * self.gate.units)

    return MessagePassing, GatedReadout


def _mpnn(k):
    """mpnn-molecular-graphs (Keras 3 version): a PyDataset of dict batches, an edge network
    with segment_sum, a GRUCell called on a state tensor, a gated mean/max readout, CosineDecay
    with warmup, AdamW with global_clipnorm, an AUC named "AUC", class weights."""
    layers, ops = k.layers, k.ops
    batch_size, max_atoms, max_bonds, atom_dim, bond_dim = 4, 5, 8, 6, 3
    message_passing, gated_readout = _mpnn_layers(k, batch_size, max_atoms)
    rng = np.random.RandomState(0)

    def graph():
        atoms = rng.randint(2, max_atoms + 1)
        atom_features = np.zeros((max_atoms, atom_dim), "float32")
        atom_features[:atoms] = rng.rand(atoms, atom_dim)
        mask = np.zeros((max_atoms,), "float32")
        mask[:atoms] = 1
        return (atom_features, rng.rand(max_bonds, bond_dim).astype("float32"),
                rng.randint(0, atoms, (max_bonds, 2)).astype("int32"), mask)

    graphs, labels = [graph() for _ in range(10)], rng.randint(0, 2, 10)

    class MPNNDataset(k.utils.PyDataset):
        def __init__(self, data, labels, batch_size=64, **kwargs):
            super().__init__(**kwargs)
            self.data, self.labels, self.batch_size = data, labels, batch_size

        def __len__(self):
            return int(np.ceil(len(self.data) / self.batch_size))

        def __getitem__(self, idx):
            batch = range(idx * self.batch_size, min((idx + 1) * self.batch_size, len(self.data)))
            a = np.zeros((self.batch_size, max_atoms, atom_dim), dtype="float32")
            b = np.zeros((self.batch_size, max_bonds, bond_dim), dtype="float32")
            p = np.zeros((self.batch_size, max_bonds, 2), dtype="int32")
            m = np.zeros((self.batch_size, max_atoms), dtype="float32")
            y = np.zeros((self.batch_size, 1), dtype="float32")
            for i, real_idx in enumerate(batch):
                a[i], b[i], p[i], m[i] = self.data[real_idx]
                y[i] = self.labels[real_idx]
                p[i] += i * max_atoms
            indicator = np.repeat(np.arange(self.batch_size), max_atoms)
            return {"atom_features": ops.convert_to_tensor(a.reshape(-1, atom_dim)),
                    "bond_features": ops.convert_to_tensor(b.reshape(-1, bond_dim)),
                    "pair_indices": ops.convert_to_tensor(p.reshape(-1, 2)),
                    "molecule_indicator": ops.convert_to_tensor(indicator, dtype="int32"),
                    "mask": ops.convert_to_tensor(m.reshape(-1))}, ops.convert_to_tensor(y)

    a_in = layers.Input(shape=(atom_dim,), name="atom_features")
    b_in = layers.Input(shape=(bond_dim,), name="bond_features")
    p_in = layers.Input(shape=(2,), dtype="int32", name="pair_indices")
    i_in = layers.Input(shape=(), dtype="int32", name="molecule_indicator")
    m_in = layers.Input(shape=(), name="mask")
    x = message_passing(8, steps=2)([a_in, b_in, p_in])
    x = gated_readout(8)([x, i_in, m_in])
    x = layers.Dense(16, activation="relu", kernel_regularizer=k.regularizers.l2(1e-3))(x)
    outputs = layers.Dense(1, activation="sigmoid")(layers.Dropout(0.5)(x))
    mpnn = k.Model(inputs=[a_in, b_in, p_in, i_in, m_in], outputs=outputs)
    schedule = k.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=batch_size * 2, warmup_target=1e-3,
        warmup_steps=batch_size)
    mpnn.compile(loss="binary_crossentropy", metrics=[k.metrics.AUC(name="AUC")],
                 optimizer=k.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-3,
                                              global_clipnorm=0.5))
    valid = MPNNDataset(graphs[8:], labels[8:], batch_size=batch_size)
    history = mpnn.fit(MPNNDataset(graphs[:8], labels[:8], batch_size=batch_size),
                       validation_data=valid, epochs=2, verbose=0, class_weight={0: 2.0, 1: 0.5})
    return {"history": history.history, "predictions": mpnn.predict(valid, verbose=0),
            "summary": _summary(mpnn), "paths": [v.path for v in mpnn.weights]}


def test_mpnn_matches_keras_and_untraceable_layers_build_in_their_scope():
    """Keras builds a layer without `build` by tracing its `call` even where it defines
    `compute_output_shape`; where that trace fails (warning), the first run builds the
    sublayers under the layer's name (`message_passing/gru_cell/...`), as here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn that the trace failed
        expected, got = _both(_mpnn)
    _assert_close(got, expected)
    assert "message_passing/gru_cell/kernel" in got["paths"]


def test_compute_output_shape_layer_builds_its_sublayers_when_called_symbolically():
    def build(k):
        class Outer(k.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.dense = k.layers.Dense(3)

            def call(self, x):
                return self.dense(x)

            def compute_output_shape(self, input_shape):
                return (input_shape[0], 3)

        inputs = k.Input((4,))
        return k.Model(inputs, Outer()(inputs))

    expected, got = _both(build)
    assert [w.path for w in got.weights] == [w.path for w in expected.weights] == [
        "outer/dense/kernel", "outer/dense/bias"]


# ---------------------------------------------------------------- audio: speaker recognition
def _speaker_recognition(k, tmp_path):
    """speaker_recognition_using_cnn: `audio_to_fft` (tf.signal.fft as ops.fft), residual
    Conv1D blocks with MaxPool1D, EarlyStopping and ModelCheckpoint to an .h5 file on
    val_accuracy, evaluate, then the checkpoint loaded back."""
    layers, ops = k.layers, k.ops

    def audio_to_fft(audio):
        audio = ops.squeeze(audio, axis=-1)
        real, imag = ops.fft((audio, ops.zeros_like(audio)))
        fft = ops.expand_dims(ops.sqrt(real**2 + imag**2), axis=-1)
        return ops.abs(fft[:, : (audio.shape[1] // 2), :])

    def residual_block(x, filters, conv_num=3, activation="relu"):
        s = layers.Conv1D(filters, 1, padding="same")(x)
        for _ in range(conv_num - 1):
            x = layers.Activation(activation)(layers.Conv1D(filters, 3, padding="same")(x))
        x = layers.Add()([layers.Conv1D(filters, 3, padding="same")(x), s])
        return layers.MaxPool1D(pool_size=2, strides=2)(layers.Activation(activation)(x))

    inputs = layers.Input(shape=(24, 1), name="input")
    x = residual_block(residual_block(inputs, 4, 2), 8, 3)
    x = layers.Flatten()(layers.AveragePooling1D(pool_size=3, strides=3)(x))
    x = layers.Dense(16, activation="relu")(x)
    outputs = layers.Dense(3, activation="softmax", name="output")(x)
    model = k.models.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer="Adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.RandomState(0)
    ffts = ops.convert_to_numpy(audio_to_fft(rng.uniform(-1, 1, (12, 48, 1)).astype("float32")))
    labels = rng.randint(0, 3, 12)
    path = tmp_path / f"{k.__name__}_model.h5"
    history = model.fit(ffts[:8], labels[:8], epochs=2, batch_size=4, verbose=0,
                        validation_data=(ffts[8:], labels[8:]), callbacks=[
                            k.callbacks.EarlyStopping(patience=10, restore_best_weights=True),
                            k.callbacks.ModelCheckpoint(path, monitor="val_accuracy",
                                                        save_best_only=True)])
    loaded = k.models.load_model(path)
    layer_table = _summary(loaded).split(" Total params")[0]
    return {"ffts": ffts, "summary": _summary(model), "history": history.history,
            "evaluate": model.evaluate(ffts[8:], labels[8:], verbose=0),
            "loaded": loaded.predict(ffts, verbose=0), "loaded_layers": layer_table}


def test_speaker_recognition_matches_keras(tmp_path):
    """The loaded checkpoints' layers and predictions agree; their optimizers do not: Keras
    builds the restored optimizer on the model's own (empty) variable list, fails to set the
    saved state and starts afresh, while Kestrel restores the saved slots."""
    expected, got = _both(_speaker_recognition, tmp_path)
    _assert_close(got, expected)


# ---------------------------------------------------------------- rl: DDPG
def _ddpg(k, tmp_path):
    """ddpg_pendulum: actor and critic functionals with BatchNormalization, `outputs *
    upper_bound` on a KerasTensor, a RandomUniform last layer, an Ornstein-Uhlenbeck noise
    policy, critic then actor updates, soft target updates assigning over `.variables`
    (moving statistics included), then `save_weights("pendulum_actor.h5")`."""
    layers, ops = k.layers, k.ops
    num_states, upper_bound, gamma, tau = 3, 2.0, 0.99, 0.005
    rng = np.random.RandomState(0)

    class OUActionNoise:
        def __init__(self, mean, std_deviation, theta=0.15, dt=1e-2, x_initial=None):
            self.theta, self.mean, self.std_dev = theta, mean, std_deviation
            self.dt, self.x_initial = dt, x_initial
            self.reset()

        def __call__(self):
            x = (self.x_prev + self.theta * (self.mean - self.x_prev) * self.dt
                 + self.std_dev * np.sqrt(self.dt) * rng.normal(size=self.mean.shape))
            self.x_prev = x
            return x

        def reset(self):
            self.x_prev = self.x_initial if self.x_initial is not None else np.zeros_like(
                self.mean)

    def dense_bn(units, x):
        return layers.BatchNormalization()(layers.Dense(units, activation="relu")(x))

    def get_actor():
        last_init = k.initializers.RandomUniform(minval=-0.003, maxval=0.003)
        inputs = layers.Input(shape=(num_states,))
        out = dense_bn(16, dense_bn(16, inputs))
        outputs = layers.Dense(1, activation="tanh", kernel_initializer=last_init)(out)
        return k.Model(inputs, outputs * upper_bound)

    def get_critic():
        state_input, action_input = layers.Input(shape=(num_states,)), layers.Input(shape=(1,))
        concat = layers.Concatenate()([dense_bn(8, state_input), dense_bn(8, action_input)])
        return k.Model([state_input, action_input], layers.Dense(1)(dense_bn(16, concat)))

    actor_model, critic_model, target_actor, target_critic = (
        get_actor(), get_critic(), get_actor(), get_critic())
    target_actor.set_weights(actor_model.get_weights())
    target_critic.set_weights(critic_model.get_weights())
    critic_optimizer, actor_optimizer = k.optimizers.Adam(0.002), k.optimizers.Adam(0.001)

    def update(state_batch, action_batch, reward_batch, next_state_batch):
        critic_model.zero_grad()
        y = reward_batch + gamma * target_critic([next_state_batch,
                                                  target_actor(next_state_batch)])
        critic_loss = ops.mean(ops.square(y - critic_model([state_batch, action_batch])))
        _apply_grads(critic_optimizer, critic_loss, critic_model.trainable_variables)
        actor_model.zero_grad()
        actor_loss = -ops.mean(critic_model([state_batch, actor_model(state_batch)]))
        _apply_grads(actor_optimizer, actor_loss, actor_model.trainable_variables)
        return [critic_loss.item(), actor_loss.item()]

    def update_target(target_weights, weights, tau):
        for (a, b) in zip(target_weights, weights):
            a.assign(b * tau + a * (1 - tau))

    def policy(state, noise_object):
        sampled_actions = ops.convert_to_numpy(ops.squeeze(actor_model(state))) + noise_object()
        return [np.squeeze(np.clip(sampled_actions, -upper_bound, upper_bound))]

    ou_noise = OUActionNoise(mean=np.zeros(1), std_deviation=0.2 * np.ones(1))
    states = rng.rand(10, num_states).astype("float32")
    replay_buffer, losses = {"state": [], "action": [], "reward": [], "next": []}, []
    for t in range(8):
        action = policy(ops.expand_dims(ops.convert_to_tensor(states[t]), 0), ou_noise)
        for key, value in zip(replay_buffer, (states[t], action, [float(t % 3)], states[t + 1])):
            replay_buffer[key].append(value)
        indices = rng.choice(len(replay_buffer["state"]), 4)
        losses.append(update(*[ops.cast(np.array([column[i] for i in indices]), "float32")
                               for column in replay_buffer.values()]))
        update_target(target_actor.variables, actor_model.variables, tau)
        update_target(target_critic.variables, critic_model.variables, tau)
    try:
        actor_model.save_weights(tmp_path / f"{k.__name__}_pendulum_actor.h5")
        error = None
    except ValueError as raised:
        error = str(raised)
    return {"actions": [float(a[0]) for a in replay_buffer["action"]], "losses": losses,
            "target_critic": target_critic.get_weights(), "summary": _summary(critic_model),
            "variables": [v.path for v in target_actor.variables]}, error, actor_model


def test_ddpg_matches_keras_and_saves_keras2_h5_weights(tmp_path):
    """Keras 3 refuses `save_weights` to a plain `.h5` name; Kestrel writes the Keras 2
    layout there (tf.keras scripts use it), which loads back."""
    (expected, keras_error, _), (got, kestrel_error, actor) = _both(_ddpg, tmp_path)
    _assert_close(got, expected)
    assert keras_error.startswith("The filename must end in `.weights.h5`")
    assert kestrel_error is None
    restored = kestrel.models.clone_model(actor)
    restored.load_weights(tmp_path / "kestrel_pendulum_actor.h5")
    _assert_close(restored.get_weights(), actor.get_weights())


# ---------------------------------------------------------------- graph: node2vec
def _node2vec(k):
    """node2vec_movielens' skip-gram model: dict Inputs of shape (), one regularized Embedding
    shared by target and context, Dot(axes=1); fit with per-example weights, then the
    embeddings' cosine top-k (tf.linalg / tf.math as keras.ops)."""
    layers, ops = k.layers, k.ops
    inputs = {"target": layers.Input(name="target", shape=(), dtype="int32"),
              "context": layers.Input(name="context", shape=(), dtype="int32")}
    embed_item = layers.Embedding(input_dim=12, output_dim=6, embeddings_initializer="he_normal",
                                  embeddings_regularizer=k.regularizers.l2(1e-6),
                                  name="item_embeddings")
    logits = layers.Dot(axes=1, normalize=False, name="dot_similarity")(
        [embed_item(inputs["target"]), embed_item(inputs["context"])])
    model = k.Model(inputs=inputs, outputs=logits)
    model.compile(optimizer=k.optimizers.Adam(0.001),
                  loss=k.losses.BinaryCrossentropy(from_logits=True))
    rng = np.random.RandomState(0)
    history = model.fit({"target": rng.randint(0, 12, 32), "context": rng.randint(0, 12, 32)},
                        rng.randint(0, 2, 32), sample_weight=rng.randint(1, 4, 32), batch_size=8,
                        epochs=2, verbose=0, shuffle=False)
    movie_embeddings = model.get_layer("item_embeddings").get_weights()[0]
    similarities = ops.matmul(ops.normalize(movie_embeddings[:3]),
                              ops.transpose(ops.normalize(movie_embeddings)))
    _, indices = ops.top_k(similarities, k=5)
    return {"history": history.history, "embeddings": movie_embeddings,
            "top_k": ops.convert_to_numpy(indices), "summary": _summary(model),
            "losses": [loss.item() for loss in model.losses],
            "input_layers": list(model.get_config()["input_layers"].items())}


def test_node2vec_matches_keras():
    """Also: a dict-input model's config lists `input_layers` in the dict's own order."""
    expected, got = _both(_node2vec)
    _assert_close(got, expected)
    assert [name for name, _ in got["input_layers"]] == ["target", "context"]


# ---------------------------------------------------------------- rl: DQN CartPole
def _dqn_cartpole(k, as_written):
    """deep_q_network_cartpole: Q-values from eager model calls fed to NumPy (`np.argmax`,
    `np.amax`, `np.array(model(x))`), one `fit` per replayed batch. As written, NumPy meets a
    tensor that requires grad, which torch refuses in both libraries; with convert_to_numpy
    the runs agree."""
    layers, ops = k.layers, k.ops
    to_numpy = (lambda t: t) if as_written else ops.convert_to_numpy
    rng = np.random.RandomState(42)
    inputs = layers.Input(shape=(4,))
    hidden = layers.Dense(8, activation="relu")(layers.Dense(8, activation="relu")(inputs))
    model = k.Model(inputs=inputs, outputs=layers.Dense(2, activation="linear")(hidden))
    model.compile(loss=k.losses.MeanSquaredError(), optimizer=k.optimizers.Adam(0.01))

    def q_values(state):
        return to_numpy(model(ops.expand_dims(ops.convert_to_tensor(state), 0))[0])

    states, epsilon, losses = rng.rand(13, 4).astype("float32"), 1.0, []
    history = {"action": [], "state": [], "next": [], "reward": [], "done": []}
    for t in range(12):
        action = np.argmax(q_values(states[t]))
        if epsilon > rng.rand(1)[0]:
            action = rng.choice(2)
        epsilon = max(0.01, epsilon * 0.9)
        done = t % 5 == 4
        for key, value in zip(history, (action, states[t], states[t + 1],
                                        -1 if done else 1.0, done)):
            history[key].append(value)
        if len(history["done"]) > 4:
            indices = rng.choice(range(len(history["state"])), size=4)
            samples = {key: np.take(value, indices, axis=0) for key, value in history.items()}
            updated_q_values = []
            for state, state_next, reward, sampled_done, sampled_action in zip(
                    samples["state"], samples["next"], samples["reward"], samples["done"],
                    samples["action"]):
                q_update = reward if sampled_done else reward + 0.99 * np.amax(
                    q_values(state_next))
                q_value = np.array(q_values(state))
                q_value[sampled_action] = q_update
                updated_q_values.append(q_value)
            fitted = model.fit(ops.convert_to_tensor(samples["state"]),
                               ops.convert_to_tensor(updated_q_values), verbose=0)
            losses.append(fitted.history["loss"])
    return {"losses": losses, "weights": model.get_weights()}


def test_dqn_cartpole_matches_keras():
    expected, got = _both(_dqn_cartpole, False)
    _assert_close(got, expected)
    errors = []
    for k in (keras, kestrel):
        try:
            _dqn_cartpole(_fresh(k), True)
        except RuntimeError as error:
            errors.append(str(error))
    assert len(errors) == 2 and errors[0] == errors[1]
    assert errors[0].startswith("Can't call numpy() on Tensor that requires grad")


# ---------------------------------------------------------------- recipes: async ensemble
def _async_ensemble(k):
    """asynch_ensemble_shared_session (tf.identity / tf.stack / tf.reduce_mean as an Identity
    layer and keras.ops): member models cut from a shared graph at an intermediate tensor,
    each compiled and fit on its own, then the averaging ensemble that shares their layers."""
    layers, ops = k.layers, k.ops

    def keras_model(x):
        x = layers.MaxPooling2D((2, 2))(layers.Conv2D(4, (3, 3), activation="relu")(x))
        x = layers.Dense(8, activation="relu")(layers.Flatten()(x))
        return layers.Softmax()(layers.Dense(3, activation="softmax")(x))

    inputs = k.Input(shape=(8, 8, 3))
    model_list, output_list = [], []
    for _ in range(3):
        input_i = layers.Identity()(inputs)
        output_i = keras_model(input_i)
        model_list.append(k.Model(inputs=input_i, outputs=output_i))
        output_list.append(output_i)
    ensemble = k.Model(inputs=inputs, outputs=ops.mean(ops.stack(output_list, axis=-1), axis=-1))
    ensemble.compile(loss="categorical_crossentropy", optimizer="adam")
    rng = np.random.RandomState(0)
    x = rng.rand(8, 8, 8, 3).astype("float32")
    y = k.utils.to_categorical(rng.randint(0, 3, 8), 3)
    histories = []
    for model_i in model_list:
        model_i.compile(loss="categorical_crossentropy", optimizer="adam")
        histories.append(model_i.fit(x=x, y=y, batch_size=4, epochs=1, verbose=0).history)
    return {"histories": histories, "ensemble": ensemble.predict(x, batch_size=4, verbose=0),
            "members": [m.predict(x, verbose=0) for m in model_list],
            "summaries": [_summary(ensemble), _summary(model_list[0])]}


def test_async_ensemble_matches_keras():
    expected, got = _both(_async_ensemble)
    _assert_close(got, expected)
