"""The rest of the training API: DataFrames, on-batch methods, epochs, validation frequency."""
import numpy as np
import pandas as pd
import pytest
import torch

import kestrel as keras
from kestrel.layers import Dense, Input


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([Input(shape=(3,)), Dense(4, activation="relu"), Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    return model


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def test_pandas_dataframes_are_accepted():
    x, y = _data()
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    model = _model()
    from_frame = model.evaluate(frame, pd.Series(y[:, 0]).to_frame(), verbose=0)
    assert from_frame == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
    model.fit(frame, y, epochs=1, verbose=0)


def test_on_batch_methods_and_metrics():
    x, y = _data(8)
    model = _model()
    loss, mae = model.test_on_batch(x, y)
    pred = model.predict_on_batch(x)
    assert loss == pytest.approx(float(np.mean((pred - y) ** 2)), rel=1e-5)
    assert mae == pytest.approx(float(np.mean(np.abs(pred - y))), rel=1e-5)
    before = model.get_weights()[0].copy()
    logs = model.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "mae"} and not np.allclose(before, model.get_weights()[0])
    assert [m.name for m in model.metrics] == ["loss", "compile_metrics"]  # as Keras 3
    assert model.metrics_names == ["loss", "mae"]
    model.reset_metrics()
    assert float(model.metrics[0].result()) == 0.0


def test_initial_epoch_validation_freq_and_verbose_2(capsys):
    x, y = _data()
    model = _model()
    history = model.fit(x, y, epochs=4, initial_epoch=1, validation_data=(x, y),
                        validation_freq=2, verbose=2)
    assert history.epoch == [1, 2, 3]
    assert len(history.history["loss"]) == 3
    assert len(history.history["val_loss"]) == 2  # after epochs 2 and 4 (1-based), as Keras
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 3 and "━" not in out  # one line per epoch, no bar
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_fit_follows_the_model_device():
    x, y = _data()
    model = _model()
    model.to(torch.device("cpu"))
    keras.config.set_device("cpu")
    try:
        model.fit(x, y, epochs=1, verbose=0)
        assert keras.config.device() == torch.device("cpu")
    finally:
        keras.config.set_device(None)


def test_python_lists_and_dicts_of_lists_are_arrays():
    model = _model()
    x = [[0.1, 0.2, 0.3]] * 4
    y = [[1.0]] * 4
    assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(
        model.evaluate(np.array(x, "float32"), np.array(y, "float32"), verbose=0)[0])
    assert model.predict(x).shape == (4, 1)
