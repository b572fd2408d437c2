"""keras.io generative examples (ddim, ddpm, dcgan, cyclegan, vae, style transfer, deep dream):
the same code runs with Kestrel and with real Keras (torch backend), and agrees.
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
from tests.keras_compare import copy_weights as _copy_weights, layout as _layout  # noqa: E402


@pytest.mark.parametrize("endpoint", [True, False])
@pytest.mark.parametrize("wrap", ["python", "tensor", "array"])
def test_linspace_rounds_as_keras(endpoint, wrap):
    """ddim's sinusoidal embedding multiplies linspace by ~6000: an ulp apart shows."""
    convert = {"python": lambda v: v, "tensor": lambda v: torch.tensor(v, dtype=torch.float32),
               "array": lambda v: np.array([v, 2 * v], "float32")}[wrap]
    for start, stop, num in [(0.0, math.log(1000.0), 16), (-3.2, 11.7, 50), (1.0, 0.0, 13)]:
        a = keras.ops.linspace(convert(start), convert(stop), num, endpoint=endpoint)
        b = kestrel.ops.linspace(convert(start), convert(stop), num, endpoint=endpoint)
        assert b.dtype == a.dtype
        np.testing.assert_array_equal(b.numpy(), a.numpy())


def _ddim_network(k, image_size=8, widths=(4, 8)):
    """ddim's residual U-Net in small: a sinusoidal embedding Lambda, swish convolutions,
    BatchNormalization without center/scale, bilinear upsampling, skips."""
    layers, ops = k.layers, k.ops

    @k.saving.register_keras_serializable(package="ddim_test")
    def sinusoidal_embedding(x):
        frequencies = ops.exp(ops.linspace(ops.log(1.0), ops.log(1000.0), 8))
        angular_speeds = ops.cast(2.0 * math.pi * frequencies, "float32")
        return ops.concatenate([ops.sin(angular_speeds * x), ops.cos(angular_speeds * x)], axis=3)

    noisy_images = k.Input(shape=(image_size, image_size, 3))
    noise_variances = k.Input(shape=(1, 1, 1))
    e = layers.Lambda(sinusoidal_embedding, output_shape=(1, 1, 16))(noise_variances)
    e = layers.UpSampling2D(size=image_size, interpolation="nearest")(e)
    x = layers.Concatenate()([layers.Conv2D(widths[0], kernel_size=1)(noisy_images), e])
    skip = x = layers.Conv2D(widths[0], 3, padding="same", activation="swish")(x)
    x = layers.BatchNormalization(center=False, scale=False)(x)
    x = layers.AveragePooling2D(pool_size=2)(x)
    x = layers.Conv2D(widths[1], 3, padding="same")(x)
    x = layers.UpSampling2D(size=2, interpolation="bilinear")(x)
    x = layers.Concatenate()([x, skip])
    x = layers.Add()([layers.Conv2D(widths[0], 1)(x), skip])
    x = layers.Conv2D(3, kernel_size=1)(x)
    return k.Model([noisy_images, noise_variances], x, name="residual_unet")


