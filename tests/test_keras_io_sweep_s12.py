"""keras-core's keras.io examples and guides not replayed elsewhere, condensed (tiny random data,
one or two epochs): the same code runs with Kestrel and, where Keras 3 can run it on the torch
backend, with real Keras; histories, predictions, summaries and weight paths agree.
"""
import math
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _both(replay):
    """`replay(lib)` run with real Keras, then with Kestrel, each in a fresh seeded session."""
    return replay(_fresh(keras)), replay(_fresh(kestrel))


def _assert_close(got, expected, rtol=1e-4, atol=1e-5):
    """Nested dicts / lists / tuples of numbers and strings agree (numbers approximately)."""
    if isinstance(expected, dict):
        assert sorted(got) == sorted(expected)
        for key in expected:
            _assert_close(got[key], expected[key], rtol, atol)
    elif isinstance(expected, (list, tuple)) and any(isinstance(e, (str, dict, list, tuple))
                                                     for e in expected):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _assert_close(g, e, rtol, atol)
    elif isinstance(expected, str):
        assert got == expected
    else:
        np.testing.assert_allclose(np.asarray(got, dtype="float64"),
                                   np.asarray(expected, dtype="float64"), rtol=rtol, atol=atol)


def _summary_text(model) -> str:
    printed = []
    model.summary(print_fn=lambda text, **_: printed.append(text))
    return "\n".join(printed).rstrip("\n")


# ---------------------------------------------------------------- guides
def _mnist_mlp(k):
    inputs = k.Input(shape=(784,), name="digits")
    x1 = k.layers.Dense(64, activation="relu")(inputs)
    x2 = k.layers.Dense(64, activation="relu")(x1)
    return k.Model(inputs=inputs, outputs=k.layers.Dense(10, name="predictions")(x2))


def _custom_training_loop_in_torch(k):
    """The guide's loops: a torch optimizer on `model.parameters()`, then Keras' optimizer
    applied to `v.value.grad`, a metric, and `add_loss` summed into the loss."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 784)).astype("float32")
    y = k.utils.to_categorical(rng.integers(0, 10, 64))
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False)
    model = _mnist_mlp(k)
    torch_optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch_loss = torch.nn.CrossEntropyLoss()
    losses = []
    for inputs, targets in loader:
        loss = torch_loss(model(inputs), targets)
        model.zero_grad()
        loss.backward()
        torch_optimizer.step()
        losses.append(float(loss.detach().numpy()))

    class ActivityRegularizationLayer(k.layers.Layer):
        def call(self, inputs):
            self.add_loss(1e-2 * torch.sum(inputs))
            return inputs

    inputs = k.Input(shape=(784,), name="digits")
    hidden = ActivityRegularizationLayer()(k.layers.Dense(64, activation="relu")(inputs))
    hidden = k.layers.Dense(64, activation="relu")(hidden)
    model = k.Model(inputs, k.layers.Dense(10, name="predictions")(hidden))
    optimizer = k.optimizers.Adam(learning_rate=1e-3)
    loss_fn = k.losses.CategoricalCrossentropy(from_logits=True)
    accuracy = k.metrics.CategoricalAccuracy()
    accuracies = []
    for _ in range(2):
        for inputs, targets in loader:
            logits = model(inputs)
            loss = loss_fn(targets, logits)
            if model.losses:
                loss = loss + torch.sum(*model.losses)
            model.zero_grad()
            trainable_weights = [v for v in model.trainable_weights]
            loss.backward()
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                optimizer.apply(gradients, trainable_weights)
            accuracy.update_state(targets, logits)
            losses.append(float(loss.detach().numpy()))
        accuracies.append(float(accuracy.result()))
        accuracy.reset_state()
    return losses, accuracies


def test_writing_a_custom_training_loop_in_torch():
    expected, got = _both(_custom_training_loop_in_torch)
    _assert_close(got, expected)
    assert all(math.isfinite(v) for v in got[0])


def _custom_train_step_model(k, base):
    """The guide's CustomModel: compute_loss with sample weights, then its own test_step."""

    class CustomModel(base):
        def train_step(self, data):
            if len(data) == 3:
                x, y, sample_weight = data
            else:
                sample_weight = None
                x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    return CustomModel


def _custom_train_step_in_torch(k):
    rng = np.random.default_rng(0)
    x, y, sample_weight = rng.random((64, 32)), rng.random((64, 1)), rng.random((64, 1))
    inputs = k.Input(shape=(32,))
    model = _custom_train_step_model(k, k.Model)(inputs, k.layers.Dense(1)(inputs))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    plain = model.fit(x, y, epochs=2, verbose=0).history
    weighted = model.fit(x, y, sample_weight=sample_weight, epochs=1, verbose=0).history
    evaluated = model.evaluate(x, y, verbose=0)

    class OwnTrackers(k.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = k.metrics.Mean(name="loss")
            self.mae_metric = k.metrics.MeanAbsoluteError(name="mae")
            self.loss_fn = k.losses.MeanSquaredError()

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            self.loss_tracker.update_state(loss)
            self.mae_metric.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae_metric]

    inputs = k.Input(shape=(32,))
    own = OwnTrackers(inputs, k.layers.Dense(1)(inputs))
    own.compile(optimizer="adam")
    return plain, weighted, evaluated, own.fit(x, y, epochs=2, verbose=0).history


def test_custom_train_step_in_torch():
    expected, got = _both(_custom_train_step_in_torch)
    _assert_close(got, expected)
    assert got[0]["loss"][1] < got[0]["loss"][0]


