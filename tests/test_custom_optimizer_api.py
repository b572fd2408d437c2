"""Keras 3's custom-optimizer API (build/add_variable*/update_step/assign*), stateless optimizer
and metric methods, checked against real Keras 3 (torch backend) running the same code."""
import os
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402


def custom_sgd(k):
    """The Keras docs' SGD-with-momentum optimizer, written against the module `k`."""
    ops = k.ops

    class MomentumSGD(k.optimizers.Optimizer):
        def __init__(self, learning_rate=0.05, momentum=0.9, name=None, **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            self.momentum = momentum

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            self.momentums = [self.add_variable_from_reference(reference_variable=v,
                                                               name="momentum")
                              for v in variables]
            self.steps_seen = self.add_variable((), initializer="zeros", dtype="float32",
                                                name="steps_seen")

        def update_step(self, gradient, variable, learning_rate):
            learning_rate = ops.cast(learning_rate, variable.dtype)
            gradient = ops.cast(gradient, variable.dtype)
            m = self.momentums[self._get_variable_index(variable)]
            self.assign(m, ops.subtract(ops.multiply(m, ops.cast(self.momentum, variable.dtype)),
                                        ops.multiply(gradient, learning_rate)))
            self.assign_add(variable, m)
            # `iterations` counts the steps before this one, as in Keras
            self.assign(self.steps_seen, ops.cast(self.iterations + 1, "float32"))

        def get_config(self):
            return {**super().get_config(), "momentum": self.momentum}

    return MomentumSGD


def scaled_adam(k):
    """A subclass of the built-in Adam whose `update_step` calls `super()` with half the rate."""

    class HalfRateAdam(k.optimizers.Adam):
        def update_step(self, gradient, variable, learning_rate):
            super().update_step(gradient, variable, learning_rate * 0.5)

    return HalfRateAdam


DATA_X = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
DATA_Y = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")


def make_model(k, weights=None):
    model = k.Sequential([k.Input((5,)), k.layers.Dense(4, activation="tanh"),
                          k.layers.Dense(2)])
    if weights is not None:
        model.set_weights(weights)
    return model


def fit_both(make_optimizer, epochs=2):
    """Fit the same model on the same batches in Keras and Kestrel; returns both models."""
    reference = make_model(keras)
    ours = make_model(kestrel, reference.get_weights())
    for k, model in ((keras, reference), (kestrel, ours)):
        model.compile(optimizer=make_optimizer(k), loss="mse")
        model.fit(DATA_X, DATA_Y, batch_size=4, epochs=epochs, shuffle=False, verbose=0)
    return reference, ours


def assert_weights_close(a, b, atol=1e-6):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


CONFIGS = {
    "plain": {},
    "clipnorm_decay_ema": {"clipnorm": 0.5, "weight_decay": 0.01, "use_ema": True,
                           "ema_overwrite_frequency": 3},
    "schedule_global_clip": {"global_clipnorm": 1.0, "loss_scale_factor": 4.0},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_custom_update_step_matches_keras(config):
    def make(k):
        kwargs = dict(config)
        if "loss_scale_factor" in kwargs:
            kwargs["learning_rate"] = k.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5)
        return custom_sgd(k)(**kwargs)

    reference, ours = fit_both(make)
    assert_weights_close(reference.get_weights(), ours.get_weights())
    assert int(ours.optimizer.iterations) == int(reference.optimizer.iterations) == 8
    assert_weights_close([v.numpy() for v in reference.optimizer.variables],
                         ours.optimizer.get_weights())


def test_variable_names_and_order_follow_keras():
    reference, ours = fit_both(lambda k: custom_sgd(k)(name="msgd", use_ema=True), epochs=1)
    theirs = reference.optimizer.variables
    mine = ours.optimizer.variables
    assert [tuple(v.shape) for v in mine] == [tuple(v.shape) for v in theirs]
    own = mine[-5:]  # four momentums, then steps_seen
    expected = [f"{p.path.replace('/', '_')}_momentum" for p in ours.trainable_weights]
    assert [v.name for v in own] == expected + ["steps_seen"]
    assert all(v.path == f"msgd/{v.name}" for v in own)
    # Keras also prefixes the model's name (sequential_dense_kernel_momentum)
    assert [v.name.rsplit("_", 2)[1:] for v in theirs[-5:-1]] == \
        [v.name.rsplit("_", 2)[1:] for v in own[:-1]]
    assert not any(v.trainable for v in own)
    assert float(own[-1]) == 4.0  # the last update saw iterations == 3


def test_add_optimizer_variables_interleaves_like_keras():
    for k in (keras, kestrel):
        model = make_model(k)
        opt = k.optimizers.SGD() if k is keras else custom_sgd(k)()
        opt.build(model.trainable_variables) if k is kestrel else None
        made = opt.add_optimizer_variables(model.trainable_variables[:2], ["m", "v"],
                                           initializer="ones")
        assert isinstance(made, tuple) and len(made) == 2
        names = [v.name for v in opt.variables[-4:]]
        assert [n.rsplit("_", 1)[1] for n in names] == ["m", "v", "m", "v"]
        assert float(np.asarray(made[1][1]).sum()) == 4.0
    with pytest.raises(ValueError, match="number of provided names"):
        opt.add_optimizer_variables(model.trainable_variables, ["a", "b"], ["zeros"])


def test_keras_file_round_trip_with_custom_optimizer(tmp_path):
    reference, ours = fit_both(lambda k: custom_sgd(k)(), epochs=1)
    path = str(tmp_path / "model.keras")
    # registered, the file names the class as Keras reads it ("h13>MomentumSGD")
    kestrel.saving.register_keras_serializable("h13")(type(ours.optimizer))
    ours.save(path)
    loaded = kestrel.saving.load_model(path)
    assert type(loaded.optimizer).__name__ == "MomentumSGD"
    assert loaded.optimizer.momentum == 0.9
    assert_weights_close(loaded.optimizer.get_weights(), ours.optimizer.get_weights(), 0)
    # Real Keras reads the file: same weights and optimizer state as Keras' own run.
    in_keras = keras.saving.load_model(path, custom_objects={"h13>MomentumSGD": custom_sgd(keras)})
    assert_weights_close([v.numpy() for v in in_keras.optimizer.variables],
                         [v.numpy() for v in reference.optimizer.variables])
    # Training resumes identically in both.
    for model in (loaded, reference):
        model.fit(DATA_X, DATA_Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(loaded.get_weights(), reference.get_weights())


def test_builtin_update_step_through_super_matches_keras():
    reference, ours = fit_both(lambda k: scaled_adam(k)(learning_rate=0.01))
    assert_weights_close(reference.get_weights(), ours.get_weights())
    # and it is Adam at half the rate: the same as the fused built-in at 0.005
    plain = make_model(kestrel, make_model(keras).get_weights())
    half = make_model(kestrel, plain.get_weights())
    plain.compile(kestrel.optimizers.Adam(0.005), "mse")
    half.compile(scaled_adam(kestrel)(learning_rate=0.01), "mse")
    for model in (plain, half):
        model.fit(DATA_X, DATA_Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(plain.get_weights(), half.get_weights())


@pytest.mark.parametrize("name", ["sgd_momentum", "adam", "custom"])
def test_stateless_apply_matches_keras_and_keeps_state(name):
    rng = np.random.default_rng(2)
    values = [rng.normal(size=s).astype("float32") for s in ((3, 2), (2,))]
    grads = [rng.normal(size=v.shape).astype("float32") for v in values]
    results = []
    for k in (keras, kestrel):
        opt = {"sgd_momentum": lambda: k.optimizers.SGD(0.1, momentum=0.9),
               "adam": lambda: k.optimizers.Adam(0.1),
               "custom": lambda: custom_sgd(k)(0.1)}[name]()
        variables = [k.Variable(v.copy()) for v in values]
        opt.build(variables)
        before = [np.array(v.numpy()) for v in opt.variables]
        state = [torch.as_tensor(np.asarray(v.numpy())) for v in opt.variables]
        trainable = [torch.tensor(v) for v in values]  # copies: Keras' torch kernels write in place
        for _ in range(2):
            trainable, state = opt.stateless_apply(state, [torch.as_tensor(g) for g in grads],
                                                   trainable)
        assert_weights_close([v.numpy() for v in variables], values, 0)  # unchanged
        assert_weights_close([v.numpy() for v in opt.variables], before, 0)
        results.append(([np.asarray(t) for t in trainable], [np.asarray(s) for s in state]))
    assert_weights_close(results[0][0], results[1][0], 1e-5)  # Adam: fused-kernel rounding
    assert_weights_close(results[0][1], results[1][1], 1e-5)
    with pytest.raises(ValueError, match="optimizer_variables"):
        opt.stateless_apply(state[:1], grads, trainable)


def test_stateless_apply_needs_a_built_optimizer():
    with pytest.raises(ValueError, match="must be built"):
        kestrel.optimizers.SGD().stateless_apply([], [], [])


def test_save_and_load_own_variables():
    variables = [kestrel.Variable(np.ones((2, 2), "float32"))]
    opt = kestrel.optimizers.Adam(0.1)
    opt.apply([torch.ones(2, 2)], variables)
    store = {}
    opt.save_own_variables(store)
    assert sorted(store) == ["0", "1", "2", "3"] and int(store["0"]) == 1
    fresh = kestrel.optimizers.Adam(0.1)
    fresh.build(variables)
    fresh.load_own_variables(store)
    assert_weights_close(fresh.get_weights(), opt.get_weights(), 0)
    with pytest.warns(UserWarning, match="Skipping variable loading"):
        kestrel.optimizers.Adam(0.1).load_own_variables(store)


def test_missing_super_init_is_reported():
    class Broken(kestrel.optimizers.Optimizer):
        def __init__(self):
            self.add_variable((1,))

    with pytest.raises(RuntimeError, match="forgot to call `super"):
        Broken()


METRIC_CASES = {
    "mean": (lambda k: k.metrics.Mean(), ([1.0, 2.0, 4.0],)),
    "accuracy": (lambda k: k.metrics.BinaryAccuracy(), ([[1.0], [0.0], [1.0]],
                                                        [[0.8], [0.6], [0.3]])),
    "auc": (lambda k: k.metrics.AUC(num_thresholds=5), ([0.0, 1.0, 1.0, 0.0],
                                                         [0.2, 0.7, 0.4, 0.9])),
}


@pytest.mark.parametrize("make,inputs", METRIC_CASES.values(), ids=METRIC_CASES.keys())
def test_metric_stateless_methods_match_keras(make, inputs):
    outputs = []
    for k in (keras, kestrel):
        metric = make(k)
        metric.update_state(*[np.asarray(x, "float32") for x in inputs])
        kept = [np.array(v.numpy()) for v in metric.variables]
        state = [torch.as_tensor(np.asarray(v.numpy())) for v in metric.variables]
        for _ in range(2):
            state = metric.stateless_update_state(
                state, *[torch.as_tensor(np.asarray(x, "float32")) for x in inputs])
        result = metric.stateless_result(state)
        reset = metric.stateless_reset_state()
        assert_weights_close([v.numpy() for v in metric.variables], kept, 0)  # unchanged
        outputs.append(([np.asarray(s) for s in state], float(result),
                        [np.asarray(r) for r in reset]))
    assert_weights_close(outputs[0][0], outputs[1][0])
    assert outputs[0][1] == pytest.approx(outputs[1][1], abs=1e-6)
    assert_weights_close(outputs[0][2], outputs[1][2], 0)
    with pytest.raises(ValueError, match="metric_variables"):
        make(kestrel).stateless_result([])


BUILTINS = ["SGD", "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad", "Adadelta",
            "Ftrl", "Lamb", "Lion", "Adafactor", "Muon", "ScheduleFreeAdamW"]


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_update_step_equals_its_fused_step(name):
    cls = getattr(kestrel.optimizers, name)
    via_super = type("ViaSuper", (cls,), {"update_step": lambda self, g, v, lr:
                                          cls.update_step(self, g, v, lr)})
    results = []
    for make in (cls, via_super):
        rng = np.random.default_rng(3)
        variables = [kestrel.Variable(rng.normal(size=s).astype("float32"))
                     for s in ((3, 4), (4,))]
        opt = make(learning_rate=0.01)
        for _ in range(3):
            opt.apply([torch.as_tensor(rng.normal(size=v.shape).astype("float32"))
                       for v in variables], variables)
        results.append([v.numpy() for v in variables] + opt.get_weights())
    assert_weights_close(results[0], results[1])
