"""Overridable train_step / test_step / predict_step as Keras 3 hands them their data."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (real Keras 3: the reference)

import kestrel  # noqa: E402
from kestrel.utils import pack_x_y_sample_weight, unpack_x_y_sample_weight  # noqa: E402

X = np.random.RandomState(0).rand(8, 3).astype("float32")
Y = np.random.RandomState(1).rand(8, 1).astype("float32")
W = np.linspace(0.5, 1.5, 8).astype("float32")


def _describe(data) -> str:
    if isinstance(data, (tuple, list)):
        return f"{type(data).__name__}({','.join(_describe(d) for d in data)})"
    return "None" if data is None else "T"


def _recording_model(lib):
    """A subclassed model of `lib` whose step overrides record the data they receive."""
    seen = []

    class Recorder(lib.Model):
        def __init__(self):
            super().__init__()
            self.dense = lib.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            seen.append(("train", _describe(data)))
            return super().train_step(data)

        def test_step(self, data):
            seen.append(("test", _describe(data)))
            return super().test_step(data)

        def predict_step(self, data):
            seen.append(("predict", _describe(data)))
            return super().predict_step(data)

    model = Recorder()
    model.compile("sgd", "mse")
    return model, seen


def _exercise(model):
    model.fit(X, Y, batch_size=8, verbose=0)
    model.fit(X, Y, sample_weight=W, batch_size=8, verbose=0)
    model.fit(X, Y, class_weight={0: 1.0, 1: 2.0}, batch_size=8, verbose=0)
    model.evaluate(X, Y, batch_size=8, verbose=0)
    model.evaluate(X, Y, sample_weight=W, batch_size=8, verbose=0)
    model.predict(X, batch_size=8, verbose=0)


def test_steps_receive_the_data_keras_hands_them():
    ours, ours_seen = _recording_model(kestrel)
    theirs, theirs_seen = _recording_model(keras)
    _exercise(ours)
    _exercise(theirs)
    assert ours_seen == theirs_seen
    assert ours_seen[0] == ("train", "tuple(T,T)") and ours_seen[-1] == ("predict", "T")


def test_train_step_gets_x_alone_without_targets():
    seen = []

    class Unsupervised(kestrel.Model):
        def __init__(self):
            super().__init__()
            self.dense = kestrel.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            seen.append(_describe(data))
            loss = self(data).pow(2).mean()
            self.zero_grad()
            loss.backward()
            self.optimizer.apply([v.value.grad for v in self.trainable_weights],
                                 self.trainable_weights)
            return {"energy": loss.detach()}

    model = Unsupervised()
    model.compile("sgd")
    history = model.fit(X, batch_size=4, epochs=2, verbose=0)
    assert seen == ["T"] * 4
    assert list(history.history) == ["energy"] and len(history.history["energy"]) == 2


@pytest.mark.parametrize("data", [
    "x", ("x",), ("x", "y"), ("x", "y", "w"), ["x", "y"], [["x1", "x2"], "y"],
])
def test_unpack_matches_keras(data):
    expected = keras.utils.unpack_x_y_sample_weight(data)
    assert unpack_x_y_sample_weight(data) == expected


@pytest.mark.parametrize("args", [("x",), (["a", "b"],), ("x", "y"), ("x", "y", "w"),
                                  (("a",), None, "w")])
def test_pack_matches_keras(args):
    assert pack_x_y_sample_weight(*args) == keras.utils.pack_x_y_sample_weight(*args)


def test_unpack_rejects_long_tuples():
    with pytest.raises(ValueError, match="Received: a tuple of 4 items"):
        unpack_x_y_sample_weight((1, 2, 3, 4))


def _guide_model(cls, seed=0):
    kestrel.utils.set_random_seed(seed)
    inputs = kestrel.Input(shape=(3,))
    return cls(inputs, kestrel.layers.Dense(1)(inputs))


class GuideModel(kestrel.Model):
    """The guide's first example: compiled loss and metrics, updated through `self.metrics`."""

    def train_step(self, data):
        if len(data) == 3:
            x, y, sample_weight = data
        else:
            (x, y), sample_weight = data, None
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


