"""Optimizers' `use_ema` and the `SwapEMAWeights` callback against real Keras 3 (torch backend)."""
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


def _values(seed, steps):
    return pairs.random_values(SPECS, seed, steps)


def _kestrel_vars(weights):
    return pairs.kestrel_variables(SPECS, weights)


def _keras_vars(weights):
    return pairs.keras_variables(SPECS, weights)


def _run_both(name, kwargs, steps=5, drop=None):
    """Apply the same gradients with both libraries; `drop` = (step, var) gets no gradient."""
    weights, grads = _values(0, steps)
    ours, theirs = getattr(optimizers, name)(**kwargs), getattr(keras.optimizers, name)(**kwargs)
    kv, tv = _kestrel_vars(weights), _keras_vars(weights)
    ours.build(kv)
    theirs.build(tv)
    for s, step in enumerate(grads):
        step = [None if drop and (s, i) in drop else g for i, g in enumerate(step)]
        ours.apply([None if g is None else torch.tensor(g) for g in step], kv)
        theirs.apply([None if g is None else keras.ops.convert_to_tensor(g) for g in step], tv)
    return ours, theirs, kv, tv


def _assert_same(kv, tv):
    for a, b in zip(kv, tv):
        np.testing.assert_allclose(a.detach().numpy(), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6)


CASES = [
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("Adam", {"learning_rate": 0.05}),
    ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.1, "ema_momentum": 0.5}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "ema_overwrite_frequency": 2}),
    ("Nadam", {"learning_rate": 0.05, "ema_overwrite_frequency": 3}),
    ("Adagrad", {"learning_rate": 0.1, "ema_momentum": 0.0}),
    ("Lion", {"learning_rate": 0.01, "ema_momentum": 1.0, "ema_overwrite_frequency": 4}),
    ("Adafactor", {"learning_rate": 0.1, "ema_momentum": 0.8}),
]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_ema_matches_keras(name, kwargs):
    ours, theirs, kv, tv = _run_both(name, {"use_ema": True, **kwargs})
    _assert_same(kv, tv)
    their_state = [keras.ops.convert_to_numpy(v) for v in theirs.variables]
    ours_state = ours.get_weights()
    assert [w.shape for w in ours_state] == [w.shape for w in their_state]
    for a, b in zip(ours_state, their_state):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ours.finalize_variable_values(kv)
    theirs.finalize_variable_values(tv)
    _assert_same(kv, tv)


def test_averages_come_first_in_keras_order_and_names():
    model = kestrel.Sequential([kestrel.layers.Input((3,)), kestrel.layers.Dense(2, name="d")])
    model.compile(optimizer=optimizers.Adam(use_ema=True), loss="mse")
    model.optimizer.build(model.trainable_weights)
    from kestrel.saving.keras_weights import optimizer_state

    names = [name.split("/", 1)[1] for name, _ in optimizer_state(model)]
    assert names[2:4] == [f"{model.name}_d_kernel_average", f"{model.name}_d_bias_average"]
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    theirs.compile(optimizer=keras.optimizers.Adam(use_ema=True), loss="mse")
    theirs.optimizer.build(theirs.trainable_variables)
    kinds = [v.path.split("/")[-1].rsplit("_", 1)[-1] for v in theirs.optimizer.variables]
    assert [n.rsplit("_", 1)[-1] for n in names] == kinds
    assert len(model.optimizer.variables) == len(theirs.optimizer.variables) == 8


def test_missing_gradient_still_averages_every_variable():
    ours, theirs, kv, tv = _run_both("Adam", {"use_ema": True, "ema_overwrite_frequency": 2},
                                     drop={(1, 0), (2, 2), (3, 0)})
    _assert_same(kv, tv)
    for a, b in zip(ours.get_weights(), theirs.variables):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6)


def test_traced_update_equals_eager_update():
    """The branch-free update a compiled step runs (0-d tensor step) gives the eager numbers."""
    weights, _ = _values(1, 1)
    results = []
    for as_tensor in (False, True):
        opt = optimizers.SGD(use_ema=True, ema_momentum=0.7, ema_overwrite_frequency=2)
        params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
        opt.build(params)
        with torch.no_grad():
            for t in (1, 2, 3):
                for p in params:
                    p.mul_(1.5).add_(0.25)
                opt._update_ema(torch.tensor(float(t)) if as_tensor else t)
        results.append([p.detach().clone() for p in params] +
                       [a.clone() for a in opt._slots["average"]])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_without_ema_no_average_slot_and_finalize_is_a_no_op():
    weights, grads = _values(0, 1)
    opt = optimizers.Adam()
    kv = _kestrel_vars(weights)
    opt.apply([torch.tensor(g) for g in grads[0]], kv)
    assert len(opt.variables) == 2 + 2 * len(SPECS)
    before = [v.detach().clone() for v in kv]
    opt.finalize_variable_values(kv)
    for a, b in zip(before, kv):
        assert torch.equal(a, b.detach())


