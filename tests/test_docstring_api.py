"""Examples from Keras' own docstrings (losses, metrics, optimizers, callbacks, trainers):
Kestrel gives what real Keras (torch backend) gives.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402

LIBS = (keras, kestrel)


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_dense_promotes_integer_and_bool_inputs(dtype):
    x = (np.arange(8).reshape(2, 4) % 2).astype(dtype)
    ref, got = (fresh(lib).layers.Dense(3)(x) for lib in LIBS)
    assert got.dtype == ref.dtype == torch.float32
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), rtol=1e-6)


def test_early_stopping_docstring_fits_integer_data():
    """EarlyStopping's example: fit on np.arange ints stops after 4 epochs."""
    runs = []
    for lib in LIBS:
        k = fresh(lib)
        model = k.models.Sequential([k.layers.Dense(10)])
        model.compile(k.optimizers.SGD(), loss="mse")
        callback = k.callbacks.EarlyStopping(monitor="loss", patience=3)
        history = model.fit(np.arange(100).reshape(5, 20), np.zeros(5), epochs=10, batch_size=1,
                            callbacks=[callback], verbose=0)
        runs.append(history.history["loss"])
    assert len(runs[1]) == len(runs[0]) == 4


def _run(lib, shuffle):
    k = fresh(lib)
    x = (np.arange(100).reshape(10, 10) % 7).astype("float32") / 7
    y = np.arange(10.0) / 10
    model = k.models.Sequential([k.layers.Dense(4), k.layers.Dropout(0.3), k.layers.Dense(1)])
    model.compile(k.optimizers.SGD(0.01), loss="mse")
    first = model.evaluate(x, y, batch_size=4, verbose=0)
    history = model.fit(x, y, epochs=2, batch_size=3, shuffle=shuffle, verbose=0,
                        validation_data=(x, y))
    pred = model.predict(x, batch_size=4, verbose=0)
    return first, history.history, pred, torch.rand(3)


@pytest.mark.parametrize("shuffle", [True, "batch", False])
def test_shuffled_fit_matches_keras_after_the_same_seed(shuffle):
    """Batch order (shuffle=True and 'batch') and the global RNG's draws around fit, evaluate
    and predict are Keras': same losses, predictions, and torch.rand afterwards."""
    ref, got = (_run(lib, shuffle) for lib in LIBS)
    assert got[0] == pytest.approx(ref[0], rel=1e-5)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(got[1][key], ref[1][key], rtol=1e-4)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-4, atol=1e-6)
    assert torch.equal(got[3], ref[3])


@pytest.mark.parametrize("name, args, y_true, y_pred", [
    ("IoU", {"num_classes": 2, "target_class_ids": [0]}, [0, 0, 1, 1], [0, 1, 0, 1]),
    ("MeanIoU", {"num_classes": 2}, [0, 0, 1, 1], [0, 1, 1, 1]),
    ("BinaryIoU", {"target_class_ids": [0, 1]}, [0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7]),
    ("OneHotMeanIoU", {"num_classes": 3}, [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
     [[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1]]),
])
def test_iou_update_state_returns_the_confusion_matrix(name, args, y_true, y_pred):
    outs = []
    for lib in LIBS:
        m = getattr(lib.metrics, name)(**args)
        first = m.update_state(y_true, y_pred)
        second = m.update_state(y_true, y_pred)
        outs.append((np.asarray(first), np.asarray(second), float(m.result())))
    (ref_1, ref_2, ref_r), (got_1, got_2, got_r) = outs
    np.testing.assert_array_equal(got_1, ref_1)
    np.testing.assert_array_equal(got_2, ref_2)
    assert got_1.dtype == ref_1.dtype
    assert got_r == pytest.approx(ref_r)


_RNG = np.random.default_rng(0)
_YT, _YP = _RNG.uniform(0.1, 1, (3, 4)), _RNG.uniform(0.1, 1, (3, 4))  # float64, as NumPy's


@pytest.mark.parametrize("name", [
    "mean_squared_error", "mean_absolute_error", "mean_squared_logarithmic_error",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "kl_divergence", "poisson", "log_cosh", "huber", "hinge", "squared_hinge",
    "categorical_hinge", "cosine_similarity", "binary_focal_crossentropy"])
def test_loss_functions_keep_numpy_float64_as_keras(name):
    """keras.losses.categorical_crossentropy(a, b) on float64 NumPy arrays (to_categorical's
    docstring) is float64, except where Keras' maximum with a Python float gives float32."""
    y_true = np.array([0, 2, 3]) if name.startswith("sparse") else _YT
    ref, got = (getattr(lib.losses, name)(y_true, _YP) for lib in LIBS)
    assert got.dtype == ref.dtype
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), rtol=1e-6)


def test_ops_crossentropy_and_loss_classes_on_float64():
    b = _YP / _YP.sum(-1, keepdims=True)
    for fn in ("categorical_crossentropy", "binary_crossentropy"):
        ref, got = (getattr(lib.ops, fn)(b, b) for lib in LIBS)
        assert got.dtype == ref.dtype == torch.float64
    ref, got = (lib.losses.MeanSquaredError()(_YT, _YP) for lib in LIBS)  # the class: floatx
    assert got.dtype == ref.dtype == torch.float32
    assert float(got) == pytest.approx(float(ref), rel=1e-6)
