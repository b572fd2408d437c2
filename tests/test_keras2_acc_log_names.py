"""Keras 2.0-2.2 logged `metrics=['accuracy']` as `acc` / `val_acc`; scripts of that time
read `history.history['val_acc']` and monitor 'val_acc'. The logs keep Keras 3's names."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.random((16, 3)).astype("float32")
Y = (X[:, :1] > 0.5).astype("float32")


def _model(lib):
    lib.utils.set_random_seed(0)
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    return model


def test_history_reads_keras22_accuracy_names_and_keeps_keras3_keys():
    history = _model(kestrel).fit(X, Y, epochs=2, verbose=0, validation_data=(X, Y))
    theirs = _model(keras).fit(X, Y, epochs=2, verbose=0, validation_data=(X, Y))
    assert sorted(history.history) == sorted(theirs.history)
    with pytest.warns(DeprecationWarning, match="`val_acc` is the Keras 2.2 name"):
        assert history.history["val_acc"] is history.history["val_accuracy"]
    with pytest.warns(DeprecationWarning, match="`acc` is the Keras 2.2 name"):
        assert history.history["acc"] is history.history["accuracy"]
    assert "acc" not in history.history
    with pytest.raises(KeyError, match="val_auc"):
        history.history["val_auc"]


def test_metrics_named_acc_are_read_as_they_are():
    model = _model(kestrel)
    model.compile("sgd", "binary_crossentropy", metrics=["acc"])
    history = model.fit(X, Y, epochs=1, verbose=0)
    assert sorted(history.history) == ["acc", "loss"]
    with pytest.raises(KeyError):
        history.history["accuracy"]


def _fit_with_callbacks(lib, name, path):
    model = _model(lib)
    stop = lib.callbacks.EarlyStopping(monitor=name, patience=0, mode="max", baseline=1.1)
    reduce = lib.callbacks.ReduceLROnPlateau(monitor=name, patience=0, factor=0.5, mode="max",
                                             min_delta=1)
    best = lib.callbacks.ModelCheckpoint(path, monitor=name, save_best_only=True)
    history = model.fit(X, Y, epochs=4, verbose=0, validation_data=(X, Y),
                        callbacks=[stop, reduce, best])
    return history, float(model.optimizer.learning_rate), best.best


def test_callbacks_monitor_val_acc_as_keras_monitors_val_accuracy(tmp_path):
    with pytest.warns(DeprecationWarning, match="reading `val_accuracy`"):
        ours = _fit_with_callbacks(kestrel, "val_acc", str(tmp_path / "ours.h5"))
    theirs = _fit_with_callbacks(keras, "val_accuracy", str(tmp_path / "theirs.keras"))
    assert ours[0].epoch == theirs[0].epoch == [0, 1]  # the baseline is never reached
    assert ours[1] == pytest.approx(theirs[1])
    assert ours[2] == pytest.approx(theirs[2]) and (tmp_path / "ours.h5").exists()
