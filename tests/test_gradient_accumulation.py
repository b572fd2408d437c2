"""Optimizers' `gradient_accumulation_steps` against real Keras 3 (torch backend)."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402
from kestrel import optimizers  # noqa: E402
from tests import optimizer_pairs as pairs  # noqa: E402

SPECS = [("dense/kernel", (5, 3)), ("dense/bias", (3,)), ("conv/kernel", (2, 3, 4))]


def _numpy(value):
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else \
        keras.ops.convert_to_numpy(value)


def _assert_close(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(_numpy(a), _numpy(b), rtol=1e-6, atol=1e-6)


def _run_both(ours, theirs, steps=7, drop=()):
    """Apply the same gradients with both optimizers; `drop` = (step, var) gets no gradient."""
    weights, grads = pairs.random_values(SPECS, 0, steps)
    kv, tv = pairs.kestrel_variables(SPECS, weights), pairs.keras_variables(SPECS, weights)
    for s, step in enumerate(grads):
        step = [None if (s, i) in drop else g for i, g in enumerate(step)]
        ours.apply([None if g is None else torch.tensor(g) for g in step], kv)
        theirs.apply([None if g is None else keras.ops.convert_to_tensor(g) for g in step], tv)
    return kv, tv


CASES = [
    ("Adam", {"learning_rate": 0.05}),
    ("Adam", {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.5,
              "ema_overwrite_frequency": 2}),
    ("Adam", {"learning_rate": 0.05, "clipnorm": 0.5}),
    ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.1, "global_clipnorm": 1.0}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True, "clipvalue": 0.3}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.05, "use_ema": True,
             "loss_scale_factor": 4.0}),
    ("Nadam", {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.7}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    ("Lion", {"learning_rate": 0.01}),
]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_accumulation_matches_keras(name, kwargs):
    kwargs = {"gradient_accumulation_steps": 3, **kwargs}
    ours, theirs = getattr(optimizers, name)(**kwargs), getattr(keras.optimizers, name)(**kwargs)
    kv, tv = _run_both(ours, theirs)
    _assert_close(kv, tv)
    _assert_close(ours.variables, theirs.variables)  # iteration 7, rate, averages, accumulators
    assert ours.iterations == int(theirs.iterations) == 2
    assert int(ours.variables[0]) == 7


def test_schedule_sees_micro_steps_and_missing_gradients_like_keras():
    def schedule():
        return keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)

    ours = optimizers.Adam(kestrel.optimizers.schedules.ExponentialDecay(
        0.1, decay_steps=2, decay_rate=0.5), gradient_accumulation_steps=3, use_ema=True)
    theirs = keras.optimizers.Adam(schedule(), gradient_accumulation_steps=3, use_ema=True)
    kv, tv = _run_both(ours, theirs, drop={(1, 0), (2, 2), (4, 1)})
    _assert_close(kv, tv)
    _assert_close(ours.variables, theirs.variables)
    assert float(ours.learning_rate) == pytest.approx(float(theirs.learning_rate))


def _custom_sgd(base):
    class HalfSGD(base.optimizers.Optimizer):
        """A Keras-style optimizer: its own slot and `update_step`."""

        def build(self, var_list):
            super().build(var_list)
            self.velocities = [self.add_variable_from_reference(v, "velocity")
                               for v in var_list]

        def update_step(self, gradient, variable, learning_rate):
            velocity = self.velocities[self._get_variable_index(variable)]
            self.assign(velocity, velocity * 0.5 + gradient)
            self.assign_sub(variable, velocity * learning_rate)

    return HalfSGD(learning_rate=0.1, gradient_accumulation_steps=3, use_ema=True,
                   clipnorm=1.0, weight_decay=0.01)


def test_custom_update_step_accumulates_like_keras():
    ours, theirs = _custom_sgd(kestrel), _custom_sgd(keras)
    kv, tv = _run_both(ours, theirs)
    _assert_close(kv, tv)
    _assert_close(ours.variables, theirs.variables)


def _model(lib):
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="tanh", name="h"),
                            lib.layers.Dense(1, name="o")])
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5
                       for w in model.get_weights()])
    optimizer = lib.optimizers.Adam(0.05, gradient_accumulation_steps=2, use_ema=True)
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _data():
    rng = np.random.default_rng(2)
    return rng.normal(size=(40, 4)).astype("float32"), rng.normal(size=(40, 1)).astype("float32")


def test_fit_matches_keras_fit():
    x, y = _data()
    ours, theirs = _model(kestrel), _model(keras)
    ours.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)  # 10 micro-steps
    theirs.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    _assert_close(ours.get_weights(), theirs.get_weights())
    _assert_close(ours.optimizer.variables, theirs.optimizer.variables)
    assert ours.optimizer.iterations == 5


def test_keras_files_with_accumulators_load_both_ways(tmp_path):
    x, y = _data()
    ours = _model(kestrel)
    ours.fit(x[:24], y[:24], batch_size=8, epochs=1, verbose=0, shuffle=False)  # 3 micro-steps
    ours.save(tmp_path / "ours.keras")
    loaded = keras.models.load_model(tmp_path / "ours.keras")
    assert loaded.optimizer.gradient_accumulation_steps == 2
    names = [v.path.split("/")[-1] for v in loaded.optimizer.variables]
    assert names[6:10] == ["h_kernel_gradient_accumulator", "h_bias_gradient_accumulator",
                           "o_kernel_gradient_accumulator", "o_bias_gradient_accumulator"]
    _assert_close(ours.optimizer.variables, loaded.optimizer.variables)
    assert np.abs(ours.optimizer.get_weights()[6]).sum() > 0  # a half-accumulated gradient
    loaded.save(tmp_path / "theirs.keras")
    back = kestrel.models.load_model(tmp_path / "theirs.keras")
    _assert_close(back.optimizer.variables, loaded.optimizer.variables)
    assert back.optimizer.iterations == 1 and back.optimizer._micro_steps == 3
    # Both resume from the same point: the next micro-step applies the pending average.
    back.fit(x[24:32], y[24:32], batch_size=8, verbose=0)
    loaded.fit(x[24:32], y[24:32], batch_size=8, verbose=0)
    _assert_close(back.get_weights(), loaded.get_weights())
    _assert_close(back.optimizer.variables, loaded.optimizer.variables)


def test_state_round_trip_and_config():
    opt = optimizers.SGD(0.1, momentum=0.9, gradient_accumulation_steps=3)
    kv, _ = _run_both(opt, keras.optimizers.SGD(0.1, momentum=0.9,
                                                gradient_accumulation_steps=3), steps=4)
    state = opt.get_weights()
    copy = optimizers.SGD.from_config(opt.get_config())
    assert copy.gradient_accumulation_steps == 3
    copy.build(pairs.kestrel_variables(SPECS, [w.detach().numpy() for w in kv]))
    copy.load_state_dict(opt.state_dict())
    assert copy.iterations == 1 and copy._micro_steps == 4
    _assert_close(copy.get_weights(), state)


def test_compiled_whole_step_is_off_with_accumulation():
    assert optimizers.Adam().supports_host_scalars
    assert not optimizers.Adam(gradient_accumulation_steps=2).supports_host_scalars


@pytest.mark.parametrize("steps", [1, 0.5, "2", True])
def test_bad_steps_raise(steps):
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        optimizers.Adam(gradient_accumulation_steps=steps)
