"""keras.io vision examples (part b: metric learning, OCR, attribution, video, detection): the
same code runs with Kestrel and with real Keras (torch backend); layouts, values and training
behaviour agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import copy_weights as _copy_weights  # noqa: E402


def _siamese_steps(k, x):
    """siamese_network's SiameseModel: a train_step calls the inner network without
    `training`, so Keras runs its BatchNormalization in inference mode."""
    inputs = [k.Input((3,), name="anchor"), k.Input((3,), name="positive")]
    shared = k.Sequential([k.layers.Dense(4), k.layers.BatchNormalization()], name="embedding")
    outputs = k.ops.sum(k.ops.square(shared(inputs[0]) - shared(inputs[1])), -1)
    network = k.Model(inputs, outputs)
    seen = []

    class SiameseModel(k.Model):
        def __init__(self, network):
            super().__init__()
            self.network = network
            self.loss_tracker = k.metrics.Mean(name="loss")

        def call(self, inputs):
            return self.network(inputs)

        def train_step(self, data):
            self.zero_grad()
            loss = self.network(data[0])
            seen.append(loss.detach().numpy().copy())
            seen.append(self.network(data[0], training=True).detach().numpy().copy())
            loss.mean().backward()
            weights = self.network.trainable_weights
            with torch.no_grad():
                self.optimizer.apply([v.value.grad for v in weights], weights)
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

        @property
        def metrics(self):
            return [self.loss_tracker]

    model = SiameseModel(network)
    model.compile(optimizer=k.optimizers.Adam(0.01))
    return network, model, seen


def test_custom_train_step_calls_without_training_run_in_inference():
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(4, 3)).astype("float32") for _ in range(2)]
    ref_net, ref_model, ref_seen = _siamese_steps(_fresh(keras), x)
    net, model, seen = _siamese_steps(_fresh(kestrel), x)
    _copy_weights(ref_net.layers[2], net.layers[2])
    ref = ref_model.fit(x, epochs=2, batch_size=4, shuffle=False, verbose=0).history
    got = model.fit(x, epochs=2, batch_size=4, shuffle=False, verbose=0).history
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-5)
    for a, b in zip(seen, ref_seen):  # inference, then training=True, each step
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    bn, ref_bn = net.layers[2].layers[1], ref_net.layers[2].layers[1]
    np.testing.assert_allclose(bn.moving_mean.numpy(), ref_bn.moving_mean.numpy(), atol=1e-6)
    assert not model.training  # left in inference after fit


def _super_step_model(k):
    class Logged(k.Model):
        def train_step(self, data):
            return super().train_step(data)

    inputs = k.Input((3,))
    return Logged(inputs, k.layers.BatchNormalization()(k.layers.Dense(2)(inputs)))


def test_custom_train_step_through_super_trains_batchnorm():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    models = [_super_step_model(_fresh(lib)) for lib in (keras, kestrel)]
    models[1].set_weights(models[0].get_weights())
    for model in models:
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert np.abs(models[1].layers[2].moving_mean.numpy()).max() > 0  # batch statistics used


def test_rescaling_computes_in_its_integer_dtype():
    """semisupervised_simclr's `Rescaling(1 / 255, dtype="uint8")`: the scale is cast to the
    compute dtype (to 0), as Keras, and the output dtype agrees with the symbolic one."""
    x = np.full((1, 2, 2, 3), 200, "uint8")
    for kwargs in ({"scale": 1 / 255, "dtype": "uint8"},
                   {"scale": [2, 0.5, 1], "offset": -1, "dtype": "int32"},
                   {"scale": 1 / 255, "dtype": "float16"}):
        ref = keras.layers.Rescaling(**kwargs)(x)
        layer = kestrel.layers.Rescaling(**kwargs)
        got = layer(x)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got.numpy(), ref.numpy())
        symbolic = kestrel.layers.Rescaling(**kwargs)(kestrel.Input((2, 2, 3), dtype="uint8"))
        assert symbolic.dtype == kwargs["dtype"]


def _nested_models(k):
    """token_learner / image_captioning: Sequential and functional models nested in a model;
    the functional one is called twice."""
    inputs = k.Input((4,))
    augment = k.Sequential([k.layers.Rescaling(0.5), k.layers.Dense(4)], name="augment")
    inner_in = k.Input((4,))
    inner = k.Model(inner_in, k.layers.Dense(3, name="inner_dense")(inner_in), name="inner")
    first = inner(augment(inputs))
    second = inner(inputs)
    return k.Model(inputs, [k.layers.Dense(2, name="head")(first), second, first])


def test_nested_models_round_trip_configs_with_keras(tmp_path):
    x = np.random.default_rng(2).normal(size=(3, 4)).astype("float32")
    ref, ours = _nested_models(_fresh(keras)), _nested_models(_fresh(kestrel))
    _copy_weights(ref, ours)
    assert ours.get_config()["output_layers"] == ref.get_config()["output_layers"]
    entries = {e["name"]: e for e in ours.get_config()["layers"]}
    assert (entries["augment"]["module"], entries["inner"]["module"],
            entries["inner"]["registered_name"]) == ("keras", "keras.src.models.functional",
                                                    "Functional")
    expected = ref.predict(x, verbose=0)
    ref.save(tmp_path / "keras.keras")
    ours.save(tmp_path / "kestrel.keras")
    for loaded in (kestrel.saving.load_model(tmp_path / "keras.keras"),
                   keras.saving.load_model(tmp_path / "kestrel.keras")):
        for got, want in zip(loaded.predict(x, verbose=0), expected):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
