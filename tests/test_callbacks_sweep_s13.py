"""fit/evaluate/predict printed output and the built-in callbacks, run side by side with real
Keras 3 (torch backend): same data, same starting weights, same SGD steps, so the printed
text (timings masked), History, files written and hook sequences must be the same."""
import contextlib
import io
import os
import re

import numpy as np
import pytest

import kestrel

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

LIBRARIES = (keras, kestrel)
X = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
Y = (X @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3).astype("float32")
WEIGHTS = [np.linspace(-1, 1, 12).reshape(3, 4).astype("float32"), np.full(4, 0.1, "float32"),
           np.linspace(-0.5, 0.5, 4).reshape(4, 1).astype("float32"), np.zeros(1, "float32")]


class Terminal(io.StringIO):
    """Captured stdout that says it is a terminal, so both libraries redraw bars in place."""

    def isatty(self):
        return True


def _model(lib, lr=0.01):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(4, activation="relu"),
                            lib.layers.Dense(1)])
    model.set_weights(WEIGHTS)
    model.compile(optimizer=lib.optimizers.SGD(lr), loss="mse", metrics=["mae"])
    return model


def _screen(text, folder=None):
    """What a terminal finally shows: per line the last redraw; timings and `folder` masked."""
    if folder:
        text = text.replace(str(folder), "DIR")
    text = re.sub(r"\d+(ms|s|us)(/step)?", "T", text)
    return [re.split(r"[\r\x08]+", line)[-1].rstrip() for line in text.split("\n")]


def _run(lib, body, folder=None):
    """`body(lib)`'s printed screen and its result."""
    out = Terminal()
    with contextlib.redirect_stdout(out):
        result = body(lib)
    return _screen(out.getvalue(), folder), result


def _same(body, tmp_path=None):
    """Runs `body` with Keras, then with Kestrel (each in its own folder) and compares."""
    results = []
    for lib in LIBRARIES:
        folder = None if tmp_path is None else tmp_path / lib.__name__
        if folder is not None:
            folder.mkdir()
        results.append(_run(lib, lambda l: body(l, folder) if folder else body(l), folder))
    (keras_screen, keras_result), (ours_screen, ours_result) = results
    assert ours_screen == keras_screen
    return keras_result, ours_result


def _history(history):
    return {k: np.round(v, 4).tolist() for k, v in history.history.items()}, history.epoch


def test_verbose_1_and_2_lines_with_validation():
    def body(lib):
        first = _model(lib).fit(X, Y, batch_size=8, epochs=2, verbose=1, shuffle=False,
                                validation_split=0.25)
        second = _model(lib).fit(X, Y, batch_size=8, epochs=4, verbose=2, shuffle=False,
                                 validation_data=(X, Y), validation_freq=2)
        return _history(first), _history(second), sorted(second.params.items())

    theirs, ours = _same(body)
    assert ours == theirs


def test_evaluate_and_predict_lines():
    def body(lib):
        model = _model(lib)
        loss = model.evaluate(X, Y, batch_size=8, verbose=1)
        logs = model.evaluate(X, Y, batch_size=8, verbose=2, return_dict=True)
        model.predict(X, batch_size=8, verbose=1)
        model.predict(X, batch_size=8, verbose=2)
        return np.round(loss, 5).tolist(), sorted(logs)

    theirs, ours = _same(body)
    assert ours == theirs


def test_callback_messages_interleave_with_the_bar(tmp_path):
    def body(lib, folder):
        callbacks = lib.callbacks
        model = _model(lib, lr=0.3)
        history = model.fit(X, Y, batch_size=8, epochs=4, verbose=1, shuffle=False,
                            validation_data=(X[:8], Y[:8]), callbacks=[
                                callbacks.EarlyStopping(patience=0, verbose=1),
                                callbacks.ModelCheckpoint(str(folder / "best.keras"),
                                                          save_best_only=True, verbose=1),
                                callbacks.ReduceLROnPlateau(patience=0, verbose=1),
                                callbacks.LearningRateScheduler(lambda e, lr: lr, verbose=1)])
        return _history(history)

    theirs, ours = _same(body, tmp_path)
    assert ours == theirs


