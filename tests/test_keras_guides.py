"""The keras.io guides' PyTorch patterns: a training loop from scratch, callbacks, MNIST shapes."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (real Keras 3: the reference)

import kestrel  # noqa: E402

RNG = np.random.RandomState(0)
X = RNG.rand(16, 12).astype("float32")
LABELS = RNG.randint(0, 4, size=16)
Y = np.eye(4, dtype="float32")[LABELS]


def _mlp(lib):
    inputs = lib.Input(shape=(12,), name="digits")
    hidden = lib.layers.Dense(8, activation="relu")(inputs)
    return lib.Model(inputs, lib.layers.Dense(4, name="predictions")(hidden))


def _guide_steps(lib, model, batches):
    """The from-scratch loop of the guide, with `lib`'s optimizer, loss and metric."""
    optimizer = lib.optimizers.Adam(learning_rate=1e-2)
    loss_fn = lib.losses.CategoricalCrossentropy(from_logits=True)
    accuracy = lib.metrics.CategoricalAccuracy()
    losses = []
    for inputs, targets in batches:
        logits = model(inputs)
        loss = loss_fn(targets, logits)
        model.zero_grad()
        loss.backward()
        trainable_weights = [v for v in model.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            optimizer.apply(gradients, trainable_weights)
        accuracy.update_state(targets, logits)
        losses.append(float(loss))
    result = float(accuracy.result())
    accuracy.reset_state()
    return losses, result, float(accuracy.result())


def test_training_loop_from_scratch_matches_keras():
    kestrel.utils.set_random_seed(0)
    ours, theirs = _mlp(kestrel), _mlp(keras)
    theirs.set_weights(ours.get_weights())
    data = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    ours_run = _guide_steps(kestrel, ours, list(loader) * 3)
    theirs_run = _guide_steps(keras, theirs, list(loader) * 3)
    np.testing.assert_allclose(ours_run[0], theirs_run[0], rtol=1e-4, atol=1e-6)
    assert ours_run[1] == pytest.approx(theirs_run[1]) and ours_run[2] == 0.0
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    per_epoch = len(loader)
    assert np.mean(ours_run[0][-per_epoch:]) < np.mean(ours_run[0][:per_epoch])


def test_apply_gradients_on_a_fresh_optimizer():
    model = _mlp(kestrel)
    optimizer = kestrel.optimizers.SGD(learning_rate=0.1)
    loss = kestrel.losses.CategoricalCrossentropy(from_logits=True)(
        torch.from_numpy(Y), model(torch.from_numpy(X)))
    loss.backward()
    before = [w.copy() for w in model.get_weights()]
    grads = [v.value.grad for v in model.trainable_weights]
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
    assert optimizer.iterations == 1
    for old, new, grad in zip(before, model.get_weights(), grads):
        np.testing.assert_allclose(new, old - 0.1 * grad.numpy(), rtol=1e-5, atol=1e-7)


_HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin",
          "on_test_end", "on_predict_begin", "on_predict_end", "on_train_batch_begin",
          "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end",
          "on_predict_batch_begin", "on_predict_batch_end"]


def _key_recorder(lib):
    """A callback printing (here: recording) the keys of `logs` in every hook, as the guide."""

    def hook(name):
        def record(self, *args, logs=None):
            if args and isinstance(args[-1], dict) and logs is None:
                logs = args[-1]
            self.seen.setdefault(name, (type(logs) is dict, sorted(logs.keys())))
        return record

    namespace = {name: hook(name) for name in _HOOKS}
    namespace["__init__"] = lambda self: (lib.callbacks.Callback.__init__(self),
                                          setattr(self, "seen", {}))[0]
    return type("KeyRecorder", (lib.callbacks.Callback,), namespace)()


def _callback_run(lib):
    model = lib.Sequential([lib.Input((12,)), lib.layers.Dense(1)])
    model.compile(optimizer=lib.optimizers.RMSprop(learning_rate=0.1),
                  loss="mean_squared_error", metrics=["mean_absolute_error"])
    y = LABELS.astype("float32")[:, None]
    seen = []
    for run in ("fit", "evaluate", "predict"):
        recorder = _key_recorder(lib)
        if run == "fit":
            model.fit(X, y, batch_size=8, epochs=1, verbose=0, validation_split=0.5,
                      callbacks=[recorder])
        elif run == "evaluate":
            model.evaluate(X, y, batch_size=8, verbose=0, callbacks=[recorder])
        else:
            model.predict(X, batch_size=8, verbose=0, callbacks=[recorder])
        seen.append(recorder.seen)
    return seen