@pytest.mark.parametrize("kwargs,match", [
    ({"ema_momentum": 1.5}, "ema_momentum"), ({"ema_momentum": -0.1}, "ema_momentum"),
    ({"ema_overwrite_frequency": 0.5}, "ema_overwrite_frequency"),
    ({"ema_overwrite_frequency": -2}, "ema_overwrite_frequency"),
])
def test_bad_ema_arguments_raise_like_keras(kwargs, match):
    with pytest.raises(ValueError, match=match) as ours:
        optimizers.SGD(use_ema=True, **kwargs)
    with pytest.raises(ValueError) as theirs:
        keras.optimizers.SGD(use_ema=True, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_config_round_trip_and_keras_config():
    opt = optimizers.RMSprop(use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=5)
    config = opt.get_config()
    clone = optimizers.RMSprop.from_config(config)
    assert (clone.use_ema, clone.ema_momentum, clone.ema_overwrite_frequency) == (True, 0.9, 5)
    theirs = keras.optimizers.RMSprop(use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=5)
    for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency"):
        assert config[key] == theirs.get_config()[key]


def test_state_survives_set_weights():
    ours, _, kv, _ = _run_both("Adam", {"use_ema": True}, steps=3)
    state = ours.get_weights()
    fresh = optimizers.Adam(use_ema=True)
    fresh.build(_kestrel_vars(_values(0, 1)[0]))
    fresh.set_weights(state)
    for a, b in zip(fresh.get_weights(), state):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ SwapEMAWeights
def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 4)).astype("float32")
    return x, (x @ rng.normal(size=(4, 1))).astype("float32")


def _model(lib, **opt):
    model = lib.Sequential([lib.layers.Input((4,)), lib.layers.Dense(1)])
    model.layers[0].set_weights([np.full((4, 1), 0.1, "float32"), np.zeros(1, "float32")])
    model.compile(optimizer=lib.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5, **opt),
                  loss="mse")
    return model


class _Record(kestrel.callbacks.Callback):
    """Records the kernel and its average when evaluation starts and when an epoch ends."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def _record(self, kind):
        average = self.model.optimizer._slots["average"][0]
        self.seen.append((kind, self.model.layers[0].kernel.detach().clone(), average.clone()))

    def on_test_begin(self, logs=None):
        self._record("test")

    def on_epoch_end(self, epoch, logs=None):
        self._record("epoch")


@pytest.mark.parametrize("swap_on_epoch", [False, True])
def test_swap_ema_weights_in_fit_with_validation(swap_on_epoch):
    x, y = _data()
    model = _model(kestrel)
    record = _Record()
    swap = kestrel.callbacks.SwapEMAWeights(swap_on_epoch=swap_on_epoch)
    history = model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0,
                        shuffle=False, callbacks=[swap, record])
    kernel, average = model.layers[0].kernel.detach(), model.optimizer._slots["average"][0]
    (_, tested, raw), (_, at_epoch_end, _) = record.seen[-2:]
    assert not torch.allclose(tested, raw)  # validation saw the EMA, not the raw weights
    if swap_on_epoch:  # the EMA stays in the model after the last epoch, averages follow it
        for value in (kernel, average, at_epoch_end):
            torch.testing.assert_close(value, tested)
    else:  # swapped back after validation, then fit's end writes the EMA in (as Keras)
        torch.testing.assert_close(average, tested)
        torch.testing.assert_close(kernel, average)
    theirs = _model(keras)
    their_history = theirs.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0,
                               shuffle=False, callbacks=[
                                   keras.callbacks.SwapEMAWeights(swap_on_epoch=swap_on_epoch)])
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(history.history[key], their_history.history[key], rtol=1e-5)
    for ours, keras_weight in zip(model.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(ours, keras_weight, rtol=1e-5, atol=1e-6)


def test_swap_ema_weights_evaluate_uses_ema_and_restores():
    x, y = _data()
    model = _model(kestrel)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    weights = [w.copy() for w in model.get_weights()]
    swapped = model.evaluate(x, y, verbose=0,
                             callbacks=[kestrel.callbacks.SwapEMAWeights()])
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.optimizer.swap_ema_weights()
    assert swapped == pytest.approx(model.evaluate(x, y, verbose=0))


def test_swap_ema_weights_needs_an_ema_optimizer():
    x, y = _data()
    model = kestrel.Sequential([kestrel.layers.Input((4,)), kestrel.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="use_ema=True"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y),
                  callbacks=[kestrel.callbacks.SwapEMAWeights()])


def test_keras_files_with_ema_state_load_both_ways(tmp_path):
    x, y = _data()
    ours = _model(kestrel)
    ours.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    ours.save(tmp_path / "ours.keras")
    loaded = keras.models.load_model(tmp_path / "ours.keras")
    theirs_state = [keras.ops.convert_to_numpy(v) for v in loaded.optimizer.variables]
    assert len(theirs_state) == len(ours.optimizer.variables) == 2 + 2  # the two averages
    for a, b in zip(theirs_state, ours.optimizer.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    theirs = _model(keras)
    theirs.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    theirs.save(tmp_path / "theirs.keras")
    back = kestrel.models.load_model(tmp_path / "theirs.keras")
    assert back.optimizer.use_ema and back.optimizer.ema_momentum == 0.5
    state = back.optimizer.get_weights()
    assert int(state[0]) == 4
    np.testing.assert_allclose(state[2], keras.ops.convert_to_numpy(
        theirs.optimizer.variables[2]), rtol=1e-6)