@pytest.mark.parametrize("options", [
    {"monitor": "loss", "patience": 1, "min_delta": 0.5},
    {"monitor": "val_loss", "patience": 2, "baseline": 0.01},
    {"monitor": "val_loss", "patience": 1, "lr": 0.3, "restore_best_weights": True},
    {"monitor": "loss", "patience": 2, "baseline": 0.1, "restore_best_weights": True},
    {"monitor": "loss", "patience": 0, "min_delta": 10, "start_from_epoch": 3},
    {"monitor": "val_mae", "patience": 1, "min_delta": 0.5, "mode": "max"},
])
def test_early_stopping(options):
    def body(lib):
        options_here = dict(options)
        model = _model(lib, lr=options_here.pop("lr", 0.01))
        stopper = lib.callbacks.EarlyStopping(verbose=1, **options_here)
        history = model.fit(X, Y, batch_size=8, epochs=6, verbose=0, shuffle=False,
                            validation_data=(X[:8], Y[:8]), callbacks=[stopper])
        return (_history(history), stopper.stopped_epoch, stopper.best_epoch,
                np.round(model.get_weights()[3], 4).tolist())

    theirs, ours = _same(body)
    assert ours == theirs


@pytest.mark.parametrize("options", [
    {"patience": 1, "min_delta": 0.5, "factor": 0.5, "cooldown": 1, "min_lr": 0.002},
    {"patience": 0, "min_delta": 1.0},
    {"monitor": "mae", "mode": "max", "patience": 1, "factor": 0.2, "min_lr": 1e-3},
])
def test_reduce_lr_on_plateau_rates_and_messages(options):
    def body(lib):
        options_here = {"monitor": "loss", **options}
        reducer = lib.callbacks.ReduceLROnPlateau(verbose=1, **options_here)
        history = _model(lib).fit(X, Y, batch_size=8, epochs=6, verbose=0, shuffle=False,
                                  callbacks=[reducer])
        return _history(history), reducer.wait, reducer.cooldown_counter

    theirs, ours = _same(body)
    assert ours == theirs


@pytest.mark.parametrize("filename, options", [
    ("m-{epoch:02d}-{val_loss:.2f}.keras", {}),
    ("best.keras", {"save_best_only": True, "initial_value_threshold": 1.9}),
    ("best.weights.h5", {"save_best_only": True, "save_weights_only": True,
                         "monitor": "loss", "mode": "max"}),
    ("w-{epoch}-{batch}.weights.h5", {"save_weights_only": True, "save_freq": 3}),
    ("w-{epoch:02d}-{loss:.3f}.weights.h5", {"save_weights_only": True, "save_freq": 5}),
    ("b.weights.h5", {"save_weights_only": True, "save_freq": 3, "save_best_only": True,
                      "monitor": "loss"}),
])
def test_model_checkpoint_messages_and_files(tmp_path, filename, options):
    def body(lib, folder):
        checkpoint = lib.callbacks.ModelCheckpoint(str(folder / filename), verbose=1, **options)
        _model(lib, lr=0.05).fit(X, Y, batch_size=8, epochs=3, verbose=0, shuffle=False,
                                 validation_data=(X[:8], Y[:8]), callbacks=[checkpoint])
        return sorted(os.listdir(folder))

    theirs, ours = _same(body, tmp_path)
    assert ours == theirs


def _masked_csv(path):
    with open(path, encoding="utf-8") as f:
        return re.sub(r"-?\d\.\d+(e-?\d+)?", "N", f.read())