def test_ddim_train_step_and_ema_network_match_keras():
    """ddim's train step the torch way: normalize, mix noise, MAE loss, backward, AdamW
    apply, EMA weights assigned into a clone_model copy; then the EMA network denoises."""
    rng = np.random.default_rng(0)
    images = rng.random((4, 8, 8, 3)).astype("float32")
    noises = torch.tensor(rng.normal(size=(4, 8, 8, 3)).astype("float32"))
    times = torch.tensor(rng.random((4, 1, 1, 1)).astype("float32"))
    nets = {}
    for k in (keras, kestrel):  # both built (and kestrel's given Keras' weights) before training
        network = _ddim_network(_fresh(k))
        nets[k] = (network, k.models.clone_model(network))
    assert _layout(nets[kestrel][0]) == _layout(nets[keras][0])
    assert [l.name for l in nets[kestrel][1].layers][2:] == [l.name for l in nets[keras][1].layers][2:]
    for a, b in zip(nets[keras], nets[kestrel]):
        _copy_weights(a, b)
    results = {}
    for k in (keras, kestrel):
        network, ema_network = nets[k]
        normalizer = k.layers.Normalization()
        normalizer.adapt(images)
        optimizer = k.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4)
        x = normalizer(torch.tensor(images), training=True)
        noise_rates, signal_rates = k.ops.sin(times), k.ops.cos(times)
        noisy_images = signal_rates * x + noise_rates * noises
        network.zero_grad()
        pred_noises = network([noisy_images, noise_rates**2], training=True)
        noise_loss = k.ops.mean(k.losses.mean_absolute_error(noises, pred_noises))
        noise_loss.backward()
        weights = network.trainable_weights
        with torch.no_grad():
            optimizer.apply([v.value.grad for v in weights], weights)
        for weight, ema_weight in zip(network.weights, ema_network.weights):
            ema_weight.assign(0.9 * ema_weight + 0.1 * weight)
        pred = ema_network([noisy_images, noise_rates**2], training=False)
        results[k.__name__] = [noise_loss.detach().numpy(), pred.detach().numpy(),
                               *[w for l in ema_network.layers for w in l.get_weights()]]
    assert len(results["kestrel"]) == len(results["keras"])
    for a, b in zip(results["keras"], results["kestrel"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5)


def _ddpm_layers(k):
    """ddpm's custom layers, which write no get_config: Keras configures them from the
    arguments they were constructed with."""
    layers, ops = k.layers, k.ops

    class AttentionBlock(layers.Layer):
        def __init__(self, units, groups=8, **kwargs):
            self.units = units
            self.groups = groups
            super().__init__(**kwargs)
            self.norm = layers.GroupNormalization(groups=groups)
            self.query = layers.Dense(units)
            self.key = layers.Dense(units)
            self.value = layers.Dense(units)
            self.proj = layers.Dense(units)

        def call(self, inputs):
            batch_size, height, width = (ops.shape(inputs)[i] for i in range(3))
            inputs = self.norm(inputs)
            q, key, v = self.query(inputs), self.key(inputs), self.value(inputs)
            score = ops.einsum("bhwc, bHWc->bhwHW", q, key) * float(self.units) ** -0.5
            score = ops.reshape(score, [batch_size, height, width, height * width])
            score = ops.reshape(ops.softmax(score, -1), [batch_size, height, width, height, width])
            return inputs + self.proj(ops.einsum("bhwHW,bHWc->bhwc", score, v))

    class TimeEmbedding(layers.Layer):
        def __init__(self, dim, **kwargs):
            super().__init__(**kwargs)
            self.dim = dim
            half_dim = dim // 2
            self.emb = ops.exp(ops.arange(half_dim, dtype="float32") * -(math.log(10000) / (half_dim - 1)))

        def call(self, inputs):
            emb = ops.cast(inputs, dtype="float32")[:, None] * self.emb[None, :]
            return ops.concatenate([ops.sin(emb), ops.cos(emb)], axis=-1)

    return AttentionBlock, TimeEmbedding


def _ddpm_unet(k, objects):
    AttentionBlock, TimeEmbedding = objects
    image_input = k.layers.Input(shape=(4, 4, 4), name="image_input")
    time_input = k.Input(shape=(), dtype="int64", name="time_input")
    temb = k.layers.Dense(4)(k.activations.swish(TimeEmbedding(dim=8)(time_input)))
    x = k.layers.Add()([image_input, temb[:, None, None, :]])
    x = AttentionBlock(4, groups=2)(x)
    return k.Model([image_input, time_input], x, name="unet")


def test_ddpm_custom_layers_without_get_config_clone_and_save_as_keras(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 4, 4, 4)).astype("float32")
    steps = np.array([3, 7], "int64")
    models, outputs = {}, {}
    for k in (keras, kestrel):
        objects = _ddpm_layers(_fresh(k))
        models[k] = _ddpm_unet(k, objects)
        block = models[k].get_layer("attention_block")
        assert block.get_config()["units"] == 4 and block.get_config()["groups"] == 2
        models[k].custom = dict(zip(("AttentionBlock", "TimeEmbedding"), objects))
    assert _layout(models[kestrel]) == _layout(models[keras])
    assert models[kestrel].get_layer("attention_block").get_config() == \
        models[keras].get_layer("attention_block").get_config()
    _copy_weights(models[keras], models[kestrel])
    for k, model in models.items():
        clone = k.models.clone_model(model)
        _copy_weights(model, clone)
        path = str(tmp_path / f"unet_{k.__name__}.keras")
        model.save(path)
        loaded = k.models.load_model(path, custom_objects=model.custom)
        assert loaded.get_layer("time_embedding").dim == 8
        outputs[k] = [m([torch.tensor(images), torch.tensor(steps)]).detach().numpy()
                      for m in (model, clone, loaded)]
    for a, b in zip(outputs[keras], outputs[kestrel]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    # a file Keras wrote loads in Kestrel, and gives Keras' outputs
    loaded = kestrel.models.load_model(str(tmp_path / "unet_keras.keras"),
                                       custom_objects=models[kestrel].custom)
    np.testing.assert_allclose(
        loaded([torch.tensor(images), torch.tensor(steps)]).detach().numpy(), outputs[keras][0],
        rtol=1e-5, atol=1e-5)


def test_layer_without_get_config_and_unserializable_arguments_raises_as_keras():
    for k in (keras, kestrel):
        class WithFunction(k.layers.Layer):
            def __init__(self, fn, **kwargs):
                super().__init__(**kwargs)
                self.fn = fn

        class PositionalOnly(k.layers.Layer):
            def __init__(self, units, /, **kwargs):
                super().__init__(**kwargs)

        class NoName(k.layers.Layer):
            def __init__(self, units=3):
                super().__init__()

        for layer in (WithFunction(abs), PositionalOnly(2)):
            with pytest.raises(NotImplementedError, match="get_config"):
                layer.get_config()
        assert sorted(NoName(5).get_config()) == ["dtype", "trainable", "units"]


def test_cyclegan_reflection_padding_sets_attributes_before_super_init():
    """cyclegan's ReflectionPadding2D assigns a tuple before `super().__init__()`."""
    x = np.random.default_rng(0).normal(size=(1, 5, 6, 2)).astype("float32")
    results = {}
    for k in (keras, kestrel):
        class ReflectionPadding2D(k.layers.Layer):
            def __init__(self, padding=(1, 1), **kwargs):
                self.padding = tuple(padding)
                super().__init__(**kwargs)

            def call(self, input_tensor, mask=None):
                pw, ph = self.padding
                pads = k.ops.convert_to_tensor([[0, 0], [ph, ph], [pw, pw], [0, 0]])
                return k.ops.pad(input_tensor, pads, mode="reflect")

        layer = ReflectionPadding2D(padding=(3, 2))
        inputs = k.Input((5, 6, 2))
        model = k.Model(inputs, layer(inputs))
        results[k.__name__] = (model(x).numpy(), model.output.shape, layer.get_config()["padding"])
    np.testing.assert_array_equal(results["kestrel"][0], results["keras"][0])
    assert results["kestrel"][1:] == results["keras"][1:] == ((None, 9, 12, 2), (3, 2))


def _gan(k):
    class GAN(k.Model):
        def __init__(self):
            super().__init__()
            self.generator = k.Sequential([k.Input((3,)), k.layers.Dense(4)], name="generator")
            self.discriminator = k.Sequential([k.Input((4,)), k.layers.Dense(1)],
                                              name="discriminator")

        def call(self, z):
            return self.discriminator(self.generator(z))

        def compile(self, d_optimizer, g_optimizer):
            super().compile()
            self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    gan = _fresh(k) and GAN()
    gan(np.ones((2, 3), "float32"))
    gan.compile(k.optimizers.Adam(0.1), k.optimizers.Adam(0.2))
    return gan


def test_cyclegan_weights_file_keeps_attribute_optimizers_as_keras(tmp_path):
    """cyclegan saves `.weights.h5` checkpoints of a model holding four optimizers as
    attributes, then loads a Keras-trained one: both libraries write and read them."""
    z = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
    gans = {k: _gan(k) for k in (keras, kestrel)}
    _copy_weights(gans[keras], gans[kestrel])
    for k, gan in gans.items():
        for optimizer, net in ((gan.d_optimizer, gan.discriminator), (gan.g_optimizer, gan.generator)):
            loss = k.ops.mean(gan(z) ** 2)
            grads = torch.autograd.grad(loss, [v.value for v in net.trainable_weights])
            with torch.no_grad():
                optimizer.apply(list(grads), net.trainable_weights)
        gan.save_weights(str(tmp_path / f"{k.__name__}.weights.h5"))
    fresh = {k: _gan(k) for k in (keras, kestrel)}
    for k, other in ((keras, kestrel), (kestrel, keras)):
        model = fresh[k]
        for optimizer, net in ((model.d_optimizer, model.discriminator),
                               (model.g_optimizer, model.generator)):
            optimizer.build(net.trainable_weights)
        model.load_weights(str(tmp_path / f"{other.__name__}.weights.h5"))
        np.testing.assert_allclose(model(z).detach().numpy(), gans[other](z).detach().numpy(),
                                   rtol=1e-6)
        for name in ("d_optimizer", "g_optimizer"):
            mine, theirs = getattr(model, name), getattr(gans[other], name)
            assert int(mine.iterations) == int(theirs.iterations) == 1
            # Dense slots have the same layout in both libraries
            for a, b in zip(mine.variables[2:], theirs.variables[2:]):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
