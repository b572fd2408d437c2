"""Lamb, Adafactor, Muon, ScheduleFreeAdamW, LossScaleOptimizer, MultiOptimizer against Keras 3."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402
from kestrel import optimizers  # noqa: E402
from tests import optimizer_pairs as pairs  # noqa: E402

SPECS = [("dense/kernel", (5, 3)), ("dense/bias", (3,)), ("conv/kernel", (2, 3, 4)),
         ("embedding/embeddings", (6, 2)), ("wide/kernel", (2, 7))]


def _values(seed, steps=4):
    return pairs.random_values(SPECS, seed, steps)


def _kestrel_vars(weights):
    return pairs.kestrel_variables(SPECS, weights)


def _keras_vars(weights):
    return pairs.keras_variables(SPECS, weights)


def _run_both(name, kwargs, seed=0, steps=4, setup=None):
    weights, grads = _values(seed, steps)
    ours, theirs = getattr(optimizers, name)(**kwargs), getattr(keras.optimizers, name)(**kwargs)
    kv, tv = _kestrel_vars(weights), _keras_vars(weights)
    if setup:
        setup(ours, kv)
        setup(theirs, tv)
    for step in grads:
        ours.apply([torch.tensor(g) for g in step], kv)
        theirs.apply([keras.ops.convert_to_tensor(g) for g in step], tv)
    return ours, theirs, kv, tv


CASES = [
    ("Lamb", {}), ("Lamb", {"learning_rate": 0.01, "weight_decay": 0.1, "beta_1": 0.8}),
    ("Adafactor", {}), ("Adafactor", {"learning_rate": 0.5, "relative_step": False,
                                      "clip_threshold": 0.5, "weight_decay": 0.01}),
    ("Muon", {}), ("Muon", {"learning_rate": 0.02, "nesterov": False, "rms_rate": None,
                            "exclude_layers": ["wide"], "adam_lr_ratio": 0.5}),
    ("Muon", {"exclude_embeddings": False, "ns_steps": 3, "momentum": 0.9}),
]
SCHEDULE_FREE_CASES = [{"learning_rate": 0.01, "warmup_steps": 3},
                       {"weight_decay": 0.05, "epsilon": 1e-6}]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_matches_keras(name, kwargs):
    ours, theirs, kv, tv = _run_both(name, kwargs)
    for a, b in zip(kv, tv):
        np.testing.assert_allclose(a.detach().numpy(), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6)
    ours_state = ours.get_weights()
    their_state = [keras.ops.convert_to_numpy(v) for v in theirs.variables]
    assert [w.shape for w in ours_state] == [w.shape for w in their_state]
    for a, b in zip(ours_state, their_state):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["Lamb", "Adafactor", "Muon", "ScheduleFreeAdamW"])
def test_config_round_trip(name):
    ours, theirs = getattr(optimizers, name)(), getattr(keras.optimizers, name)()
    config = ours.get_config()
    reference = theirs.get_config()
    assert set(config) == set(reference)
    for key, value in reference.items():
        if key not in ("name", "learning_rate"):
            assert config[key] == value, key
    again = optimizers.deserialize(optimizers.serialize(ours))
    assert type(again) is type(ours) and again.get_config() == config


def _ref_schedule_free(w, grads, lr=0.0025, b1=0.9, b2=0.999, eps=1e-8, warmup=0, wd=None):
    """Keras' update rule in float64, reading the momentum before its update (as Keras'
    JAX/TF backends do; its torch backend reads the updated one through an aliased tensor)."""
    w = w.astype("float64")
    z, v = w.copy(), np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        rate = lr * min(t / warmup, 1.0) if warmup else lr
        if wd:
            w = w - w * wd * lr
        v = v + (g * g - v) * (1 - b2)
        z_old = z
        z = z - rate * g / (np.sqrt(v / (1 - b2 ** t)) + eps)
        x_old = (w - (1 - b1) * z_old) / b1
        x = (1 - 1 / t) * x_old + z / t
        w = (1 - b1) * z + b1 * x
    return w


@pytest.mark.parametrize("kwargs", SCHEDULE_FREE_CASES)
def test_schedule_free(kwargs):
    weights, grads = _values(1)
    opt = optimizers.ScheduleFreeAdamW(**kwargs)
    kv = _kestrel_vars(weights)
    for step in grads:
        opt.apply([torch.tensor(g) for g in step], kv)
    args = {"lr": kwargs.get("learning_rate", 0.0025), "eps": kwargs.get("epsilon", 1e-8),
            "warmup": kwargs.get("warmup_steps", 0), "wd": kwargs.get("weight_decay")}
    for i, v in enumerate(kv):
        expected = _ref_schedule_free(weights[i], [g[i] for g in grads], **args)
        np.testing.assert_allclose(v.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert [w.shape for w in opt.get_weights()] == \
        [()] * 2 + [s for _, s in SPECS for _ in range(2)]


@pytest.mark.parametrize("name", ["Lamb", "AdamW", "SGD", "RMSprop"])
def test_exclude_from_weight_decay_matches_keras(name):
    def setup(opt, variables):
        opt.exclude_from_weight_decay(var_list=[variables[0]], var_names=["bias"])

    _, _, kv, tv = _run_both(name, {"weight_decay": 0.5, "learning_rate": 0.1}, setup=setup)
    for a, b in zip(kv, tv):
        np.testing.assert_allclose(a.detach().numpy(), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-5)  # decay differences are 5e-2 per step


def test_exclude_after_build_raises():
    opt = optimizers.Lamb(weight_decay=0.1)
    opt.build(_kestrel_vars(_values(0)[0]))
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["bias"])


def test_loss_scale_optimizer_matches_keras():
    weights, grads = _values(2, steps=5)
    grads[2][1][0] = np.inf  # a skipped step halves the scale
    ours = optimizers.LossScaleOptimizer(optimizers.Adam(0.1), initial_scale=8.0,
                                         dynamic_growth_steps=2)
    theirs = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.1), initial_scale=8.0,
                                                 dynamic_growth_steps=2)
    kv, tv = _kestrel_vars(weights), _keras_vars(weights)
    for step in grads:
        ours.apply([torch.tensor(g) for g in step], kv)
        theirs.apply([keras.ops.convert_to_tensor(g) for g in step], tv)
    for a, b in zip(kv, tv):  # torch's fused Adam: float32 rounding of a 0.1 rate
        np.testing.assert_allclose(a.detach().numpy(), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-5)
    their_state = [keras.ops.convert_to_numpy(v) for v in theirs.variables]
    for a, b in zip(ours.get_weights(), their_state):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert ours.iterations == 4 and ours.learning_rate == pytest.approx(0.1)
    assert float(ours.scale_loss(torch.tensor(1.0))) == float(theirs.dynamic_scale)
    config = ours.get_config()
    ignored = ("inner_optimizer", "name")  # names are numbered per process
    assert {k: v for k, v in config.items() if k not in ignored} == \
        {k: v for k, v in theirs.get_config().items() if k not in ignored}
    again = optimizers.deserialize(optimizers.serialize(ours))
    assert isinstance(again.inner_optimizer, optimizers.Adam)


def test_loss_scale_optimizer_step_and_exports():
    assert kestrel.optimizers.LossScaleOptimizer is optimizers.LossScaleOptimizer
    with pytest.raises(ValueError, match="does not support `clipnorm`"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), clipnorm=1.0)
    w = torch.nn.Parameter(torch.ones(3))
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(1.0), initial_scale=4.0)
    opt.build([w])
    opt.scale_loss((w * torch.tensor([1.0, 2.0, 3.0])).sum()).backward()
    opt.step()
    np.testing.assert_allclose(w.detach().numpy(), [0.0, -1.0, -2.0])


def test_multi_optimizer_matches_keras():
    weights, grads = _values(3)

    def make(module):
        mapping = module.optimizers.OptimizerMap(module.optimizers.SGD(0.1))
        mapping["dense/.*"] = module.optimizers.Adam(0.01)
        mapping["conv/kernel"] = module.optimizers.Lamb(0.02)
        return module.optimizers.MultiOptimizer(mapping)

    ours, theirs = make(kestrel), make(keras)
    kv, tv = _kestrel_vars(weights), _keras_vars(weights)
    for step in grads:
        ours.apply([torch.tensor(g) for g in step], kv)
        theirs.apply([keras.ops.convert_to_tensor(g) for g in step], tv)
    for a, b in zip(kv, tv):
        np.testing.assert_allclose(a.detach().numpy(), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6)
    assert [w.shape for w in ours.get_weights()] == \
        [tuple(v.shape) for v in theirs.variables]
    assert ours.iterations == 4 and [o.iterations for o in ours.optimizers] == [4, 4, 4]
    with pytest.raises(AttributeError, match="individual sub-optimizers"):
        ours.learning_rate  # noqa: B018
    again = optimizers.deserialize(optimizers.serialize(ours))
    assert [type(o).__name__ for o in again.optimizers] == ["Adam", "Lamb", "SGD"]
    mapping = optimizers.OptimizerMap(optimizers.SGD())
    with pytest.raises(ValueError, match="cannot be a LossScaleOptimizer"):
        mapping["x"] = optimizers.LossScaleOptimizer(optimizers.SGD())


def test_fit_with_new_optimizers():
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    for opt in (optimizers.Lamb(0.05), optimizers.Adafactor(0.05), optimizers.Muon(0.05),
                optimizers.ScheduleFreeAdamW(0.05)):
        model = kestrel.Sequential([kestrel.Input((4,)), kestrel.layers.Dense(8),
                                    kestrel.layers.Dense(1)])
        model.compile(optimizer=opt, loss="mse")
        history = model.fit(x, y, epochs=4, batch_size=8, verbose=0)
        assert history.history["loss"][-1] < history.history["loss"][0], type(opt).__name__