def test_custom_train_step_in_torch_gan_on_a_dataloader():
    """The guide's GAN: `compile` overridden, two optimizers, a torch DataLoader of
    `(images, images)` whose batch the step unpacks with `isinstance(data, tuple)` (Keras 3
    hands it the DataLoader's list, which the keras-core guide's code does not unpack, so
    only Kestrel runs it)."""
    k, layers = _fresh(kestrel), kestrel.layers
    discriminator = k.Sequential([
        k.Input(shape=(28, 28, 1)),
        layers.Conv2D(8, (3, 3), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.GlobalMaxPooling2D(), layers.Dense(1)], name="discriminator")
    latent_dim = 16
    generator = k.Sequential([
        k.Input(shape=(latent_dim,)), layers.Dense(7 * 7 * 8), layers.LeakyReLU(negative_slope=0.2),
        layers.Reshape((7, 7, 8)),
        layers.Conv2DTranspose(8, (4, 4), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(8, (4, 4), strides=(2, 2), padding="same"),
        layers.Conv2D(1, (7, 7), padding="same", activation="sigmoid")], name="generator")

    class GAN(k.Model):
        def __init__(self, discriminator, generator, latent_dim):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.latent_dim = latent_dim
            self.d_loss_tracker = k.metrics.Mean(name="d_loss")
            self.g_loss_tracker = k.metrics.Mean(name="g_loss")
            self.seed_generator = k.random.SeedGenerator(1337)
            self.built = True

        @property
        def metrics(self):
            return [self.d_loss_tracker, self.g_loss_tracker]

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.loss_fn = loss_fn

        def train_step(self, real_images):
            if isinstance(real_images, tuple):
                real_images = real_images[0]
            batch_size = real_images.shape[0]
            latents = k.random.normal(shape=(batch_size, self.latent_dim),
                                      seed=self.seed_generator)
            combined = torch.concat([self.generator(latents), real_images], axis=0)
            labels = torch.concat([torch.ones((batch_size, 1)), torch.zeros((batch_size, 1))],
                                  axis=0)
            labels += 0.05 * k.random.uniform(labels.shape, seed=self.seed_generator)
            self.zero_grad()
            d_loss = self.loss_fn(labels, self.discriminator(combined))
            d_loss.backward()
            grads = [v.value.grad for v in self.discriminator.trainable_weights]
            with torch.no_grad():
                self.d_optimizer.apply(grads, self.discriminator.trainable_weights)
            latents = k.random.normal(shape=(batch_size, self.latent_dim),
                                      seed=self.seed_generator)
            self.zero_grad()
            predictions = self.discriminator(self.generator(latents))
            g_loss = self.loss_fn(torch.zeros((batch_size, 1)), predictions)
            g_loss.backward()
            grads = [v.value.grad for v in self.generator.trainable_weights]
            with torch.no_grad():
                self.g_optimizer.apply(grads, self.generator.trainable_weights)
            self.d_loss_tracker.update_state(d_loss)
            self.g_loss_tracker.update_state(g_loss)
            return {"d_loss": self.d_loss_tracker.result(),
                    "g_loss": self.g_loss_tracker.result()}

    digits = torch.from_numpy(np.random.default_rng(0).random((16, 28, 28, 1), dtype="float32"))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(digits, digits),
                                         batch_size=8, shuffle=True)
    gan = GAN(discriminator=discriminator, generator=generator, latent_dim=latent_dim)
    gan.compile(d_optimizer=k.optimizers.Adam(learning_rate=0.0003),
                g_optimizer=k.optimizers.Adam(learning_rate=0.0003),
                loss_fn=k.losses.BinaryCrossentropy(from_logits=True))
    before = [w.numpy() for w in generator.trainable_weights]
    history = gan.fit(loader, epochs=2, verbose=0).history
    assert sorted(history) == ["d_loss", "g_loss"] and len(history["d_loss"]) == 2
    assert all(math.isfinite(v) for v in history["d_loss"] + history["g_loss"])
    assert all(not np.array_equal(b, w.numpy())
               for b, w in zip(before, generator.trainable_weights))
    assert int(gan.d_optimizer.iterations) == int(gan.g_optimizer.iterations) == 4


def _making_new_layers_and_models_via_subclassing(k):
    ops, layers = k.ops, k.layers
    found = {}

    class Linear(k.layers.Layer):
        def __init__(self, units=32, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer="random_normal", trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer="random_normal",
                                     trainable=True)

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

        def get_config(self):
            config = super().get_config()
            config.update({"units": self.units})
            return config

    linear = Linear(4)
    found["linear"] = ops.convert_to_numpy(linear(ops.ones((2, 2)))).tolist()
    assert linear.weights == [linear.w, linear.b]
    config = Linear(64).get_config()
    found["config"] = (config, Linear.from_config(config).units)

    class ComputeSum(k.layers.Layer):
        def __init__(self, input_dim):
            super().__init__()
            self.total = self.add_weight(initializer="zeros", shape=(input_dim,), trainable=False)

        def call(self, inputs):
            self.total.assign_add(ops.sum(inputs, axis=0))
            return self.total

    my_sum = ComputeSum(2)
    my_sum(ops.ones((2, 2)))
    found["sum"] = (my_sum(ops.ones((2, 2))).numpy().tolist(), len(my_sum.weights),
                    len(my_sum.non_trainable_weights), len(my_sum.trainable_weights))

    class MLPBlock(k.layers.Layer):
        def __init__(self):
            super().__init__()
            self.linear_1, self.linear_2, self.linear_3 = Linear(32), Linear(32), Linear(1)

        def call(self, inputs):
            x = k.activations.relu(self.linear_1(inputs))
            x = k.activations.relu(self.linear_2(x))
            return self.linear_3(x)

    mlp = MLPBlock()
    found["mlp"] = (tuple(mlp(ops.ones(shape=(3, 64))).shape), len(mlp.weights),
                    len(mlp.trainable_weights))

    class ActivityRegularizationLayer(k.layers.Layer):
        def __init__(self, rate=1e-2):
            super().__init__()
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * ops.mean(inputs))
            return inputs

    class OuterLayer(k.layers.Layer):
        def __init__(self):
            super().__init__()
            self.activity_reg = ActivityRegularizationLayer(1e-2)

        def call(self, inputs):
            return self.activity_reg(inputs)

    layer = OuterLayer()
    counts = [len(layer.losses)]
    for _ in range(2):
        layer(ops.zeros((1, 1)))
        counts.append(len(layer.losses))
    found["loss_counts"] = counts
    regularized = k.layers.Dense(32, kernel_regularizer=k.regularizers.l2(1e-3))
    regularized(ops.zeros((1, 1)))
    found["kernel_penalty"] = [float(loss.detach()) for loss in regularized.losses]
    inputs = k.Input(shape=(3,))
    model = k.Model(inputs, ActivityRegularizationLayer()(inputs))
    rng = np.random.default_rng(0)
    model.compile(optimizer="adam", loss="mse")
    with_loss = model.fit(rng.random((2, 3)), rng.random((2, 3)), verbose=0).history
    model.compile(optimizer="adam")
    only_added = model.fit(rng.random((2, 3)), rng.random((2, 3)), verbose=0).history
    found["fits"] = (with_loss, only_added)

    class Sampling(layers.Layer):
        def call(self, inputs):
            z_mean, z_log_var = inputs
            epsilon = k.random.normal(shape=(ops.shape(z_mean)[0], ops.shape(z_mean)[1]))
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    class Encoder(layers.Layer):
        def __init__(self, latent_dim=32, intermediate_dim=64, name="encoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
            self.dense_mean = layers.Dense(latent_dim)
            self.dense_log_var = layers.Dense(latent_dim)
            self.sampling = Sampling()

        def call(self, inputs):
            x = self.dense_proj(inputs)
            z_mean, z_log_var = self.dense_mean(x), self.dense_log_var(x)
            return z_mean, z_log_var, self.sampling((z_mean, z_log_var))

    class Decoder(layers.Layer):
        def __init__(self, original_dim, intermediate_dim=64, name="decoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
            self.dense_output = layers.Dense(original_dim, activation="sigmoid")

        def call(self, inputs):
            return self.dense_output(self.dense_proj(inputs))

    class VariationalAutoEncoder(k.Model):
        def __init__(self, original_dim, intermediate_dim=64, latent_dim=32, name="autoencoder",
                     **kwargs):
            super().__init__(name=name, **kwargs)
            self.encoder = Encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim)
            self.decoder = Decoder(original_dim, intermediate_dim=intermediate_dim)

        def call(self, inputs):
            z_mean, z_log_var, z = self.encoder(inputs)
            self.add_loss(-0.5 * ops.mean(z_log_var - ops.square(z_mean) - ops.exp(z_log_var) + 1))
            return self.decoder(z)

    images = rng.random((64, 784)).astype("float32")
    vae = VariationalAutoEncoder(784, 64, 32)
    vae.compile(k.optimizers.Adam(learning_rate=1e-3), loss=k.losses.MeanSquaredError())
    found["vae"] = vae.fit(images, images, epochs=2, batch_size=32, verbose=0).history
    found["vae_paths"] = [w.path for w in vae.weights]
    return found


def test_making_new_layers_and_models_via_subclassing():
    expected, got = _both(_making_new_layers_and_models_via_subclassing)
    _assert_close(got, expected)
    assert got["loss_counts"] == [0, 1, 1]
    assert got["vae"]["loss"][1] < got["vae"]["loss"][0]


# ---------------------------------------------------------------- pytorch
def _torchvision_keras(k):
    """A torch backbone (a small stand-in for torchvision's ResNet18: conv, BatchNorm, head)
    in a TorchModuleWrapper under a Keras head, trained on a DataLoader with a scheduled Adam
    and a best-only weights checkpoint that is loaded back."""
    torch.manual_seed(0)
    backbone_module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 8))
    # Keras 3 needs the output shape to call the wrapper on a symbolic input
    backbone = k.layers.TorchModuleWrapper(backbone_module, output_shape=(None, 8))
    backbone.trainable = True
    inputs = k.Input(shape=(3, 16, 16))
    x = k.layers.Dropout(0.5)(backbone(inputs))
    outputs = k.activations.softmax(k.layers.Dense(3)(x), axis=1)
    model = k.Model(inputs, outputs, name="ResNet18_Classifier")
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((16, 3, 16, 16), dtype="float32"))
    labels = torch.from_numpy(rng.integers(0, 3, 16))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels),
                                         batch_size=8)
    schedule = k.optimizers.schedules.ExponentialDecay(initial_learning_rate=1e-3,
                                                       decay_steps=2, decay_rate=0.1)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=k.optimizers.Adam(schedule),
                  metrics=["accuracy"])
    return model, backbone_module, loader, images


def test_torchvision_keras(tmp_path):
    results = []
    for lib in (keras, kestrel):
        model, _, loader, images = _torchvision_keras(_fresh(lib))
        path = str(tmp_path / f"{lib.__name__}.weights.h5")
        checkpoint = lib.callbacks.ModelCheckpoint(filepath=path, monitor="val_loss",
                                                   save_best_only=True, save_weights_only=True)
        history = model.fit(loader, validation_data=loader, epochs=2, callbacks=[checkpoint],
                            verbose=0).history
        model.load_weights(path)
        evaluated = model.evaluate(loader, verbose=0)
        predicted = lib.ops.argmax(model(images[:4]).detach(), axis=1).to("cpu").numpy()
        results.append((history, evaluated, predicted.tolist(),
                        [(w.path, w.trainable) for w in model.trainable_weights]))
    _assert_close(results[1], results[0])


def test_torch_module_wrapper_weights_have_the_keras_variable_api():
    """The torch guides' `[v.value.grad for v in model.trainable_weights]` and Keras' weight
    paths work on a wrapped module's parameters, which stay the module's own tensors."""
    model, module, loader, _ = _torchvision_keras(_fresh(kestrel))
    parameters = list(module.parameters())
    assert [w is p for w, p in zip(model.trainable_weights, parameters)] == [True] * 6
    assert [w.path for w in model.trainable_weights[:6]] == \
        ["variable"] + [f"variable_{i}" for i in range(1, 6)]
    assert [w.path for w in model.non_trainable_weights] == \
        ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    torch_optimizer = torch.optim.SGD(module.parameters(), lr=0.1)  # holds the same tensors
    images, labels = next(iter(loader))
    loss = kestrel.losses.sparse_categorical_crossentropy(labels, model(images, training=True))
    model.zero_grad()
    loss.mean().backward()
    grads = [v.value.grad for v in model.trainable_weights]
    assert all(g is not None for g in grads)
    before = parameters[0].detach().clone()
    torch_optimizer.step()
    assert not torch.equal(before, module[0].weight.detach())
    module[1].running_mean.assign(np.ones(4, "float32"))
    np.testing.assert_array_equal(module[1].running_mean.numpy(), np.ones(4))