def test_callbacks_get_dict_logs_with_keras_keys_in_every_hook():
    ours, theirs = _callback_run(kestrel), _callback_run(keras)
    assert ours == theirs
    assert all(is_dict for run in ours for is_dict, _ in run.values())
    assert ours[0]["on_epoch_end"][1] == ["loss", "mean_absolute_error", "val_loss",
                                          "val_mean_absolute_error"]


class EarlyStoppingAtMinLoss(kestrel.callbacks.Callback):
    """The guide's callback: stop when the loss stops decreasing, keep the best weights."""

    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best = 0, 0, np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best, self.wait = current, 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                self.model.set_weights(self.best_weights)


def test_early_stopping_at_min_loss_guide_callback():
    model = kestrel.Sequential([kestrel.Input((12,)), kestrel.layers.Dense(1)])
    model.compile(optimizer=kestrel.optimizers.SGD(learning_rate=3.0), loss="mse")
    stopper = EarlyStoppingAtMinLoss()
    history = model.fit(X, LABELS.astype("float32"), batch_size=16, epochs=30, verbose=0,
                        callbacks=[stopper])  # a learning rate this high diverges
    assert 0 < stopper.stopped_epoch < 29 and len(history.history["loss"]) == \
        stopper.stopped_epoch + 1
    for kept, best in zip(model.get_weights(), stopper.best_weights):
        np.testing.assert_array_equal(kept, best)


class CustomLearningRateScheduler(kestrel.callbacks.Callback):
    """The guide's scheduler: reads the optimizer's learning rate, sets the scheduled one."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.model.optimizer.learning_rate
        self.seen.append(float(np.array(lr)))
        self.model.optimizer.learning_rate = self.schedule(epoch, lr)


def test_learning_rate_scheduler_guide_callback():
    model = kestrel.Sequential([kestrel.Input((12,)), kestrel.layers.Dense(1)])
    model.compile(optimizer=kestrel.optimizers.SGD(learning_rate=0.1), loss="mse")
    table = {1: 0.05, 2: 0.01}
    scheduler = CustomLearningRateScheduler(lambda epoch, lr: table.get(epoch, lr))
    model.fit(X, LABELS.astype("float32"), batch_size=8, epochs=4, verbose=0,
              callbacks=[scheduler])
    np.testing.assert_allclose(scheduler.seen, [0.1, 0.1, 0.05, 0.01], rtol=1e-6)
    assert float(np.array(model.optimizer.learning_rate)) == pytest.approx(0.01)


def _image_model(lib):
    inputs = lib.Input(shape=(6, 6, 1))
    return lib.Model(inputs, lib.layers.Dense(3)(lib.layers.Flatten()(inputs)))


def test_functional_input_gains_a_trailing_unit_axis_as_keras():
    ours, theirs = _image_model(kestrel), _image_model(keras)
    theirs.set_weights(ours.get_weights())
    images = RNG.rand(5, 6, 6).astype("float32")
    expected = np.asarray(theirs.predict(images, verbose=0))
    np.testing.assert_allclose(ours.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours(images).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    ours.compile(optimizer="sgd", loss="mse")
    ours.fit(images, np.zeros((5, 3), "float32"), verbose=0)
    assert np.isfinite(ours.evaluate(images, np.zeros((5, 3), "float32"), verbose=0))


def test_functional_input_drops_a_trailing_unit_axis_and_rejects_others():
    inputs = kestrel.Input(shape=(4,))
    model = kestrel.Model(inputs, kestrel.layers.Dense(2)(inputs))
    x = RNG.rand(3, 4).astype("float32")
    np.testing.assert_allclose(model(x[..., None]).detach().numpy(),
                               model(x).detach().numpy())
    with pytest.raises(ValueError, match=r"Expected shape \(None, 4\).*\(3, 4, 2\)"):
        model(np.zeros((3, 4, 2), "float32"))
    with pytest.raises(ValueError, match="incompatible shape"):
        _image_model(kestrel)(np.zeros((2, 6), "float32"))