@pytest.mark.parametrize("weighted", [False, True])
def test_guide_train_step_matches_builtin_fit(weighted):
    custom = _guide_model(GuideModel)
    builtin = _guide_model(kestrel.Model)
    builtin.set_weights(custom.get_weights())
    kwargs = {"sample_weight": W} if weighted else {}
    # the guide passes sample_weight to every metric: weighted_metrics keep both sides alike
    metrics = {"weighted_metrics": ["mae"]} if weighted else {"metrics": ["mae"]}
    histories = []
    for model in (custom, builtin):
        model.compile(optimizer="sgd", loss="mse", **metrics)
        histories.append(model.fit(X, Y, batch_size=4, epochs=3, shuffle=False, verbose=0,
                                   **kwargs).history)
    assert set(histories[0]) == {"loss", "mae"}
    for key in histories[1]:
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5)
    for a, b in zip(custom.get_weights(), builtin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert custom.metrics_names == ["loss", "mae"]


def test_before_training_compiled_metrics_are_one_container_as_in_keras():
    ours = _guide_model(kestrel.Model)
    ours.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    inputs = keras.Input(shape=(3,))
    theirs = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    theirs.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    assert ours.metrics_names == theirs.metrics_names == ["loss", "compile_metrics"]


class OwnTrackers(kestrel.Model):
    """The guide's lower-level example: compile() only configures the optimizer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_tracker = kestrel.metrics.Mean(name="loss")
        self.mae_metric = kestrel.metrics.MeanAbsoluteError(name="mae")
        self.loss_fn = kestrel.losses.MeanSquaredError()

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.loss_fn(y, y_pred)
        loss.backward()
        gradients = [v.value.grad for v in self.trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, self.trainable_weights)
        self.loss_tracker.update_state(loss)
        self.mae_metric.update_state(y, y_pred)
        return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.mae_metric]


def test_own_trackers_are_reset_every_epoch():
    model = _guide_model(OwnTrackers)
    model.compile(optimizer="adam")
    history = model.fit(X, Y, batch_size=2, epochs=3, verbose=0)
    assert set(history.history) == {"loss", "mae"} and len(history.history["loss"]) == 3
    assert float(model.loss_tracker.count) == 4  # the last epoch's 4 batches only
    # evaluate resets them too; this model has no test_step of its own and no compiled loss
    with pytest.raises(ValueError, match="no loss to optimize"):
        model.evaluate(X, Y, verbose=0)


def test_metrics_assigned_as_attributes_are_tracked_like_keras():
    class Tracked(kestrel.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.extra = kestrel.metrics.Mean(name="extra")

    model = _guide_model(Tracked)
    model.compile(optimizer="sgd", loss="mse")
    assert model.metrics_names == ["loss", "extra"]
    # reassigned, removed, replaced by a non-metric, held by a plain torch module: as set now
    model.extra = kestrel.metrics.Sum(name="total")
    model.later = kestrel.metrics.Mean(name="later")
    torch_child = torch.nn.Module()
    torch_child.inner = kestrel.metrics.Mean(name="inner")
    model.layers[-1].wrapped = torch_child
    assert model.metrics_names == ["loss", "total", "later", "inner"]
    del model.later
    model.extra = 3
    model.listed = []
    model.listed = kestrel.metrics.Mean(name="listed")  # was a (tracked) list
    assert model.metrics_names == ["loss", "listed", "inner"]  # the model before its layers


class GuideTestStep(kestrel.Model):
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


def test_guide_test_step_matches_builtin_evaluate():
    custom = _guide_model(GuideTestStep)
    builtin = _guide_model(kestrel.Model)
    builtin.set_weights(custom.get_weights())
    custom.compile(loss="mse", metrics=["mae"])
    builtin.compile(loss="mse", metrics=["mae"])
    # equal batches: the guide's loss mean weights batches alike, the built-in one by size
    expected = builtin.evaluate(X, Y, batch_size=4, verbose=0)
    np.testing.assert_allclose(custom.evaluate(X, Y, batch_size=4, verbose=0), expected,
                               rtol=1e-6)
    logs = custom.evaluate(X, Y, batch_size=4, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mae"} and isinstance(logs["loss"], float)
    history = custom.fit(X, Y, validation_data=(X, Y), verbose=0)
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}


def test_logs_with_other_keys_than_the_metrics_reach_history_and_evaluate():
    class Other(kestrel.Model):
        def train_step(self, data):
            logs = super().train_step(data)
            return {"custom": logs["loss"] * 2}

        def test_step(self, data):
            super().test_step(data)
            return {"b": torch.tensor(2.0), "a": torch.tensor(1.0)}

    model = _guide_model(Other)
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(X, Y, batch_size=8, epochs=2, verbose=0)
    assert list(history.history) == ["custom"]
    assert model.evaluate(X, Y, verbose=0) == [1.0, 2.0]  # sorted keys, as Keras
    assert model.train_on_batch(X, Y, return_dict=True).keys() == {"custom"}


def test_super_train_step_and_jit_fall_back_to_the_override():
    calls = []

    class Counting(kestrel.Model):
        def train_step(self, data):
            calls.append(1)
            return super().train_step(data)

    custom = _guide_model(Counting)
    builtin = _guide_model(kestrel.Model)
    builtin.set_weights(custom.get_weights())
    custom.compile(optimizer="sgd", loss="mse", jit_compile=True)
    builtin.compile(optimizer="sgd", loss="mse")
    assert custom._steps.custom_train and not builtin._steps.custom_train
    custom.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    builtin.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert len(calls) == 4
    for a, b in zip(custom.get_weights(), builtin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_predict_step_override():
    class Doubled(kestrel.Model):
        def predict_step(self, data):
            return super().predict_step(data) * 2

    model = _guide_model(Doubled)
    plain = model(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(model.predict(X, batch_size=3, verbose=0), plain * 2, rtol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch(X), plain * 2, rtol=1e-6)


def test_compute_loss_override_sees_training_flag():
    flags = []

    class Flagged(kestrel.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            flags.append(training)
            return super().compute_loss(x, y, y_pred, sample_weight, training)

    model = _guide_model(Flagged)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, batch_size=8, verbose=0)
    model.evaluate(X, Y, batch_size=8, verbose=0)
    assert flags == [True, False]


def test_subclass_with_its_own_compile_gan_style():
    """The guide's GAN pattern, shrunk: own optimizers, own loss, a DataLoader of images."""
    latent = 4
    discriminator = kestrel.Sequential([kestrel.Input((6, 6, 1)), kestrel.layers.Flatten(),
                                        kestrel.layers.Dense(1)])
    generator = kestrel.Sequential([kestrel.Input((latent,)), kestrel.layers.Dense(36),
                                    kestrel.layers.Reshape((6, 6, 1))])

    class GAN(kestrel.Model):
        def __init__(self, discriminator, generator):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.d_loss_tracker = kestrel.metrics.Mean(name="d_loss")
            self.g_loss_tracker = kestrel.metrics.Mean(name="g_loss")
            self.seed_generator = kestrel.random.SeedGenerator(1337)
            self.built = True

        @property
        def metrics(self):
            return [self.d_loss_tracker, self.g_loss_tracker]

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

        def train_step(self, real_images):
            if isinstance(real_images, tuple):
                real_images = real_images[0]
            n = real_images.shape[0]
            fake = self.generator(kestrel.random.normal((n, latent), seed=self.seed_generator))
            labels = torch.cat([torch.ones(n, 1), torch.zeros(n, 1)])
            labels += 0.05 * kestrel.random.uniform(labels.shape, seed=self.seed_generator)
            self.zero_grad()
            d_loss = self.loss_fn(labels, self.discriminator(torch.cat([fake, real_images])))
            d_loss.backward()
            grads = [v.value.grad for v in self.discriminator.trainable_weights]
            with torch.no_grad():
                self.d_optimizer.apply(grads, self.discriminator.trainable_weights)
            self.zero_grad()
            noise = kestrel.random.normal((n, latent), seed=self.seed_generator)
            g_loss = self.loss_fn(torch.zeros(n, 1), self.discriminator(self.generator(noise)))
            g_loss.backward()
            grads = [v.value.grad for v in self.generator.trainable_weights]
            with torch.no_grad():
                self.g_optimizer.apply(grads, self.generator.trainable_weights)
            self.d_loss_tracker.update_state(d_loss)
            self.g_loss_tracker.update_state(g_loss)
            return {"d_loss": self.d_loss_tracker.result(),
                    "g_loss": self.g_loss_tracker.result()}

    images = torch.rand(16, 6, 6, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, images),
                                         batch_size=8)
    gan = GAN(discriminator, generator)
    gan.compile(d_optimizer=kestrel.optimizers.Adam(learning_rate=3e-4),
                g_optimizer=kestrel.optimizers.Adam(learning_rate=3e-4),
                loss_fn=kestrel.losses.BinaryCrossentropy(from_logits=True))
    before = [w.copy() for w in discriminator.get_weights() + generator.get_weights()]
    history = gan.fit(loader, epochs=2, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    after = discriminator.get_weights() + generator.get_weights()
    assert all(not np.allclose(a, b) for a, b in zip(before, after))
    assert gan.d_optimizer.iterations == gan.g_optimizer.iterations == 4


def test_make_step_functions_run_one_batch_as_keras():
    """`make_train_function()` and friends: `model.train_function([batch])` is one step on
    the batch, cached until `force=True`; same losses, metrics and outputs as Keras."""
    results = {}
    for lib in (kestrel, keras):
        lib.utils.set_random_seed(0)
        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1, kernel_initializer="ones")])
        model.compile(lib.optimizers.SGD(0.1), "mse", metrics=["mae"])
        model.make_train_function()
        first = model.train_function
        model.make_train_function()
        assert model.train_function is first
        model.make_train_function(force=True)
        assert model.train_function is not first
        model.make_test_function()
        model.make_predict_function()
        train = model.train_function([(X, Y)])
        test = model.test_function([(X, Y)])
        out = model.predict_function([(X,)])
        results[lib.__name__] = ({k: float(v) for k, v in train.items()},
                                 {k: float(v) for k, v in test.items()},
                                 np.asarray(kestrel.ops.convert_to_numpy(out)))
    ours, theirs = results["kestrel"], results["keras"]
    for mine, reference in zip(ours[:2], theirs[:2]):
        assert mine.keys() == reference.keys()
        np.testing.assert_allclose(list(mine.values()), list(reference.values()), rtol=1e-5)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-5)