# ---------------------------------------------------------------- vision
def _mnist_convnet(k):
    layers = k.layers
    rng = np.random.default_rng(0)
    x = rng.random((20, 28, 28, 1), dtype="float32")
    y = k.utils.to_categorical(rng.integers(0, 10, 20), 10)
    model = k.Sequential([
        k.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=9, epochs=2, validation_split=0.1, verbose=0).history
    return _summary_text(model), history, model.evaluate(x, y, verbose=0)


def test_mnist_convnet():
    expected, got = _both(_mnist_convnet)
    _assert_close(got, expected)


def _siamese_contrastive(k):
    ops = k.ops
    rng = np.random.default_rng(0)
    x_1, x_2 = rng.random((2, 12, 16, 16), dtype="float32")  # pairs without a channel axis
    labels = (rng.random(12) > 0.5).astype("float32")

    def euclidean_distance(vects):
        x, y = vects
        sum_square = ops.sum(ops.square(x - y), axis=1, keepdims=True)
        return ops.sqrt(ops.maximum(sum_square, k.backend.epsilon()))

    image = k.layers.Input((16, 16, 1))
    x = k.layers.BatchNormalization()(image)
    x = k.layers.Conv2D(4, (5, 5), activation="tanh")(x)
    x = k.layers.AveragePooling2D(pool_size=(2, 2))(x)
    x = k.layers.Conv2D(16, (5, 5), activation="tanh")(x)
    x = k.layers.AveragePooling2D(pool_size=(2, 2))(x)
    x = k.layers.BatchNormalization()(k.layers.Flatten()(x))
    embedding_network = k.Model(image, k.layers.Dense(10, activation="tanh")(x))
    input_1, input_2 = k.layers.Input((16, 16, 1)), k.layers.Input((16, 16, 1))
    merged = k.layers.Lambda(euclidean_distance, output_shape=(1,))(
        [embedding_network(input_1), embedding_network(input_2)])
    output = k.layers.Dense(1, activation="sigmoid")(k.layers.BatchNormalization()(merged))
    siamese = k.Model(inputs=[input_1, input_2], outputs=output)

    def loss(margin=1):
        def contrastive_loss(y_true, y_pred):
            square_pred = ops.square(y_pred)
            margin_square = ops.square(ops.maximum(margin - (y_pred), 0))
            return ops.mean((1 - y_true) * square_pred + (y_true) * margin_square)
        return contrastive_loss

    siamese.compile(loss=loss(margin=1), optimizer="RMSprop", metrics=["accuracy"])
    history = siamese.fit([x_1, x_2], labels, validation_data=([x_1, x_2], labels),
                          batch_size=6, epochs=2, verbose=0).history
    predictions = siamese.predict([x_1, x_2], verbose=0)
    shown = ops.concatenate([x_1[0], x_2[0]], axis=1)  # what `visualize` plots
    return (_summary_text(siamese), history, siamese.evaluate([x_1, x_2], labels, verbose=0),
            predictions.tolist(), list(shown.shape))


def test_siamese_contrastive():
    expected, got = _both(_siamese_contrastive)
    _assert_close(got, expected)


def _gradient_centralization(k):
    """Augmentation layers on a batch, a Sequential given `input_shape`, a timing callback, and
    a recompile with an RMSprop subclass (its `get_gradients` is never called by Keras 3)."""
    layers, ops = k.layers, k.ops
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 16, 16, 3)).astype("float32")
    targets = rng.integers(0, 2, 8)
    batch = layers.Rescaling(1.0 / 255)(images)
    for augment in [layers.RandomFlip("horizontal_and_vertical"), layers.RandomRotation(0.3),
                    layers.RandomZoom(0.2)]:
        batch = augment(batch)
    batch = ops.convert_to_numpy(batch)
    model = k.Sequential([
        layers.Conv2D(4, (3, 3), activation="relu", input_shape=(16, 16, 3)),
        layers.MaxPooling2D(2, 2),
        layers.Conv2D(8, (3, 3), activation="relu"), layers.Dropout(0.5),
        layers.MaxPooling2D(2, 2), layers.Flatten(), layers.Dropout(0.5),
        layers.Dense(16, activation="relu"), layers.Dense(1, activation="sigmoid")])

    class GCRMSprop(k.optimizers.RMSprop):
        def get_gradients(self, loss, params):
            grads = []
            for grad in super().get_gradients():
                if len(grad.shape) > 1:
                    grad -= ops.mean(grad, axis=list(range(len(grad.shape) - 1)),
                                     keep_dims=True)
                grads.append(grad)
            return grads

    class TimeHistory(k.callbacks.Callback):
        def on_train_begin(self, logs={}):
            self.times = []

        def on_epoch_end(self, batch, logs={}):
            self.times.append(batch)

    histories = []
    for optimizer in (k.optimizers.RMSprop(learning_rate=1e-4), GCRMSprop(learning_rate=1e-4)):
        timer = TimeHistory()
        model.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
        histories.append((model.fit(batch, targets, batch_size=4, epochs=2, verbose=0,
                                    callbacks=[timer]).history, timer.times))
    return float(batch.mean()), float(batch.std()), histories, _summary_text(model)


def test_gradient_centralization():
    expected, got = _both(_gradient_centralization)
    _assert_close(got, expected)


# ---------------------------------------------------------------- structured data
def _collaborative_filtering_movielens(k):
    layers, ops = k.layers, k.ops

    class RecommenderNet(k.Model):
        def __init__(self, num_users, num_movies, embedding_size, **kwargs):
            super().__init__(**kwargs)
            self.user_embedding = layers.Embedding(
                num_users, embedding_size, embeddings_initializer="he_normal",
                embeddings_regularizer=k.regularizers.l2(1e-6))
            self.user_bias = layers.Embedding(num_users, 1)
            self.movie_embedding = layers.Embedding(
                num_movies, embedding_size, embeddings_initializer="he_normal",
                embeddings_regularizer=k.regularizers.l2(1e-6))
            self.movie_bias = layers.Embedding(num_movies, 1)

        def call(self, inputs):
            user_vector = self.user_embedding(inputs[:, 0])
            user_bias = self.user_bias(inputs[:, 0])
            movie_vector = self.movie_embedding(inputs[:, 1])
            movie_bias = self.movie_bias(inputs[:, 1])
            x = ops.tensordot(user_vector, movie_vector, 2) + user_bias + movie_bias
            return ops.nn.sigmoid(x)

    rng = np.random.default_rng(0)
    pairs = np.stack([rng.integers(0, 10, 64), rng.integers(0, 20, 64)], 1)
    ratings = rng.random(64)
    model = RecommenderNet(10, 20, 8)
    model.compile(loss=k.losses.BinaryCrossentropy(),
                  optimizer=k.optimizers.Adam(learning_rate=0.001))
    history = model.fit(x=pairs, y=ratings, batch_size=16, epochs=2, verbose=0,
                        validation_data=(pairs[:16], ratings[:16])).history
    user_movie_array = np.hstack(([[3]] * 5, [[i] for i in range(5)]))
    predicted = model.predict(user_movie_array, verbose=0).flatten()
    return history, predicted.tolist(), len(model.losses)


def test_collaborative_filtering_movielens():
    expected, got = _both(_collaborative_filtering_movielens)
    _assert_close(got, expected)
    assert got[2] == 2  # the two embedding regularizers


_CATEGORIES = {"workclass": ["a", "b", "c"], "education": ["x", "y"]}
_NUMERIC = ["age", "hours_per_week"]


def _deep_neural_decision_forests(k, data, targets):
    layers, ops = k.layers, k.ops
    np.random.seed(0)  # the trees sample their features with NumPy

    def create_model_inputs():
        return {name: layers.Input(name=name, shape=(),
                                   dtype="float32" if name in _NUMERIC else "int32")
                for name in _NUMERIC + list(_CATEGORIES)}

    def encode_inputs(inputs):
        encoded = []
        for name in inputs:
            if name in _CATEGORIES:
                size = len(_CATEGORIES[name])
                embedding = layers.Embedding(input_dim=size, output_dim=int(math.sqrt(size)))
                encoded.append(embedding(inputs[name]))
            else:
                feature = inputs[name]
                if inputs[name].shape[-1] is None:
                    feature = k.ops.expand_dims(feature, -1)
                encoded.append(feature)
        return layers.concatenate(encoded)

    class NeuralDecisionTree(k.Model):
        def __init__(self, depth, num_features, used_features_rate, num_classes):
            super().__init__()
            self.depth = depth
            self.num_leaves = 2**depth
            num_used = int(num_features * used_features_rate)
            chosen = np.random.choice(np.arange(num_features), num_used, replace=False)
            self.used_features_mask = ops.convert_to_tensor(np.eye(num_features)[chosen],
                                                            dtype="float32")
            self.pi = self.add_weight(initializer="random_normal",
                                      shape=[self.num_leaves, num_classes], dtype="float32",
                                      trainable=True)
            self.decision_fn = layers.Dense(units=self.num_leaves, activation="sigmoid",
                                            name="decision")

        def call(self, features):
            batch_size = ops.shape(features)[0]
            features = ops.matmul(features, ops.transpose(self.used_features_mask))
            decisions = ops.expand_dims(self.decision_fn(features), axis=2)
            decisions = layers.concatenate([decisions, 1 - decisions], axis=2)
            mu = ops.ones([batch_size, 1, 1])
            begin_idx, end_idx = 1, 2
            for level in range(self.depth):
                mu = ops.tile(ops.reshape(mu, [batch_size, -1, 1]), (1, 1, 2))
                mu = mu * decisions[:, begin_idx:end_idx, :]
                begin_idx, end_idx = end_idx, end_idx + 2 ** (level + 1)
            mu = ops.reshape(mu, [batch_size, self.num_leaves])
            return ops.matmul(mu, k.activations.softmax(self.pi))

    class NeuralDecisionForest(k.Model):
        def __init__(self, num_trees, depth, num_features, used_features_rate, num_classes):
            super().__init__()
            self.ensemble = []
            for _ in range(num_trees):
                self.ensemble.append(NeuralDecisionTree(depth, num_features, used_features_rate,
                                                        num_classes))

        def call(self, inputs):
            outputs = ops.zeros([ops.shape(inputs)[0], 2])
            for tree in self.ensemble:
                outputs += tree(inputs)
            outputs /= len(self.ensemble)
            return outputs

    results = []
    for forest in (False, True):
        inputs = create_model_inputs()
        features = layers.BatchNormalization()(encode_inputs(inputs))
        num_features = features.shape[1]
        head = NeuralDecisionForest(3, 2, num_features, 0.5, 2) if forest else \
            NeuralDecisionTree(3, num_features, 1.0, 2)
        model = k.Model(inputs=inputs, outputs=head(features))
        model.compile(optimizer=k.optimizers.Adam(learning_rate=0.01),
                      loss=k.losses.SparseCategoricalCrossentropy(),
                      metrics=[k.metrics.SparseCategoricalAccuracy()])
        history = model.fit(data, targets, batch_size=16, epochs=2, verbose=0).history
        results.append((num_features, history, model.evaluate(data, targets, verbose=0),
                        [w.path for w in model.weights]))
    return results