def test_csv_logger_files(tmp_path):
    def body(lib, folder):
        callbacks = lib.callbacks
        appended = folder / "appended.csv"
        for _ in range(2):
            _model(lib).fit(X, Y, batch_size=8, epochs=2, verbose=0, shuffle=False,
                            validation_data=(X[:8], Y[:8]),
                            callbacks=[callbacks.CSVLogger(str(appended), separator=";",
                                                           append=True)])
        sparse = folder / "sparse.csv"
        _model(lib).fit(X, Y, batch_size=8, epochs=3, verbose=0, validation_data=(X, Y),
                        validation_freq=2, callbacks=[callbacks.ReduceLROnPlateau(patience=5),
                                                      callbacks.CSVLogger(str(sparse))])
        before_lr = folder / "before_lr.csv"
        _model(lib).fit(X, Y, batch_size=8, epochs=2, verbose=0,
                        callbacks=[callbacks.CSVLogger(str(before_lr)),
                                   callbacks.ReduceLROnPlateau(patience=5)])
        extras = folder / "extras.csv"

        class AddExtras(callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs.update(note="a,b", pair=np.array([0.1, 2.0], "float32"))

        _model(lib).fit(X, Y, batch_size=8, epochs=2, verbose=0, shuffle=False,
                        callbacks=[AddExtras(), callbacks.CSVLogger(str(extras))])
        return [_masked_csv(path) for path in (appended, sparse, before_lr, extras)]

    theirs, ours = _same(body, tmp_path)
    assert ours == theirs


@pytest.mark.parametrize("schedule", [
    lambda epoch: 0.01 / (epoch + 1),
    lambda epoch, lr: lr * 0.5,
    lambda epoch: np.float32(0.005),
])
def test_learning_rate_scheduler(schedule):
    def body(lib):
        scheduler = lib.callbacks.LearningRateScheduler(schedule, verbose=1)
        return _history(_model(lib).fit(X, Y, batch_size=8, epochs=3, verbose=0, shuffle=False,
                                        callbacks=[scheduler]))

    theirs, ours = _same(body)
    assert ours == theirs


def test_terminate_on_nan_message_and_history():
    def body(lib):
        history = _model(lib, lr=1e6).fit(X * 100, Y, batch_size=8, epochs=3, verbose=0,
                                          shuffle=False,
                                          callbacks=[lib.callbacks.TerminateOnNaN()])
        return history.epoch, {k: len(v) for k, v in history.history.items()}

    theirs, ours = _same(body)
    assert ours == theirs


def _recorder(lib):
    """A callback that records every hook with its arguments (logs as sorted keys)."""

    def hook(name):
        def record(self, *args, logs=None):
            shown = [sorted(a) if isinstance(a, dict) else a for a in args]
            if logs is not None:
                shown.append({k: type(v).__name__ for k, v in logs.items()})
            self.calls.append((name, shown))
        return record

    names = [f"on_{stage}_{edge}" for stage in ("train", "test", "predict")
             for edge in ("begin", "end", "batch_begin", "batch_end")]
    hooks = {name: hook(name) for name in names + ["on_epoch_begin", "on_epoch_end"]}
    return type("Recorder", (lib.callbacks.Callback,), hooks)


def test_hook_sequence_and_log_types():
    def body(lib):
        recorder = _recorder(lib)()
        recorder.calls = []
        model = _model(lib)
        model.fit(X, Y, batch_size=16, epochs=3, verbose=0, shuffle=False,
                  validation_data=(X[:8], Y[:8]), validation_freq=2, callbacks=[recorder])
        model.evaluate(X[:8], Y[:8], verbose=0, callbacks=[recorder])
        model.predict(X[:16], batch_size=8, verbose=0, callbacks=[recorder])
        return recorder.calls

    theirs, ours = _same(body)
    assert ours == theirs
    assert ("on_predict_batch_end", [0, {"outputs": "ndarray"}]) in ours


def test_lambda_callback_and_history_object():
    def body(lib):
        seen = []
        model = _model(lib)
        hooks = lib.callbacks.LambdaCallback(
            on_train_begin=lambda logs: seen.append(("begin", logs)),
            on_epoch_end=lambda epoch, logs: seen.append((epoch, sorted(logs))),
            on_train_batch_end=lambda batch, logs: seen.append(("batch", batch, sorted(logs))))
        first = model.fit(X, Y, batch_size=16, epochs=2, verbose=0, callbacks=[hooks])
        again = model.fit(X, Y, batch_size=8, epochs=3, initial_epoch=2, verbose=0,
                          validation_split=0.5)
        return (seen, first is not again, again is model.history, again.epoch,
                sorted(again.params.items()), sorted(again.history))

    theirs, ours = _same(body)
    assert ours == theirs


class _Kill(Exception):
    pass


def test_backup_and_restore_resumes_at_keras_epoch(tmp_path):
    def body(lib, folder):
        backup = str(folder / "backup")

        class KillAfterEpoch1(lib.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1:
                    raise _Kill()

        with pytest.raises(_Kill):
            _model(lib).fit(X, Y, batch_size=8, epochs=4, verbose=0, shuffle=False,
                            callbacks=[lib.callbacks.BackupAndRestore(backup), KillAfterEpoch1()])
        model = _model(lib)
        history = model.fit(X, Y, batch_size=8, epochs=4, verbose=2, shuffle=False,
                            callbacks=[lib.callbacks.BackupAndRestore(backup)])
        return _history(history), np.round(model.get_weights()[3], 4).tolist()

    theirs, ours = _same(body, tmp_path)
    assert ours == theirs
