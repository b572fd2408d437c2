"""Array data on the model's device: moved whole, or kept on the host and copied per batch."""
import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.trainers import data_adapter


def _model():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((50, 6)).astype("float32"), rng.integers(0, 3, 50)


def _train(device=None):
    x, y = _data()
    model = _model()
    if device is not None:
        model.to(device)
    keras.utils.set_random_seed(4)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2)
    return history.history, model.evaluate(x, y, batch_size=16, verbose=0), \
        model.predict(x, batch_size=16), model.get_weights()


def _assert_same(a, b):
    for key in a[0]:
        np.testing.assert_allclose(a[0][key], b[0][key], rtol=1e-6)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-6)
    for wa, wb in zip(a[3], b[3]):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)


def test_host_resident_batches_train_like_data_moved_whole(monkeypatch):
    whole = _train()
    made = []
    original = data_adapter.ArrayAdapter.__init__

    def keep_on_host(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(data_adapter.ArrayAdapter, "__init__", keep_on_host)
    monkeypatch.setattr(data_adapter, "_stays_on_host", lambda parts, device: device is not None)
    per_batch = _train()
    assert made and all(adapter.batch_device == torch.device("cpu") for adapter in made)
    _assert_same(per_batch, whole)


def test_host_batches_are_sliced_and_gathered_from_the_host_arrays():
    x = torch.arange(20.0).reshape(10, 2)
    data = (x, {"w": torch.arange(10)}, None)
    perm = torch.tensor([3, 1, 4, 0, 9, 2, 6, 5, 8, 7])
    plain = list(data_adapter.batches(data, 3, 4, None, torch.device("cpu")))
    assert plain[2][0].tolist() == [[16.0, 17.0], [18.0, 19.0]]
    assert plain[0][0].data_ptr() == x.data_ptr()  # a view: nothing copied on the same device
    shuffled = list(data_adapter.batches(data, 3, 4, perm))
    assert shuffled[0][1]["w"].tolist() == [3, 1, 4, 0] and shuffled[1][2] is None


def test_small_data_and_cpu_devices_move_whole():
    parts = [torch.zeros(4, 2), None]
    assert not data_adapter._stays_on_host(parts, None)
    assert not data_adapter._stays_on_host(parts, torch.device("cpu"))
    assert data_adapter.to_device(parts[0], torch.device("cpu")) is parts[0]
    assert data_adapter.to_device(None, torch.device("cpu")) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_data_over_the_budget_stays_on_host_and_trains_the_same(monkeypatch):
    whole = _train("cuda")
    monkeypatch.setattr(data_adapter, "DEVICE_DATA_FRACTION", 0.0)
    adapter = data_adapter.get_adapter(*_data(), batch_size=8, device=torch.device("cuda:0"))
    assert adapter.batch_device == torch.device("cuda:0") and adapter.x.device.type == "cpu"
    batch = next(iter(adapter))
    assert batch[0].device.type == "cuda" and batch[1].device.type == "cuda"
    _assert_same(_train("cuda"), whole)