def test_deep_neural_decision_forests():
    """The features are encoded with Kestrel's StringLookup (Keras' needs TensorFlow), then
    both train the same tree and forest models on them."""
    rng = np.random.default_rng(0)
    raw = {name: rng.choice(vocabulary, 32) for name, vocabulary in _CATEGORIES.items()}
    data = {name: rng.random(32, dtype="float32") for name in _NUMERIC}
    for name, vocabulary in _CATEGORIES.items():
        lookup = kestrel.layers.StringLookup(vocabulary=vocabulary, mask_token=None,
                                             num_oov_indices=0)
        data[name] = kestrel.ops.convert_to_numpy(lookup(raw[name]))
        np.testing.assert_array_equal(data[name], [vocabulary.index(v) for v in raw[name]])
    targets = rng.integers(0, 2, 32)
    expected = _deep_neural_decision_forests(_fresh(keras), data, targets)
    got = _deep_neural_decision_forests(_fresh(kestrel), data, targets)
    _assert_close(got, expected)


def _attention_mil_classification(k, tmp_path):
    """Bags of instances through shared layers, an attention layer returning a list (built
    from `input_shape[0]`), class weights, early stopping, a best-only checkpoint, and a model
    reading the attention layer's list output."""
    layers, ops = k.layers, k.ops

    class MILAttentionLayer(layers.Layer):
        def __init__(self, weight_params_dim, kernel_initializer="glorot_uniform",
                     kernel_regularizer=None, use_gated=False, **kwargs):
            super().__init__(**kwargs)
            self.weight_params_dim = weight_params_dim
            self.use_gated = use_gated
            self.kernel_initializer = k.initializers.get(kernel_initializer)
            self.kernel_regularizer = k.regularizers.get(kernel_regularizer)

        def build(self, input_shape):
            input_dim = input_shape[0][1]
            self.v_weight_params = self.add_weight(
                shape=(input_dim, self.weight_params_dim), initializer=self.kernel_initializer,
                name="v", regularizer=self.kernel_regularizer, trainable=True)
            self.w_weight_params = self.add_weight(
                shape=(self.weight_params_dim, 1), initializer=self.kernel_initializer,
                name="w", regularizer=self.kernel_regularizer, trainable=True)
            self.u_weight_params = self.add_weight(
                shape=(input_dim, self.weight_params_dim), initializer=self.kernel_initializer,
                name="u", regularizer=self.kernel_regularizer, trainable=True)
            self.input_built = True

        def call(self, inputs):
            instances = ops.stack([self.compute_attention_scores(i) for i in inputs])
            alpha = ops.softmax(instances, axis=0)
            return [alpha[i] for i in range(alpha.shape[0])]

        def compute_attention_scores(self, instance):
            scores = ops.tanh(ops.tensordot(instance, self.v_weight_params, axes=1))
            scores = scores * ops.sigmoid(ops.tensordot(instance, self.u_weight_params, axes=1))
            return ops.tensordot(scores, self.w_weight_params, axes=1)

    bag_size = 3
    dense_1, dense_2 = layers.Dense(16, activation="relu"), layers.Dense(8, activation="relu")
    inputs, embeddings = [], []
    for _ in range(bag_size):
        instance = layers.Input((8, 8))
        inputs.append(instance)
        embeddings.append(dense_2(dense_1(layers.Flatten()(instance))))
    alpha = MILAttentionLayer(weight_params_dim=12, kernel_regularizer=k.regularizers.L2(0.01),
                              use_gated=True, name="alpha")(embeddings)
    weighted = [layers.multiply([alpha[i], embeddings[i]]) for i in range(len(alpha))]
    output = layers.Dense(2, activation="softmax")(layers.concatenate(weighted, axis=1))
    model = k.Model(inputs, output)
    rng = np.random.default_rng(0)
    bags = list(rng.random((bag_size, 12, 8, 8)))
    labels = rng.integers(0, 2, (12, 1))
    negatives, positives = int((labels == 0).sum()), int((labels == 1).sum())
    class_weight = {0: (negatives + positives) / 2 / negatives,
                    1: (negatives + positives) / 2 / positives}
    path = str(tmp_path / f"{k.__name__}_best_model.weights.h5")
    callbacks = [k.callbacks.EarlyStopping(monitor="val_loss", patience=10, mode="min"),
                 k.callbacks.ModelCheckpoint(path, monitor="val_loss", verbose=0, mode="min",
                                             save_best_only=True, save_weights_only=True)]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(bags, labels, validation_data=(bags, labels), epochs=2,
                        class_weight=class_weight, batch_size=4, callbacks=callbacks,
                        verbose=0).history
    model.load_weights(path)
    intermediate = k.Model(model.input, model.get_layer("alpha").output)
    attention = np.squeeze(np.swapaxes(intermediate.predict(bags, verbose=0), 1, 0))
    return (history, model.predict(bags, verbose=0).tolist(), attention.tolist(),
            model.evaluate(bags, labels, verbose=0), [w.path for w in model.weights],
            len(model.losses))


def test_attention_mil_classification(tmp_path):
    expected = _attention_mil_classification(_fresh(keras), tmp_path)
    got = _attention_mil_classification(_fresh(kestrel), tmp_path)
    _assert_close(got, expected)
    assert np.asarray(got[2]).shape == (12, 3)


