"""Cases the losses/metrics sweep (tests/scripts/losses_metrics_sweep.py) found, against Keras."""
import os

import numpy as np
import pytest
import torch

import kestrel

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

# float16 probabilities at 0 and 1: `1 - epsilon` rounds to 1 in float16
Y_TRUE = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], "float16")
Y_PRED = np.array([[1.0, 0.0, 0.2], [1.5, -0.3, 0.7]], "float16")


def _both(name, *arrays, **kwargs):
    """Keras' and Kestrel's result of `losses.<name>` on fresh tensors of `arrays`."""
    want = getattr(keras.losses, name)(*[torch.tensor(a) for a in arrays], **kwargs)
    got = getattr(kestrel.losses, name)(*[torch.tensor(a) for a in arrays], **kwargs)
    return keras.ops.convert_to_numpy(want), got.detach().numpy()


@pytest.mark.parametrize("name, kwargs", [
    ("binary_crossentropy", {}),
    ("binary_crossentropy", {"label_smoothing": 0.1}),
    ("binary_focal_crossentropy", {}),
    ("binary_focal_crossentropy", {"apply_class_balancing": True, "alpha": 0.4}),
])
def test_float16_binary_crossentropies_stay_finite_like_keras(name, kwargs):
    want, got = _both(name, Y_TRUE, Y_PRED, **kwargs)
    assert got.dtype == want.dtype == np.float16
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got.astype("float32"), want.astype("float32"), rtol=1e-2)


def test_binary_crossentropy_class_float16_mixed_precision_is_finite():
    want = keras.losses.BinaryCrossentropy(dtype="float16")(
        torch.tensor(Y_TRUE), torch.tensor(Y_PRED))
    got = kestrel.losses.BinaryCrossentropy(dtype="float16")(
        torch.tensor(Y_TRUE), torch.tensor(Y_PRED))
    assert torch.isfinite(got)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-2)


def test_binary_crossentropy_float32_unchanged_by_log_clamp():
    y_pred = np.array([[1.0, 0.0, 0.3], [1e-9, 0.999, 0.5]], "float32")
    want, got = _both("binary_crossentropy", Y_TRUE.astype("float32"), y_pred)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_msle_result_dtype_matches_keras(dtype):
    y_true = np.array([[0.5, 2.0], [0.0, 1.0]], dtype)
    y_pred = np.array([[0.4, 1.0], [0.3, -1.0]], dtype)
    want, got = _both("mean_squared_logarithmic_error", y_true, y_pred)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-3 if dtype == "float16" else 1e-6)
    metric = kestrel.metrics.mean_squared_logarithmic_error(
        torch.tensor(y_true), torch.tensor(y_pred))
    assert metric.numpy().dtype == got.dtype


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", None])
def test_masked_loss_with_sample_weight_matches_keras_and_keeps_weights(reduction):
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.random((4, 3, 2), "float32"), rng.random((4, 3, 2), "float32")
    mask = np.array([[True, False, True]] * 4)
    weights = rng.random((4, 3)).astype("float32")

    def call(module):
        pred = torch.tensor(y_pred)
        pred._keras_mask = torch.tensor(mask)
        sample_weight = torch.tensor(weights)  # Keras scales this one in place
        loss = module.losses.MeanSquaredError(reduction=reduction)(
            torch.tensor(y_true), pred, sample_weight=sample_weight)
        return loss, sample_weight

    (want, _), (got, kept) = call(keras), call(kestrel)
    np.testing.assert_allclose(got.numpy(), keras.ops.convert_to_numpy(want), rtol=1e-6)
    np.testing.assert_array_equal(kept.numpy(), weights)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_loss_class_reduces_in_its_dtype_like_keras(dtype):
    y_true = torch.tensor([[0.5, 2.0], [0.0, 1.0]])
    y_pred = torch.tensor([[0.4, 1.0], [0.3, 3.0]])
    for reduction in ("sum", None):
        want = keras.losses.MeanSquaredLogarithmicError(dtype=dtype, reduction=reduction)(
            y_true, y_pred)
        got = kestrel.losses.MeanSquaredLogarithmicError(dtype=dtype, reduction=reduction)(
            y_true, y_pred)
        assert got.dtype == want.dtype == getattr(torch, dtype)
        np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), rtol=1e-3)


@pytest.mark.parametrize("name, kwargs", [
    ("TruePositives", {}), ("Precision", {"thresholds": [0.3, 0.6]}), ("AUC", {}),
    ("RecallAtPrecision", {"precision": 0.5}),
])
@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_confusion_counts_stay_floatx_like_keras(name, kwargs, dtype):
    rng = np.random.default_rng(0)
    y_true = torch.tensor(rng.integers(0, 2, (3000, 1)))
    y_pred = torch.tensor(rng.random((3000, 1)))
    want = getattr(keras.metrics, name)(dtype=dtype, **kwargs)
    got = getattr(kestrel.metrics, name)(dtype=dtype, **kwargs)
    for metric in (want, got):
        metric.update_state(y_true, y_pred)
    want, got = keras.ops.convert_to_numpy(want.result()), got.result().numpy()
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_true_positives_float16_counts_past_2048():
    metric = kestrel.metrics.TruePositives(dtype="float16")
    metric.update_state(torch.ones(3001), torch.ones(3001))
    assert float(metric.result()) == 3001.0


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_r2_score_state_is_floatx_like_keras(dtype):
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.random((6, 2), "float32"), rng.random((6, 2), "float32")
    weights = rng.random(6).astype("float32")
    results = []
    for module in (keras, kestrel):
        metric = module.metrics.R2Score(dtype=dtype)
        metric.update_state(torch.tensor(y_true), torch.tensor(y_pred),
                            sample_weight=torch.tensor(weights))
        results.append(keras.ops.convert_to_numpy(metric.result()))
    want, got = results
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)
