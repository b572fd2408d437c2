"""keras.io generative examples, second batch (real_nvp, pixelcnn, vq_vae, conditional_gan, ...):
the same miniature code runs with Kestrel and with real Keras (torch backend), and agrees.
"""
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _summary(model) -> list[str]:
    lines = []
    model.summary(print_fn=lines.append)
    return [line.rstrip() for line in "\n".join(lines).splitlines() if line.strip()]


def _torch_train_step(model, loss_fn, data):
    """A GradientTape-free step, as the keras.io examples are ported to torch."""
    model.zero_grad()
    loss = loss_fn(data)
    loss.backward()
    weights = list(model.trainable_weights)
    with torch.no_grad():
        model.optimizer.apply([w.value.grad for w in weights], weights)
    return loss


def _coupling(k, units=4):
    """real_nvp's coupling network: one functional model with two outputs (s, t)."""
    x = k.Input(shape=(2,))
    s = k.layers.Dense(units, activation="relu", kernel_regularizer=k.regularizers.l2(0.01))(x)
    t = k.layers.Dense(units, activation="relu", kernel_regularizer=k.regularizers.l2(0.01))(x)
    return k.Model(x, [k.layers.Dense(2, activation="tanh")(s), k.layers.Dense(2)(t)])


def _real_nvp(k):
    class RealNVP(k.Model):
        def __init__(self, n):
            super().__init__()
            self.masks = np.array([[0, 1], [1, 0]] * (n // 2), dtype="float32")
            self.loss_tracker = k.metrics.Mean(name="loss")
            self.layers_list = [_coupling(k) for _ in range(n)]

        @property
        def metrics(self):
            return [self.loss_tracker]

        def call(self, x, training=True):
            log_det_inv, direction = 0, -1 if training else 1
            for i in range(len(self.layers_list))[::direction]:
                mask = k.ops.convert_to_tensor(self.masks[i])
                s, t = self.layers_list[i](x * mask)
                s, t = s * (1 - mask), t * (1 - mask)
                gate = (direction - 1) / 2
                x = (x * k.ops.exp(direction * s) + direction * t * k.ops.exp(gate * s)) \
                    * (1 - mask) + x * mask
                log_det_inv += gate * k.ops.sum(s, [1])
            return x, log_det_inv

        def log_loss(self, x):
            y, logdet = self(x)
            return -k.ops.mean(-0.5 * k.ops.sum(y ** 2, axis=-1) + logdet)

        def train_step(self, data):
            self.loss_tracker.update_state(_torch_train_step(self, self.log_loss, data))
            return {"loss": self.loss_tracker.result()}

        def test_step(self, data):
            self.loss_tracker.update_state(self.log_loss(data))
            return {"loss": self.loss_tracker.result()}

    return RealNVP(2)


def test_real_nvp_fit_and_summary_of_nested_functionals_match_keras():
    """Functional models held by a subclassed model, called outside any graph: the summary
    shows their own output shapes, several in parentheses, as Keras."""
    data = np.random.default_rng(0).normal(size=(12, 2)).astype("float32")
    results = {}
    for k in (keras, kestrel):
        model = _real_nvp(_fresh(k))
        model.compile(optimizer=k.optimizers.Adam(learning_rate=1e-3))
        history = model.fit(data, batch_size=4, epochs=2, verbose=0, validation_split=0.25)
        results[k] = (history.history, _summary(model), len(model.losses))
    assert results[kestrel][1] == results[keras][1]
    assert "((None, 2), (None, 2))" in "".join(results[kestrel][1])
    assert results[kestrel][2] == results[keras][2] == 4
    assert results[kestrel][0].keys() == results[keras][0].keys() == {"loss", "val_loss"}
    for key, values in results[keras][0].items():
        np.testing.assert_allclose(results[kestrel][0][key], values, rtol=1e-5)


def test_summary_of_standalone_functional_and_sequential_in_a_subclass():
    """One output: its shape; a built Sequential: its output shape; unbuilt: '?'."""
    lines = {}
    for k in (keras, kestrel):
        _fresh(k)

        class Holder(k.Model):
            def __init__(self):
                super().__init__()
                x = k.Input((3,))
                self.one = k.Model(x, k.layers.Dense(2)(x))
                self.seq = k.Sequential([k.Input((5,)), k.layers.Dense(4)])
                self.lazy = k.Sequential([k.layers.Dense(4)])

            def call(self, x):
                return self.one(x)

        holder = Holder()
        holder(np.zeros((1, 3), "float32"))
        lines[k] = _summary(holder)
    assert lines[kestrel] == lines[keras]


def test_leaky_relu_alpha_warns_as_keras():
    """conditional_gan writes LeakyReLU(alpha=0.2): Keras 3 warns that it is deprecated."""
    messages = {}
    for k in (keras, kestrel):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            layer = k.layers.LeakyReLU(alpha=0.2)
        messages[k] = [str(w.message) for w in caught if "alpha" in str(w.message)]
        assert layer.get_config()["negative_slope"] == 0.2
    assert messages[kestrel] == messages[keras] and len(messages[keras]) == 1


def _conditional_gan(k, latent_dim=3, classes=2):
    layers = k.layers
    discriminator = k.Sequential([
        layers.InputLayer((4, 4, 1 + classes)),
        layers.Conv2D(4, 3, strides=2, padding="same"), layers.LeakyReLU(negative_slope=0.2),
        layers.GlobalMaxPooling2D(), layers.Dense(1)], name="discriminator")
    generator = k.Sequential([
        layers.InputLayer((latent_dim + classes,)), layers.Dense(2 * 2 * 4),
        layers.LeakyReLU(negative_slope=0.2), layers.Reshape((2, 2, 4)),
        layers.Conv2DTranspose(4, 4, strides=2, padding="same"),
        layers.Conv2D(1, 3, padding="same", activation="sigmoid")], name="generator")

    class ConditionalGAN(k.Model):
        def __init__(self):
            super().__init__()
            self.discriminator, self.generator = discriminator, generator
            self.seed_generator = k.random.SeedGenerator(1337)
            self.gen_loss_tracker = k.metrics.Mean(name="generator_loss")
            self.disc_loss_tracker = k.metrics.Mean(name="discriminator_loss")

        @property
        def metrics(self):
            return [self.gen_loss_tracker, self.disc_loss_tracker]

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

        def call(self, x):
            return x

        def _step(self, network, optimizer, loss):
            loss.backward()
            weights = network.trainable_weights
            with torch.no_grad():
                optimizer.apply([w.value.grad for w in weights], weights)

        def train_step(self, data):
            ops = k.ops
            real_images, one_hot = data
            n = ops.shape(real_images)[0]
            label_maps = ops.reshape(ops.repeat(one_hot[:, :, None, None], 16), (-1, 4, 4, classes))
            noise = k.random.normal((n, latent_dim), seed=self.seed_generator)
            fake = self.generator(ops.concatenate([noise, one_hot], axis=1))
            combined = ops.concatenate([ops.concatenate([fake, label_maps], -1),
                                        ops.concatenate([real_images, label_maps], -1)], 0)
            labels = ops.concatenate([ops.ones((n, 1)), ops.zeros((n, 1))], axis=0)
            self.zero_grad()
            d_loss = self.loss_fn(labels, self.discriminator(combined))
            self._step(self.discriminator, self.d_optimizer, d_loss)
            noise = k.random.normal((n, latent_dim), seed=self.seed_generator)
            self.zero_grad()
            fake = self.generator(ops.concatenate([noise, one_hot], axis=1))
            predictions = self.discriminator(ops.concatenate([fake, label_maps], -1))
            g_loss = self.loss_fn(ops.zeros((n, 1)), predictions)
            self._step(self.generator, self.g_optimizer, g_loss)
            self.gen_loss_tracker.update_state(g_loss)
            self.disc_loss_tracker.update_state(d_loss)
            return {"g_loss": self.gen_loss_tracker.result(),
                    "d_loss": self.disc_loss_tracker.result()}

    return ConditionalGAN()


def test_conditional_gan_two_optimizers_match_keras():
    """Custom compile() with two optimizers, SeedGenerator noise, two backward passes."""
    rng = np.random.default_rng(0)
    images = rng.random((4, 4, 4, 1)).astype("float32")
    results = {}
    for k in (keras, kestrel):
        labels = k.utils.to_categorical(rng.integers(0, 2, 4), 2)
        gan = _conditional_gan(_fresh(k))
        gan.compile(d_optimizer=k.optimizers.Adam(learning_rate=3e-4),
                    g_optimizer=k.optimizers.Adam(learning_rate=3e-4),
                    loss_fn=k.losses.BinaryCrossentropy(from_logits=True))
        history = gan.fit(images, labels, batch_size=4, epochs=2, verbose=0, shuffle=False)
        results[k] = (history.history, type(gan.optimizer).__name__,
                      [v.path for v in gan.d_optimizer.variables], labels.dtype)
        rng = np.random.default_rng(0)
        rng.random((4, 4, 4, 1))
    assert results[kestrel][1:] == results[keras][1:]
    assert list(results[kestrel][0]) == list(results[keras][0]) == ["d_loss", "g_loss"]
    for key, values in results[keras][0].items():
        np.testing.assert_allclose(results[kestrel][0][key], values, rtol=1e-5)


def test_input_layer_input_shape_is_keras2_name_for_shape():
    """gan_ada's `layers.InputLayer(input_shape=...)` inside a Sequential: Keras 3 warns and
    reads it as `shape`."""
    results = {}
    for k in (keras, kestrel):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = k.Sequential([k.layers.InputLayer(input_shape=(4, 4, 3)),
                                  k.layers.RandomFlip("horizontal")])
        results[k] = ([str(w.message) for w in caught if "input_shape" in str(w.message)],
                      model.output_shape, model.get_config()["layers"][0]["config"]["batch_shape"])
    assert results[kestrel] == results[keras]
    assert results[keras][1] == (None, 4, 4, 3)


def test_layer_class_defined_by_exec_can_be_built():
    """A layer class written in code run by exec (its methods' __module__ is None)."""
    source = "class Twice(lib.layers.Layer):\n    def call(self, x, training=None):\n" \
             "        return x * 2\n"
    for k in (keras, kestrel):
        namespace = {"lib": k}
        exec(source, namespace)  # noqa: S102 - the pattern under test
        out = namespace["Twice"]()(np.ones((1, 2), "float32"))
        np.testing.assert_array_equal(k.ops.convert_to_numpy(out), [[2.0, 2.0]])


def test_adam_apply_with_autograd_grad_of_conv_kernels_matches_keras():
    """gan_ada's torch port takes gradients with torch.autograd.grad, which may hand a conv
    kernel's gradient in another memory layout than the kernel's: the step must not care."""
    x = torch.tensor(np.random.default_rng(0).normal(size=(2, 2, 2, 5)).astype("float32"))
    kernels = {}
    for k in (keras, kestrel):
        _fresh(k)
        layers = [k.layers.Conv2D(3, (4, 2), strides=2, padding="same"),
                  k.layers.Conv2DTranspose(3, (2, 4), strides=2, padding="same")]
        optimizer = k.optimizers.Adam(learning_rate=0.1)
        for layer in layers:
            layer(x)
        weights = [w for layer in layers for w in layer.trainable_weights]
        for _ in range(2):
            loss = sum((layer(x) ** 3).mean() for layer in layers)
            grads = torch.autograd.grad(loss, [w.value for w in weights])
            with torch.no_grad():
                optimizer.apply(grads, weights)
        kernels[k] = [layer.get_weights()[0] for layer in layers]
    for a, b in zip(kernels[keras], kernels[kestrel]):
        np.testing.assert_allclose(b, a, atol=1e-4)


def test_progbar_one_line_log_writes_negatives_as_keras(capsys):
    """wgan-graphs logs a negative generator loss with verbose=2: Keras' per-epoch line
    compares the value, not its magnitude, so it prints -6.2033e-02; the live bar does not."""
    lines = {}
    for k in (keras, kestrel):
        for verbose in (1, 2):
            bar = k.utils.Progbar(target=2, verbose=verbose)
            bar.update(2, values=[("loss_gen", -0.062033), ("loss_dis", 16.6455),
                                  ("tiny", 2e-4)], finalize=True)
        text = capsys.readouterr().out
        lines[k] = [line.split("step", 1)[-1].strip() for line in text.replace("\r", "\n")
                    .splitlines() if "loss_gen" in line]
    assert lines[kestrel] == lines[keras]
    assert lines[keras][-1] == "- loss_gen: -6.2033e-02 - loss_dis: 16.6455 - tiny: 2.0000e-04"


def test_add_weight_takes_keras3_positional_order():
    """midi_generation's attention writes `self.add_weight((len, dim), name=...)`: the first
    positional argument is the shape in Keras 3."""
    for k in (keras, kestrel):
        class Relative(k.layers.Layer):
            def build(self, input_shape):
                self.table = self.add_weight((5, 3), "zeros", name="relative_embedding")

            def call(self, x):
                return x + k.ops.sum(self.table)

        layer = Relative()
        layer(np.zeros((1, 2), "float32"))
        assert tuple(layer.table.shape) == (5, 3) and layer.table.path.endswith(
            "relative_embedding")
        assert not layer.get_weights()[0].any()


def test_add_weight_replaces_a_none_placeholder_of_its_name():
    """midi_generation sets `self.relative_embedding = None` in __init__, then assigns the
    weight named "relative_embedding" to it in build()."""
    for k in (keras, kestrel):
        class Placeholder(k.layers.Layer):
            def __init__(self):
                super().__init__()
                self.relative_embedding = None

            def build(self, input_shape):
                self.relative_embedding = self.add_weight((4, 2), name="relative_embedding")

            def call(self, x):
                return x + k.ops.sum(self.relative_embedding)

        layer = Placeholder()
        layer(np.zeros((1, 2), "float32"))
        assert [w.path for w in layer.weights] == ["placeholder/relative_embedding"]