def _learnable_resizer(k):
    """The learnable resizer (reusing one LeakyReLU, the default argument of `conv_block`,
    and `Resizing` on inputs of unknown size) called directly on an image, as the example
    visualizes it, then under a small stand-in for its DenseNet121 backbone in `fit`."""
    layers, ops = k.layers, k.ops
    target_size = (16, 16)

    def conv_block(x, filters, kernel_size, strides, activation=layers.LeakyReLU(0.2)):
        x = layers.Conv2D(filters, kernel_size, strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        if activation:
            x = activation(x)
        return x

    def res_block(x):
        inputs = x
        x = conv_block(x, 4, 3, 1)
        x = conv_block(x, 4, 3, 1, activation=None)
        return layers.Add()([inputs, x])

    inputs = layers.Input(shape=[None, None, 3])
    naive_resize = layers.Resizing(*target_size, interpolation="bilinear")(inputs)
    x = layers.LeakyReLU(0.2)(layers.Conv2D(filters=4, kernel_size=7, padding="same")(inputs))
    x = layers.LeakyReLU(0.2)(layers.Conv2D(filters=4, kernel_size=1, padding="same")(x))
    bottleneck = layers.Resizing(*target_size)(layers.BatchNormalization()(x))
    x = res_block(bottleneck)
    x = layers.Conv2D(filters=4, kernel_size=3, padding="same", use_bias=False)(x)
    x = layers.Add()([bottleneck, layers.BatchNormalization()(x)])
    x = layers.Conv2D(filters=3, kernel_size=7, padding="same")(x)
    resizer = k.Model(inputs, layers.Add()([naive_resize, x]), name="learnable_resizer")
    rng = np.random.default_rng(0)
    images = (rng.random((4, 24, 24, 3)) * 255).astype("float32")
    # Keras runs the BatchNormalization layers after a Resizing in training mode here
    resized = ops.convert_to_numpy(ops.squeeze(resizer(images[0][None, ...] / 255)))
    moving_means = [np.asarray(layer.moving_mean).tolist() for layer in resizer.layers
                    if isinstance(layer, layers.BatchNormalization)]
    backbone = k.Sequential([layers.Conv2D(4, 3, strides=2), layers.GlobalAveragePooling2D(),
                             layers.Dense(2, activation="softmax")], name="backbone")
    image = layers.Input((24, 24, 3))
    model = k.Model(image, backbone(resizer(layers.Rescaling(scale=1.0 / 255)(image))))
    model.compile(loss=k.losses.CategoricalCrossentropy(label_smoothing=0.1), optimizer="sgd",
                  metrics=["accuracy"])
    targets = k.utils.to_categorical(rng.integers(0, 2, 4), 2)
    history = model.fit(images, targets, validation_data=(images, targets), batch_size=2,
                        epochs=1, verbose=0).history
    return resized.tolist(), moving_means, history, [layer.name for layer in resizer.layers]


def test_learnable_resizer():
    expected, got = _both(_learnable_resizer)
    _assert_close(got, expected)
    assert np.asarray(got[0]).shape == (16, 16, 3)
    # the BatchNormalization before the first Resizing ran keeps its statistics, the later ones
    # trained on the image
    assert [bool(np.any(np.asarray(mean) != 0)) for mean in got[1]] == [False, True, True, True]


def _training_defaults_in_direct_calls(k):
    """Layers called with no `training`: in Keras the first layer whose `call` has a non-None
    default (True: image preprocessing; False: dropout) hands it to the layers after it within
    the outermost call; in a model's graph each such layer uses its own (its node holds it)."""
    layers = k.layers
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
    found = {}
    stacks = {
        "resize_then_bn": lambda: [layers.Resizing(4, 4), layers.BatchNormalization()],
        "bn_resize_bn": lambda: [layers.BatchNormalization(), layers.Resizing(4, 4),
                                 layers.BatchNormalization()],
        "flip_then_dropout": lambda: [layers.RandomFlip(seed=1), layers.Dropout(0.5, seed=2)],
        "dropout_flip_bn": lambda: [layers.Dropout(0.5, seed=2), layers.RandomFlip(seed=1),
                                    layers.BatchNormalization()],
        "pipeline_then_bn": lambda: [layers.Pipeline([layers.RandomFlip(seed=1)]),
                                     layers.BatchNormalization()],
    }
    for name, stack in stacks.items():
        model = k.Sequential([k.Input((8, 8, 3))] + stack())
        output = k.ops.convert_to_numpy(model(x))
        found[name] = (np.abs(output).sum(), [np.asarray(layer.moving_mean).tolist()
                                              for layer in model.layers
                                              if isinstance(layer, layers.BatchNormalization)])

    class TrainsByDefault(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dropout = layers.Dropout(0.5, seed=7)

        def call(self, x, training=True):
            return self.dropout(x)

    class Outer(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.first, self.flip = layers.Dropout(0.5, seed=3), layers.RandomFlip(seed=4)
            self.inner, self.norm = TrainsByDefault(), layers.BatchNormalization()

        def call(self, x):
            return self.norm(self.inner(self.flip(self.first(x))))  # the first default holds

    outer = Outer()
    found["eager_first_default"] = (k.ops.convert_to_numpy(outer(x)).tolist(),
                                    np.asarray(outer.norm.moving_mean).tolist())
    model = k.Sequential([k.Input((8, 8, 3)), layers.Resizing(4, 4), layers.BatchNormalization()])
    model(x)
    found["next_call_starts_afresh"] = k.ops.convert_to_numpy(model.layers[-1](x)).tolist()
    found["predict"] = model.predict(x, verbose=0).tolist()
    return found


def test_training_defaults_in_direct_calls_as_keras():
    expected, got = _both(_training_defaults_in_direct_calls)
    _assert_close(got, expected)
    assert np.any(np.asarray(got["resize_then_bn"][1]) != 0)


def test_torch_train_flag_still_trains_without_a_claimed_default():
    """Torch's `model.train()` keeps Dropout after a layer with a default active (Kestrel's
    module flags), and the mode of a direct call ends with it."""
    k = _fresh(kestrel)
    model = k.Sequential([k.Input((64,)), k.layers.Dense(64, kernel_initializer="ones"),
                          k.layers.Dropout(0.5)])
    x = torch.ones(8, 64)
    assert torch.equal(model(x), model(x)) and not model.training
    model.train()
    assert (model(x) == 0).any() and model.training
    model.eval()
    resizing = k.Sequential([k.Input((8, 8, 3)), k.layers.Resizing(4, 4),
                             k.layers.BatchNormalization()])
    resizing(torch.rand(2, 8, 8, 3))
    assert not resizing.training and not any(layer.training for layer in resizing.modules())


# ---------------------------------------------------------------- time series
def _timeseries_classification_transformer(k):
    layers = k.layers

    def transformer_encoder(inputs, head_size, num_heads, ff_dim, dropout=0):
        x = layers.MultiHeadAttention(key_dim=head_size, num_heads=num_heads,
                                      dropout=dropout)(inputs, inputs)
        x = layers.Dropout(dropout)(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        res = x + inputs
        x = layers.Conv1D(filters=ff_dim, kernel_size=1, activation="relu")(res)
        x = layers.Dropout(dropout)(x)
        x = layers.Conv1D(filters=inputs.shape[-1], kernel_size=1)(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        return x + res

    inputs = k.Input(shape=(20, 1))
    x = inputs
    for _ in range(2):
        x = transformer_encoder(x, head_size=8, num_heads=2, ff_dim=4, dropout=0.25)
    x = layers.GlobalAveragePooling1D(data_format="channels_first")(x)
    x = layers.Dropout(0.4)(layers.Dense(16, activation="relu")(x))
    model = k.Model(inputs, layers.Dense(2, activation="softmax")(x))
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=k.optimizers.Adam(learning_rate=1e-4),
                  metrics=["sparse_categorical_accuracy"])
    rng = np.random.default_rng(0)
    series = rng.normal(size=(20, 20, 1))
    labels = rng.integers(0, 2, 20)
    callbacks = [k.callbacks.EarlyStopping(patience=10, restore_best_weights=True)]
    history = model.fit(series, labels, validation_split=0.2, epochs=2, batch_size=8,
                        callbacks=callbacks, verbose=0).history
    return _summary_text(model), history, model.evaluate(series, labels, verbose=0)


def test_timeseries_classification_transformer():
    expected, got = _both(_timeseries_classification_transformer)
    _assert_close(got, expected)


def _timeseries_classification_from_scratch(k, tmp_path):
    """Conv1D / BatchNormalization blocks, a best `.keras` checkpoint, ReduceLROnPlateau and
    EarlyStopping, then the checkpoint loaded back and evaluated."""
    x = input_layer = k.layers.Input((20, 1))
    for _ in range(3):
        x = k.layers.Conv1D(filters=8, kernel_size=3, padding="same")(x)
        x = k.layers.ReLU()(k.layers.BatchNormalization()(x))
    gap = k.layers.GlobalAveragePooling1D()(x)
    model = k.models.Model(inputs=input_layer,
                           outputs=k.layers.Dense(2, activation="softmax")(gap))
    path = str(tmp_path / f"{k.__name__}_best_model.keras")
    callbacks = [
        k.callbacks.ModelCheckpoint(path, save_best_only=True, monitor="val_loss"),
        k.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1,
                                      min_lr=0.0001),
        k.callbacks.EarlyStopping(monitor="val_loss", patience=50, verbose=0),
    ]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["sparse_categorical_accuracy"])
    rng = np.random.default_rng(0)
    series, labels = rng.normal(size=(16, 20, 1)), rng.integers(0, 2, 16)
    history = model.fit(series, labels, batch_size=8, epochs=2, callbacks=callbacks,
                        validation_split=0.2, verbose=0).history
    reloaded = k.models.load_model(path)
    return history, reloaded.evaluate(series, labels, verbose=0), \
        [w.path for w in reloaded.weights]


def test_timeseries_classification_from_scratch(tmp_path):
    expected = _timeseries_classification_from_scratch(_fresh(keras), tmp_path)
    got = _timeseries_classification_from_scratch(_fresh(kestrel), tmp_path)
    _assert_close(got, expected)
    assert "learning_rate" in got[0]


# ---------------------------------------------------------------- vision transformers
def _cct(k):
    """Compact convolutional transformer: a tokenizer holding a Sequential built by `add`, a
    position embedding added with `+=` to a KerasTensor, stochastic depth, sequence pooling,
    AdamW with label smoothing and top-5 accuracy."""
    layers, ops = k.layers, k.ops

    class CCTTokenizer(layers.Layer):
        def __init__(self, kernel_size=3, stride=1, padding=1, pooling_kernel_size=3,
                     pooling_stride=2, num_output_channels=(8, 16), **kwargs):
            super().__init__(**kwargs)
            self.conv_model = k.Sequential()
            for channels in num_output_channels:
                self.conv_model.add(layers.Conv2D(channels, kernel_size, stride, padding="valid",
                                                  use_bias=False, activation="relu",
                                                  kernel_initializer="he_normal"))
                self.conv_model.add(layers.ZeroPadding2D(padding))
                self.conv_model.add(layers.MaxPooling2D(pooling_kernel_size, pooling_stride,
                                                        "same"))

        def call(self, images):
            outputs = self.conv_model(images)
            return ops.reshape(outputs, (-1, ops.shape(outputs)[1] * ops.shape(outputs)[2],
                                         ops.shape(outputs)[-1]))

    class PositionEmbedding(layers.Layer):
        def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
            super().__init__(**kwargs)
            self.sequence_length = int(sequence_length)
            self.initializer = k.initializers.get(initializer)

        def get_config(self):
            config = super().get_config()
            config.update({"sequence_length": self.sequence_length,
                           "initializer": k.initializers.serialize(self.initializer)})
            return config

        def build(self, input_shape):
            self.position_embeddings = self.add_weight(
                name="embeddings", shape=[self.sequence_length, input_shape[-1]],
                initializer=self.initializer, trainable=True)
            super().build(input_shape)

        def call(self, inputs, start_index=0):
            shape = ops.shape(inputs)
            embeddings = ops.slice(ops.convert_to_tensor(self.position_embeddings),
                                   (start_index, 0), (shape[-2], shape[-1]))
            return ops.broadcast_to(embeddings, shape)

        def compute_output_shape(self, input_shape):
            return input_shape

    class SequencePooling(layers.Layer):
        def __init__(self):
            super().__init__()
            self.attention = layers.Dense(1)

        def call(self, x):
            weights = ops.transpose(ops.softmax(self.attention(x), axis=1), axes=(0, 2, 1))
            return ops.squeeze(ops.matmul(weights, x), -2)

    class StochasticDepth(layers.Layer):
        def __init__(self, drop_prop, **kwargs):
            super().__init__(**kwargs)
            self.drop_prob = drop_prop

        def call(self, x, training=None):
            if training:
                keep_prob = 1 - self.drop_prob
                shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
                random_tensor = ops.floor(keep_prob + k.random.uniform(shape, 0, 1))
                return (x / keep_prob) * random_tensor
            return x

    augmentation = k.Sequential([layers.Rescaling(scale=1.0 / 255),
                                 layers.RandomCrop(16, 16), layers.RandomFlip("horizontal")],
                                name="data_augmentation")
    inputs = layers.Input((16, 16, 3))
    encoded_patches = CCTTokenizer()(augmentation(inputs))
    encoded_patches += PositionEmbedding(sequence_length=encoded_patches.shape[1])(
        encoded_patches)
    for rate in np.linspace(0, 0.1, 2):
        x1 = layers.LayerNormalization(epsilon=1e-5)(encoded_patches)
        attention = layers.MultiHeadAttention(num_heads=2, key_dim=16, dropout=0.1)(x1, x1)
        x2 = layers.Add()([StochasticDepth(rate)(attention), encoded_patches])
        x3 = layers.LayerNormalization(epsilon=1e-5)(x2)
        for units in (16, 16):
            x3 = layers.Dropout(0.1)(layers.Dense(units, activation=ops.gelu)(x3))
        encoded_patches = layers.Add()([StochasticDepth(rate)(x3), x2])
    representation = layers.LayerNormalization(epsilon=1e-5)(encoded_patches)
    model = k.Model(inputs=inputs, outputs=layers.Dense(10)(SequencePooling()(representation)))
    model.compile(optimizer=k.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001),
                  loss=k.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                  metrics=[k.metrics.CategoricalAccuracy(name="accuracy"),
                           k.metrics.TopKCategoricalAccuracy(5, name="top-5-accuracy")])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 16, 16, 3)).astype("float32")
    targets = k.utils.to_categorical(rng.integers(0, 10, 12), 10)
    history = model.fit(images, targets, batch_size=4, epochs=1, validation_split=0.25,
                        verbose=0).history
    return (_summary_text(model), history, model.evaluate(images, targets, verbose=0),
            model.predict(images[:2], verbose=0).tolist())


def test_cct():
    expected, got = _both(_cct)
    _assert_close(got, expected)


def _eanet(k):
    """External attention: patches from `ops.image.extract_patches`, a patch embedding adding a
    position Embedding of `ops.arange`, Lambda and Softmax(axis=2) layers on 4-D tensors, and a
    Normalization layer adapted inside the augmentation Sequential."""
    layers, ops = k.layers, k.ops
    rng = np.random.default_rng(0)
    images = rng.random((12, 8, 8, 3)).astype("float32")
    targets = k.utils.to_categorical(rng.integers(0, 5, 12), 5)
    augmentation = k.Sequential([layers.Normalization(), layers.RandomFlip("horizontal"),
                                 layers.RandomRotation(factor=0.1),
                                 layers.RandomContrast(factor=0.1),
                                 layers.RandomZoom(height_factor=0.2, width_factor=0.2)],
                                name="data_augmentation")
    augmentation.layers[0].adapt(images)

    class PatchExtract(layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def call(self, x):
            batch, channels = ops.shape(x)[0], ops.shape(x)[-1]
            x = ops.image.extract_patches(x, self.patch_size)
            return ops.reshape(x, (batch, -1, self.patch_size * self.patch_size * channels))

    class PatchEmbedding(layers.Layer):
        def __init__(self, num_patch, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_patch = num_patch
            self.proj = layers.Dense(embed_dim)
            self.pos_embed = layers.Embedding(input_dim=num_patch, output_dim=embed_dim)

        def call(self, patch):
            pos = ops.arange(start=0, stop=self.num_patch, step=1)
            return self.proj(patch) + self.pos_embed(pos)

    def external_attention(x, dim, num_heads, dim_coefficient=4, attention_dropout=0,
                           projection_dropout=0):
        _, num_patch, channel = x.shape
        num_heads = num_heads * dim_coefficient
        x = layers.Dense(dim * dim_coefficient)(x)
        x = ops.reshape(x, (-1, num_patch, num_heads, dim * dim_coefficient // num_heads))
        x = ops.transpose(x, axes=[0, 2, 1, 3])
        attn = layers.Softmax(axis=2)(layers.Dense(dim // dim_coefficient)(x))
        attn = layers.Lambda(lambda attn: ops.divide(
            attn, ops.convert_to_tensor(1e-9) + ops.sum(attn, axis=-1, keepdims=True)))(attn)
        attn = layers.Dropout(attention_dropout)(attn)
        x = layers.Dense(dim * dim_coefficient // num_heads)(attn)
        x = ops.reshape(ops.transpose(x, axes=[0, 2, 1, 3]), [-1, num_patch, dim * dim_coefficient])
        return layers.Dropout(projection_dropout)(layers.Dense(dim)(x))

    inputs = layers.Input(shape=(8, 8, 3))
    x = PatchEmbedding(16, 16)(PatchExtract(2)(augmentation(inputs)))
    for attention_type in ("external_attention", "self_attention"):
        residual = x
        x = layers.LayerNormalization(epsilon=1e-5)(x)
        if attention_type == "external_attention":
            x = external_attention(x, 16, 2, 4, 0.2, 0.2)
        else:
            x = layers.MultiHeadAttention(num_heads=2, key_dim=16, dropout=0.2)(x, x)
        x = layers.add([x, residual])
        residual = x
        x = layers.Dense(16, activation=ops.gelu)(layers.LayerNormalization(epsilon=1e-5)(x))
        x = layers.add([layers.Dropout(0.2)(layers.Dense(16)(layers.Dropout(0.2)(x))), residual])
    x = layers.GlobalAveragePooling1D()(x)
    model = k.Model(inputs=inputs, outputs=layers.Dense(5, activation="softmax")(x))
    model.compile(loss=k.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  optimizer=k.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001),
                  metrics=[k.metrics.CategoricalAccuracy(name="accuracy"),
                           k.metrics.TopKCategoricalAccuracy(5, name="top-5-accuracy")])
    history = model.fit(images, targets, batch_size=4, epochs=1, validation_split=0.25,
                        verbose=0).history
    return _summary_text(model), history, model.evaluate(images, targets, verbose=0)


def test_eanet():
    expected, got = _both(_eanet)
    _assert_close(got, expected)


# ---------------------------------------------------------------- distributed (torch)
def _distributed_training_with_torch(k):
    """The guide's per-device function on one CPU process (in the gloo process group of one
    the test opens): a DistributedSampler, and the Keras model wrapped in
    DistributedDataParallel, trained by a torch loop (Adam on `model.parameters()`,
    CrossEntropyLoss)."""
    def get_model():
        inputs = k.Input(shape=(12, 12, 1))
        x = k.layers.Rescaling(1.0 / 255.0)(inputs)
        x = k.layers.Conv2D(filters=4, kernel_size=3, padding="same", use_bias=False)(x)
        x = k.layers.ReLU()(k.layers.BatchNormalization(scale=False, center=True)(x))
        x = k.layers.Conv2D(filters=6, kernel_size=6, use_bias=False, strides=2)(x)
        x = k.layers.ReLU()(k.layers.BatchNormalization(scale=False, center=True)(x))
        x = k.layers.Conv2D(filters=8, kernel_size=6, padding="same", strides=2,
                            name="large_k")(x)
        x = k.layers.ReLU()(k.layers.BatchNormalization(scale=False, center=True)(x))
        x = k.layers.GlobalAveragePooling2D()(x)
        x = k.layers.Dropout(0.5)(k.layers.Dense(16, activation="relu")(x))
        return k.Model(inputs, k.layers.Dense(10)(x))

    rng = np.random.default_rng(0)
    images = (rng.random((32, 12, 12, 1)) * 255).astype("float32")
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(images),
                                             torch.from_numpy(rng.integers(0, 10, 32)))
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, num_replicas=1,
                                                              rank=0, shuffle=False)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=8,
                                         shuffle=False)
    model = get_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    ddp_model = torch.nn.parallel.DistributedDataParallel(model)
    losses = []
    for _ in range(2):
        for inputs, targets in loader:
            loss = loss_fn(ddp_model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses, [np.asarray(w).tolist() for w in model.non_trainable_weights]


def test_distributed_training_with_torch(tmp_path):
    # one process group for both runs: a second gloo group in the same process could hang
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group(backend="gloo", store=store, world_size=1, rank=0)
    try:
        expected = _distributed_training_with_torch(_fresh(keras))
        got = _distributed_training_with_torch(_fresh(kestrel))
    finally:
        torch.distributed.destroy_process_group()
    _assert_close(got, expected)
    assert all(math.isfinite(loss) for loss in got[0])


def _image_classifier(k):
    """keras_cv's ImageClassifier example, its Keras parts: a LearningRateSchedule subclass
    (warmup, hold, cosine decay with `ops.where` on the step), SGD with weight decay and
    momentum, one-hot labels from CategoryEncoding(dtype="int32"), and a Sequential head
    (a small conv stand-in for the keras_cv backbone) trained with validation."""
    ops = k.ops

    def lr_warmup_cosine_decay(global_step, warmup_steps, hold=0, total_steps=0, start_lr=0.0,
                               target_lr=1e-2):
        learning_rate = 0.5 * target_lr * (1 + ops.cos(
            math.pi * ops.convert_to_tensor(global_step - warmup_steps - hold, dtype="float32")
            / ops.convert_to_tensor(total_steps - warmup_steps - hold, dtype="float32")))
        warmup_lr = target_lr * (global_step / warmup_steps)
        if hold > 0:
            learning_rate = ops.where(global_step > warmup_steps + hold, learning_rate,
                                      target_lr)
        return ops.where(global_step < warmup_steps, warmup_lr, learning_rate)

    class WarmUpCosineDecay(k.optimizers.schedules.LearningRateSchedule):
        def __init__(self, warmup_steps, total_steps, hold, start_lr=0.0, target_lr=1e-2):
            super().__init__()
            self.start_lr, self.target_lr = start_lr, target_lr
            self.warmup_steps, self.total_steps, self.hold = warmup_steps, total_steps, hold

        def __call__(self, step):
            lr = lr_warmup_cosine_decay(global_step=step, total_steps=self.total_steps,
                                        warmup_steps=self.warmup_steps,
                                        start_lr=self.start_lr, target_lr=self.target_lr,
                                        hold=self.hold)
            return ops.where(step > self.total_steps, 0.0, lr)

    schedule = WarmUpCosineDecay(start_lr=0.05, target_lr=1e-2, warmup_steps=2, total_steps=8,
                                 hold=2)
    rates = [float(ops.convert_to_numpy(schedule(step))) for step in range(10)]
    encoder = k.layers.CategoryEncoding(5, "one_hot", dtype="int32")
    rng = np.random.default_rng(0)
    images = rng.random((16, 8, 8, 3)).astype("float32")
    labels = ops.convert_to_numpy(encoder(rng.integers(0, 5, 16)))
    backbone = k.Sequential([k.Input((8, 8, 3)), k.layers.Conv2D(8, 3, activation="relu")],
                            name="backbone")
    model = k.Sequential([backbone, k.layers.GlobalMaxPooling2D(), k.layers.Dropout(rate=0.5),
                          k.layers.Dense(5, activation="softmax")])
    model.compile(loss=k.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  optimizer=k.optimizers.SGD(weight_decay=5e-4, learning_rate=schedule,
                                             momentum=0.9),
                  metrics=[k.metrics.CategoricalAccuracy(),
                           k.metrics.TopKCategoricalAccuracy(k=5)])
    history = model.fit(images, labels, batch_size=4, epochs=2,
                        validation_data=(images, labels), verbose=0).history
    return rates, labels.dtype.name, history, float(model.optimizer.learning_rate)


def test_image_classifier():
    expected, got = _both(_image_classifier)
    _assert_close(got, expected)


def _video_transformers(k, tmp_path):
    """Frame features from a feature extractor (densenet's `preprocess_input` on a KerasTensor,
    a small stand-in for DenseNet121) predicted frame by frame, then a transformer encoder
    (masked attention, a Sequential projection with `activations.gelu`) over the frame
    sequence; a best-only weights checkpoint is loaded back. The positional embedding uses
    keras-core's `keras.backend.cast` / `keras.backend.shape`, which only Kestrel keeps (Keras
    3 runs it with `ops.cast` / `ops.shape`)."""
    layers = k.layers
    backend = k.backend if k is kestrel else k.ops
    image = k.Input((8, 8, 3))
    features = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(
        k.applications.densenet.preprocess_input(image)))
    feature_extractor = k.Model(image, features, name="feature_extractor")
    rng = np.random.default_rng(0)
    videos = rng.random((6, 2, 8, 8, 3)).astype("float32") * 255
    videos[1, 1] = 0.0  # a padded frame: its features stay zero
    frame_features = np.zeros((6, 2, 4), dtype="float32")
    for index, frames in enumerate(videos):
        for j in range(frames.shape[0]):
            if np.mean(frames[j, :]) > 0.0:
                frame_features[index, j, :] = feature_extractor.predict(frames[None, j, :],
                                                                        verbose=0)

    class PositionalEmbedding(layers.Layer):
        def __init__(self, sequence_length, output_dim, **kwargs):
            super().__init__(**kwargs)
            self.position_embeddings = layers.Embedding(input_dim=sequence_length,
                                                        output_dim=output_dim)

        def call(self, inputs):
            inputs = backend.cast(inputs, self.compute_dtype)
            length = backend.shape(inputs)[1]
            positions = k.ops.numpy.arange(start=0, stop=length, step=1)
            return inputs + self.position_embeddings(positions)

    class TransformerEncoder(layers.Layer):
        def __init__(self, embed_dim, dense_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim,
                                                       dropout=0.3)
            self.dense_proj = k.Sequential([
                layers.Dense(dense_dim, activation=k.activations.gelu),
                layers.Dense(embed_dim)])
            self.layernorm_1 = layers.LayerNormalization()
            self.layernorm_2 = layers.LayerNormalization()

        def call(self, inputs, mask=None):
            attention_output = self.attention(inputs, inputs, attention_mask=mask)
            proj_input = self.layernorm_1(inputs + attention_output)
            return self.layernorm_2(proj_input + self.dense_proj(proj_input))

    inputs = k.Input(shape=(2, 4))
    x = PositionalEmbedding(2, 4, name="frame_position_embedding")(inputs)
    x = TransformerEncoder(4, 4, 1, name="transformer_layer")(x)
    x = layers.Dropout(0.5)(layers.GlobalMaxPooling1D()(x))
    model = k.Model(inputs, layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    labels = rng.integers(0, 2, (6, 1))
    path = str(tmp_path / f"{k.__name__}_video_classifier.weights.h5")
    checkpoint = k.callbacks.ModelCheckpoint(path, save_weights_only=True, save_best_only=True,
                                             verbose=0)
    history = model.fit(frame_features, labels, validation_split=0.34, epochs=2,
                        callbacks=[checkpoint], verbose=0).history
    model.load_weights(path)
    probabilities = model.predict(frame_features[:1], verbose=0)[0]
    return (frame_features.tolist(), history, model.evaluate(frame_features, labels, verbose=0),
            probabilities.tolist(), _summary_text(model))


def test_video_transformers(tmp_path):
    expected = _video_transformers(_fresh(keras), tmp_path)
    got = _video_transformers(_fresh(kestrel), tmp_path)
    _assert_close(got, expected)
    assert not np.any(np.asarray(got[0])[1, 1])


# ---------------------------------------------------------------- keras-core module paths
def test_keras_core_module_paths_of_ops_backend_random_and_schedules():
    """keras-core paths the examples use and Keras 3 dropped: `ops.backend.shape` (ViT
    patches, NER positions), `keras.random.random.uniform` (CutMix boxes) and
    `optimizers.schedules.learning_rate_schedule.LearningRateSchedule` (image captioning)."""
    k = _fresh(kestrel)
    images = torch.rand(2, 8, 8, 3)
    assert k.ops.backend.shape(images) == (2, 8, 8, 3)
    assert k.ops.backend is k.backend
    cut_x = k.backend.cast(k.random.random.uniform((1,), minval=0, maxval=8), "int32")
    assert cut_x.dtype == torch.int32 and 0 <= int(cut_x[0]) < 8
    assert k.random.random.uniform is k.random.uniform

    class LRSchedule(k.optimizers.schedules.learning_rate_schedule.LearningRateSchedule):
        def __init__(self, post_warmup_learning_rate, warmup_steps):
            super().__init__()
            self.post_warmup_learning_rate = post_warmup_learning_rate
            self.warmup_steps = warmup_steps

        def __call__(self, step):
            global_step = k.ops.cast(step, "float32")
            warmup_progress = global_step / k.ops.cast(self.warmup_steps, "float32")
            return k.ops.where(global_step < self.warmup_steps,
                               self.post_warmup_learning_rate * warmup_progress,
                               self.post_warmup_learning_rate)

    optimizer = k.optimizers.Adam(LRSchedule(post_warmup_learning_rate=1e-4, warmup_steps=4))
    inputs = k.Input((3,))
    model = k.Model(inputs, k.layers.Dense(1)(inputs))
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), batch_size=4, epochs=1, verbose=0)
    np.testing.assert_allclose(float(optimizer.learning_rate), 1e-4 * 2 / 4, rtol=1e-6)


def _vision_transformer(k):
    """ViT: an augmentation Sequential with an adapted Normalization and Resizing, patches
    reshaped with keras-core's `ops.backend.shape` (Kestrel; Keras 3 runs `ops.shape`), a
    patch encoder, transformer blocks and an MLP head, AdamW and a weights checkpoint."""
    layers, ops = k.layers, k.ops
    shape_of = ops.backend.shape if k is kestrel else ops.shape
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 8, 8, 3)).astype("float32")
    labels = rng.integers(0, 5, (12, 1))
    augmentation = k.Sequential([
        layers.Normalization(), layers.Resizing(12, 12), layers.RandomFlip("horizontal"),
        layers.RandomRotation(factor=0.02), layers.RandomZoom(height_factor=0.2,
                                                              width_factor=0.2)],
        name="data_augmentation")
    augmentation.layers[0].adapt(images)

    def mlp(x, hidden_units, dropout_rate):
        for units in hidden_units:
            x = layers.Dropout(dropout_rate)(layers.Dense(units, activation=k.activations.gelu)(x))
        return x

    class Patches(layers.Layer):
        def __init__(self, patch_size):
            super().__init__()
            self.patch_size = patch_size

        def call(self, images):
            batch_size, height, width, channels = shape_of(images)
            patches = k.ops.image.extract_patches(images, size=self.patch_size)
            return ops.reshape(patches, (batch_size,
                                         (height // self.patch_size) * (width // self.patch_size),
                                         self.patch_size * self.patch_size * channels))

        def get_config(self):
            config = super().get_config()
            config.update({"patch_size": self.patch_size})
            return config

    class PatchEncoder(layers.Layer):
        def __init__(self, num_patches, projection_dim):
            super().__init__()
            self.num_patches = num_patches
            self.projection = layers.Dense(units=projection_dim)
            self.position_embedding = layers.Embedding(input_dim=num_patches,
                                                       output_dim=projection_dim)

        def call(self, patch):
            positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), 0)
            return self.projection(patch) + self.position_embedding(positions)

    resized = ops.image.resize(ops.convert_to_tensor([images[0]]), size=(12, 12))
    patches = Patches(4)(resized)
    patch_images = [ops.reshape(patch, (4, 4, 3)) for patch in patches[0]]
    inputs = k.Input(shape=(8, 8, 3))
    encoded = PatchEncoder(9, 8)(Patches(4)(augmentation(inputs)))
    for _ in range(2):
        x1 = layers.LayerNormalization(epsilon=1e-6)(encoded)
        attention = layers.MultiHeadAttention(num_heads=2, key_dim=8, dropout=0.1)(x1, x1)
        x2 = layers.Add()([attention, encoded])
        x3 = mlp(layers.LayerNormalization(epsilon=1e-6)(x2), [16, 8], 0.1)
        encoded = layers.Add()([x3, x2])
    representation = layers.Flatten()(layers.LayerNormalization(epsilon=1e-6)(encoded))
    features = mlp(layers.Dropout(0.5)(representation), [16, 8], 0.5)
    model = k.Model(inputs=inputs, outputs=layers.Dense(5)(features))
    model.compile(optimizer=k.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001),
                  loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[k.metrics.SparseCategoricalAccuracy(name="accuracy"),
                           k.metrics.SparseTopKCategoricalAccuracy(5, name="top-5-accuracy")])
    return model, images, labels, (tuple(patches.shape), tuple(patch_images[-1].shape),
                                   _summary_text(model))


def test_image_classification_with_vision_transformer(tmp_path):
    results = []
    for lib in (keras, kestrel):
        model, images, labels, shapes = _vision_transformer(_fresh(lib))
        path = str(tmp_path / f"{lib.__name__}_checkpoint.weights.h5")
        checkpoint = lib.callbacks.ModelCheckpoint(path, monitor="val_accuracy",
                                                   save_best_only=True, save_weights_only=True)
        history = model.fit(images, labels, batch_size=4, epochs=1, validation_split=0.25,
                            callbacks=[checkpoint], verbose=0).history
        model.load_weights(path)
        results.append((shapes, history, model.evaluate(images, labels, verbose=0)))
    _assert_close(results[1], results[0])
    assert results[1][0][:2] == ((1, 9, 48), (4, 4, 3))


def _ner_transformers(k):
    """NER: a subclassed model (`call(..., training=False)`) over token and position
    embeddings and a transformer block, a Loss subclass masking padding tokens, then a sample
    reshaped with keras-core's `ops.reshape(x, new_shape=...)` and predicted. Kestrel runs the
    keras-core calls (`ops.backend.shape`, `backend.cast`, `new_shape=`); Keras 3 their
    Keras 3 forms."""
    layers, core = k.layers, k is kestrel
    shape_of = k.ops.backend.shape if core else k.ops.shape
    cast = k.backend.cast if core else k.ops.cast

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
            super().__init__()
            self.att = k.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = k.Sequential([k.layers.Dense(ff_dim, activation="relu"),
                                     k.layers.Dense(embed_dim)])
            self.layernorm1 = k.layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = k.layers.LayerNormalization(epsilon=1e-6)
            self.dropout1, self.dropout2 = k.layers.Dropout(rate), k.layers.Dropout(rate)

        def call(self, inputs, training=False):
            attn_output = self.dropout1(self.att(inputs, inputs), training=training)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.dropout2(self.ffn(out1), training=training)
            return self.layernorm2(out1 + ffn_output)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = k.layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = k.layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, inputs):
            maxlen = shape_of(inputs)[-1]
            positions = k.ops.arange(start=0, stop=maxlen, step=1)
            return self.token_emb(inputs) + self.pos_emb(positions)

    class NERModel(k.Model):
        def __init__(self, num_tags, vocab_size, maxlen=128, embed_dim=32, num_heads=2,
                     ff_dim=32):
            super().__init__()
            self.embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
            self.transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim)
            self.dropout1 = layers.Dropout(0.1)
            self.ff = layers.Dense(ff_dim, activation="relu")
            self.dropout2 = layers.Dropout(0.1)
            self.ff_final = layers.Dense(num_tags, activation="softmax")

        def call(self, inputs, training=False):
            x = self.transformer_block(self.embedding_layer(inputs))
            x = self.ff(self.dropout1(x, training=training))
            return self.ff_final(self.dropout2(x, training=training))

    class CustomNonPaddingTokenLoss(k.losses.Loss):
        def __init__(self, name="custom_ner_loss"):
            super().__init__(name=name)

        def call(self, y_true, y_pred):
            loss_fn = k.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
            loss = loss_fn(y_true, y_pred)
            mask = cast((y_true > 0), dtype="float32")
            return k.ops.sum(loss * mask) / k.ops.sum(mask)

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 30, (8, 6))
    tags = rng.integers(0, 5, (8, 6))
    tags[:, -2:] = 0  # padding
    model = NERModel(5, 30, maxlen=6, embed_dim=8, num_heads=2, ff_dim=8)
    model.compile(optimizer="adam", loss=CustomNonPaddingTokenLoss())
    history = model.fit(tokens, tags, batch_size=4, epochs=2, verbose=0).history
    sample = k.ops.reshape(np.array([3, 5, 7, 9]), new_shape=[1, -1]) if core else \
        k.ops.reshape(np.array([3, 5, 7, 9]), newshape=[1, -1])
    prediction = np.argmax(model.predict(sample, verbose=0), axis=-1)
    return history, tuple(sample.shape), prediction.tolist()


def test_ner_transformers():
    expected, got = _both(_ner_transformers)
    _assert_close(got, expected)
    assert got[1] == (1, 4)


def test_reshape_takes_keras_core_new_shape_keyword():
    x = kestrel.Input((6,))
    assert kestrel.ops.reshape(x, new_shape=(-1, 2, 3)).shape == (None, 2, 3)
    np.testing.assert_array_equal(kestrel.ops.reshape(np.arange(6), new_shape=[2, -1]).numpy(),
                                  np.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        kestrel.ops.reshape(np.arange(6))
    with pytest.raises(TypeError, match="takes the shape once"):
        kestrel.ops.reshape(np.arange(6), (2, 3), new_shape=(3, 2))


def test_image_classification_from_scratch(tmp_path, monkeypatch):
    """Kestrel only (Keras 3 builds these datasets with TensorFlow): a directory of JPEGs
    split by `image_dataset_from_directory(subset="both")`, augmentation mapped over the
    batches, a small Xception-like residual net with SeparableConv2D, `plot_model`, a
    `save_at_{epoch}.keras` checkpoint per epoch, and `load_img` / `img_to_array` / predict on
    one image (the saved model predicts the same)."""
    from PIL import Image

    k, layers = _fresh(kestrel), kestrel.layers
    rng = np.random.default_rng(0)
    for folder in ("Cat", "Dog"):
        (tmp_path / "PetImages" / folder).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
                tmp_path / "PetImages" / folder / f"{i}.jpg", "JPEG")
    train_ds, val_ds = k.utils.image_dataset_from_directory(
        str(tmp_path / "PetImages"), validation_split=0.2, subset="both", seed=1337,
        image_size=(16, 16), batch_size=4)
    assert (len(train_ds), len(val_ds)) == (3, 1)
    images, labels = next(iter(train_ds.take(1)))
    assert tuple(images.shape) == (4, 16, 16, 3) and images[0].numpy().astype("uint8").shape \
        == (16, 16, 3) and int(labels[0]) in (0, 1)
    data_augmentation = k.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)])
    assert tuple(data_augmentation(images)[0].shape) == (16, 16, 3)
    train_ds = train_ds.map(lambda img, label: (data_augmentation(img), label)).prefetch(2)
    val_ds = val_ds.prefetch(2)

    inputs = k.Input(shape=(16, 16, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization()(
        layers.Conv2D(8, 3, strides=2, padding="same")(x)))
    previous_block_activation = x
    for size in [8, 16]:
        x = layers.Activation("relu")(x)
        x = layers.BatchNormalization()(layers.SeparableConv2D(size, 3, padding="same")(x))
        x = layers.Activation("relu")(x)
        x = layers.BatchNormalization()(layers.SeparableConv2D(size, 3, padding="same")(x))
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    x = layers.BatchNormalization()(layers.SeparableConv2D(16, 3, padding="same")(x))
    x = layers.GlobalAveragePooling2D()(layers.Activation("relu")(x))
    model = k.Model(inputs, layers.Dense(1, activation="sigmoid")(layers.Dropout(0.5)(x)))
    monkeypatch.chdir(tmp_path)
    k.utils.plot_model(model, show_shapes=True)
    model.compile(optimizer=k.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(train_ds, epochs=2, validation_data=val_ds, verbose=0,
                        callbacks=[k.callbacks.ModelCheckpoint("save_at_{epoch}.keras")])
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert {"model.png", "save_at_1.keras", "save_at_2.keras"} <= set(os.listdir(tmp_path))
    img = k.utils.load_img(str(tmp_path / "PetImages" / "Cat" / "3.jpg"), target_size=(16, 16))
    img_array = k.ops.expand_dims(k.utils.img_to_array(img), 0)
    predictions = model.predict(img_array, verbose=0)
    assert predictions.shape == (1, 1) and 0.0 <= float(predictions[0][0]) <= 1.0
    reloaded = k.models.load_model("save_at_2.keras")
    np.testing.assert_allclose(reloaded.predict(img_array, verbose=0), predictions, rtol=1e-5)


def test_load_weights_refuses_unknown_keywords_as_keras(tmp_path):
    """zero_dce forwards TF's `options=` to `load_weights`: Keras 3 raises ValueError."""
    errors = []
    for lib in (keras, kestrel):
        model = lib.Sequential([lib.Input((2,)), lib.layers.Dense(1)])
        path = str(tmp_path / f"{lib.__name__}.weights.h5")
        model.save_weights(path)
        with pytest.raises(ValueError) as error:
            model.load_weights(path, skip_mismatch=False, options=None)
        errors.append(str(error.value))
    assert errors[1] == errors[0] == "Invalid keyword arguments: {'options': None}"


def _tensor_names_after_traced_builds(k):
    """understanding_masking_and_padding: `MyLayer()(x)` (an Embedding and an LSTM, no
    `build` of its own) is built by Keras tracing `call`, which names a KerasTensor per output;
    the KerasTensors printed later in the guide carry the shifted names."""
    layers = k.layers

    class MyLayer(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embedding = layers.Embedding(input_dim=50, output_dim=4, mask_zero=True)
            self.lstm = layers.LSTM(3)

        def call(self, inputs):
            x = self.embedding(inputs)
            return self.lstm(x, mask=self.embedding.compute_mask(inputs))

    class TwoOutputs(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x), self.dense(x) * 2

    class Subclassed(k.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    class OwnBuild(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(2)

        def build(self, shape):
            self.dense.build(shape)

        def call(self, x):
            return self.dense(x)

    names = []
    MyLayer()(np.ones((2, 5), "int32"))
    names.append(k.Input((3,)).name)
    names.append(MyLayer()(k.Input((5,), dtype="int32")).name)
    for layer in (TwoOutputs(), Subclassed(), OwnBuild()):
        layer(np.ones((2, 3), "float32"))
        names.append(k.Input((3,)).name)
    inputs = k.Input(shape=(None,), dtype="int32")
    embedded = layers.Embedding(input_dim=50, output_dim=4, mask_zero=True)(inputs)
    names.append(embedded._keras_mask.name)
    return names


def test_tensor_names_after_layers_built_by_a_traced_call_as_keras():
    expected, got = _both(_tensor_names_after_traced_builds)
    assert got == expected
