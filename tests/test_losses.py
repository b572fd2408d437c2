"""Loss functions and classes against NumPy references and Keras' documented numbers."""
import numpy as np
import pytest
import torch

from kestrel import losses

EPS = 1e-7
RNG = np.random.default_rng(0)


def _probs(*shape):
    x = RNG.random(shape).astype("float32") + 0.05
    return x / x.sum(-1, keepdims=True)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_bce(y, p):
    p = np.clip(p, EPS, 1 - EPS)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def _np_normalize(x):
    return x / np.sqrt(np.maximum((x**2).sum(-1, keepdims=True), EPS**2))


def _hinge_labels(y):
    return 2 * y - 1 if np.isin(y, [0, 1]).all() else y


NP_REFERENCES = {
    "mean_squared_error": lambda y, p: ((y - p) ** 2).mean(-1),
    "mean_absolute_error": lambda y, p: np.abs(y - p).mean(-1),
    "mean_absolute_percentage_error":
        lambda y, p: 100 * np.abs((y - p) / np.maximum(np.abs(y), EPS)).mean(-1),
    "mean_squared_logarithmic_error": lambda y, p: (
        (np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(y, EPS) + 1)) ** 2).mean(-1),
    "huber": lambda y, p: np.where(np.abs(p - y) <= 1, 0.5 * (p - y) ** 2,
                                   np.abs(p - y) - 0.5).mean(-1),
    "log_cosh": lambda y, p: np.log(np.cosh(p - y)).mean(-1),
    "poisson": lambda y, p: (p - y * np.log(p + EPS)).mean(-1),
    "kl_divergence": lambda y, p: (np.clip(y, EPS, 1) * np.log(
        np.clip(y, EPS, 1) / np.clip(p, EPS, 1))).sum(-1),
    "cosine_similarity": lambda y, p: -(_np_normalize(y) * _np_normalize(p)).sum(-1),
    "hinge": lambda y, p: np.maximum(1 - _hinge_labels(y) * p, 0).mean(-1),
    "squared_hinge": lambda y, p: (np.maximum(1 - _hinge_labels(y) * p, 0) ** 2).mean(-1),
    "categorical_hinge": lambda y, p: np.maximum(
        ((1 - y) * p).max(-1) - (y * p).sum(-1) + 1, 0),
    "binary_crossentropy": lambda y, p: _np_bce(y, p).mean(-1),
    "categorical_crossentropy":
        lambda y, p: -(y * np.log(np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS))).sum(-1),
}
CLASSES = {
    "mean_squared_error": losses.MeanSquaredError, "mean_absolute_error": losses.MeanAbsoluteError,
    "mean_absolute_percentage_error": losses.MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": losses.MeanSquaredLogarithmicError,
    "huber": losses.Huber, "log_cosh": losses.LogCosh, "poisson": losses.Poisson,
    "kl_divergence": losses.KLDivergence, "cosine_similarity": losses.CosineSimilarity,
    "hinge": losses.Hinge, "squared_hinge": losses.SquaredHinge,
    "categorical_hinge": losses.CategoricalHinge,
    "binary_crossentropy": losses.BinaryCrossentropy,
    "categorical_crossentropy": losses.CategoricalCrossentropy,
}


def _inputs(name, shape):
    if name in ("categorical_crossentropy", "categorical_hinge"):
        y = np.eye(shape[-1], dtype="float32")[RNG.integers(0, shape[-1], shape[:-1])]
        return y, _probs(*shape)
    if name in ("binary_crossentropy", "hinge", "squared_hinge"):
        return RNG.integers(0, 2, shape).astype("float32"), RNG.random(shape).astype("float32")
    if name == "kl_divergence":
        return _probs(*shape), _probs(*shape)
    return RNG.random(shape).astype("float32") * 2, RNG.random(shape).astype("float32") * 2


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
@pytest.mark.parametrize("name", sorted(NP_REFERENCES))
def test_function_matches_numpy(name, shape):
    y, p = _inputs(name, shape)
    out = getattr(losses, name)(torch.tensor(y), torch.tensor(p))
    assert out.shape == shape[:-1]
    np.testing.assert_allclose(out.numpy(), NP_REFERENCES[name](y, p), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(NP_REFERENCES))
def test_class_weighted_reduction_matches_numpy(name):
    y, p = _inputs(name, (6, 3))
    w = RNG.random(6).astype("float32")
    per_sample = NP_REFERENCES[name](y, p)
    loss = CLASSES[name]()
    np.testing.assert_allclose(float(loss(y, p)), per_sample.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(loss(y, p, sample_weight=w)), (per_sample * w).mean(),
                               rtol=1e-5)
    assert loss.name == name if name != "huber" else loss.name == "huber_loss"


def test_hinge_keeps_signed_labels():
    y, p = np.array([[-1.0, 1.0, -1.0]]), np.array([[0.3, -0.2, 0.9]], dtype="float32")
    np.testing.assert_allclose(losses.hinge(y, p).numpy(), NP_REFERENCES["hinge"](y, p))


def test_huber_keras_example_and_delta():
    y, p = np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.6, 0.4], [0.4, 0.6]])
    assert float(losses.Huber()(y, p)) == pytest.approx(0.155, abs=1e-3)
    err = np.abs(p - y)
    ref = np.where(err <= 0.5, 0.5 * err**2, 0.5 * err - 0.125).mean()
    assert float(losses.Huber(delta=0.5)(y, p)) == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_binary_crossentropy_logits_and_smoothing(smoothing):
    y = RNG.integers(0, 2, (6, 3)).astype("float32")
    logits = RNG.normal(0, 3, (6, 3)).astype("float32")
    ys = y * (1 - smoothing) + 0.5 * smoothing
    ref = np.mean(np.maximum(logits, 0) - logits * ys + np.log1p(np.exp(-np.abs(logits))), -1)
    out = losses.binary_crossentropy(y, torch.tensor(logits), from_logits=True,
                                     label_smoothing=smoothing)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    probs = 1 / (1 + np.exp(-logits))
    out = losses.binary_crossentropy(y, probs, label_smoothing=smoothing)
    np.testing.assert_allclose(out.numpy(), _np_bce(ys, probs).mean(-1), rtol=1e-4)


def test_binary_crossentropy_keras_example():
    y, logits = np.array([[0, 1], [0, 0]]), np.array([[-18.6, 0.51], [2.94, -12.8]])
    assert float(losses.BinaryCrossentropy(from_logits=True)(y, logits)) == pytest.approx(
        0.8654, abs=1e-3)
    weighted = losses.BinaryCrossentropy(from_logits=True)(y, logits, sample_weight=[0.8, 0.2])
    assert float(weighted) == pytest.approx(0.2436, abs=1e-3)
    none = losses.BinaryCrossentropy(from_logits=True, reduction=None)(y, logits)
    np.testing.assert_allclose(none.numpy(), [0.235, 1.496], atol=1e-3)


def test_probabilities_are_clipped_to_epsilon():
    y, p = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]], dtype="float32")
    expected = -np.log(np.float32(EPS)) * 2 / 2
    assert float(losses.binary_crossentropy(y, p)[0]) == pytest.approx(expected, rel=2e-2)
    np.testing.assert_allclose(losses.binary_crossentropy(y, p).numpy(),
                               _np_bce(y, p).mean(-1), rtol=1e-4)
    assert float(losses.categorical_crossentropy(y, p)[0]) == pytest.approx(-np.log(EPS),
                                                                            rel=1e-3)
    assert float(losses.kl_divergence(y, p)[0]) == pytest.approx(-np.log(EPS), rel=1e-3)


def test_binary_crossentropy_extreme_logits_are_finite():
    logits = torch.tensor([[-200.0, 200.0]], requires_grad=True)
    loss = losses.BinaryCrossentropy(from_logits=True)(torch.tensor([[1.0, 0.0]]), logits)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(200.0)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_categorical_crossentropy_logits_and_smoothing(smoothing):
    y = np.eye(4, dtype="float32")[RNG.integers(0, 4, 5)]
    logits = RNG.normal(0, 2, (5, 4)).astype("float32")
    ys = y * (1 - smoothing) + smoothing / 4
    out = losses.categorical_crossentropy(y, logits, from_logits=True, label_smoothing=smoothing)
    ref = -(ys * np.log(_softmax(logits))).sum(-1)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5)
    loss = losses.CategoricalCrossentropy(label_smoothing=smoothing)
    probs = _softmax(logits)
    assert float(loss(y, probs)) == pytest.approx(
        NP_REFERENCES["categorical_crossentropy"](ys, probs).mean(), rel=1e-5)


def test_categorical_crossentropy_keras_example_and_axis():
    y, p = np.array([[0, 1, 0], [0, 0, 1]]), np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    cce = losses.CategoricalCrossentropy()
    assert float(cce(y, p)) == pytest.approx(1.177, abs=1e-3)
    assert float(cce(y, p, sample_weight=np.array([0.3, 0.7]))) == pytest.approx(0.814, abs=1e-3)
    out = losses.categorical_crossentropy(y.T, p.T, axis=0)
    np.testing.assert_allclose(out.numpy(), losses.categorical_crossentropy(y, p).numpy())
    with pytest.raises(ValueError, match="axis"):
        losses.categorical_crossentropy(y, p, axis=True)


@pytest.mark.parametrize("label_shape", ["flat", "column", "float"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy(label_shape, from_logits):
    labels = RNG.integers(0, 4, 6)
    logits = RNG.normal(0, 2, (6, 4)).astype("float32")
    y = {"flat": labels, "column": labels[:, None], "float": labels.astype("float32")}[label_shape]
    p = logits if from_logits else _softmax(logits)
    out = losses.sparse_categorical_crossentropy(y, p, from_logits=from_logits)
    ref = -np.log(np.clip(_softmax(logits), EPS, 1 - EPS)[np.arange(6), labels])
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4)
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    assert float(loss(y, p)) == pytest.approx(ref.mean(), rel=1e-4)


def test_sparse_crossentropy_on_probabilities_normalizes_clips_and_differentiates_as_keras():
    labels = torch.from_numpy(RNG.integers(0, 4, (3, 5)))
    probs = torch.from_numpy(RNG.random((3, 5, 4)).astype("float32") * 2.0)  # rows sum != 1
    labels[0, 0] = 0
    probs[0, 0] = torch.tensor([0.0, 0.0, 0.0, 1.0])  # the target has probability 0
    probs[0, 1] = torch.eye(4)[labels[0, 1]]  # ... and 1
    probs.requires_grad_(True)
    out = losses.sparse_categorical_crossentropy(labels, probs)
    assert out.shape == (3, 5)
    (grad,) = torch.autograd.grad(out.sum(), probs)
    reference_probs = probs.detach().clone().requires_grad_(True)
    normalized = reference_probs / reference_probs.sum(-1, keepdim=True)
    full = -torch.log(torch.clamp(normalized, EPS, 1 - EPS))  # Keras: every class first
    ref = full.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    (ref_grad,) = torch.autograd.grad(ref.sum(), reference_probs)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=1e-5, atol=1e-6)
    assert float(out[0, 0]) == pytest.approx(-np.log(EPS), rel=1e-6)
    assert float(out[0, 1]) == pytest.approx(-np.log(np.float32(1 - EPS)), rel=1e-6)
    assert torch.isfinite(out).all()


def test_sparse_categorical_crossentropy_sequences_and_ignore_class():
    labels = RNG.integers(0, 3, (2, 5))
    labels[0, :2] = -1
    logits = RNG.normal(0, 1, (2, 5, 3)).astype("float32")
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    valid = labels != -1
    logp = np.log(_softmax(logits))
    ref = -np.take_along_axis(logp, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    assert float(loss(labels, logits)) == pytest.approx(ref[valid].mean(), rel=1e-5)
    out = losses.sparse_categorical_crossentropy(labels, logits, from_logits=True,
                                                 ignore_class=-1)
    assert out.shape == (2, 5) and float(out[0, 0]) == 0.0
    np.testing.assert_array_equal(out._keras_mask.numpy(), valid)


def test_focal_crossentropy_reduces_to_bce_at_gamma_zero():
    y = RNG.integers(0, 2, (4, 3)).astype("float32")
    p = RNG.random((4, 3)).astype("float32")
    focal = losses.binary_focal_crossentropy(y, p, gamma=0.0)
    np.testing.assert_allclose(focal.numpy(), losses.binary_crossentropy(y, p).numpy(), rtol=1e-6)
    p_t = y * p + (1 - y) * (1 - p)
    ref = ((y * 0.25 + (1 - y) * 0.75) * (1 - p_t) ** 2 * _np_bce(y, p)).mean(-1)
    out = losses.BinaryFocalCrossentropy(apply_class_balancing=True, reduction=None)(y, p)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5)


Y_TRUE = np.array([[1, 9, 2], [-5, -2, 6]])
Y_PRED = np.array([[4, 8, 12], [8, 1, 3]], dtype="float32")


@pytest.mark.parametrize("reduction, sample_weight, expected", [
    ("sum_over_batch_size", None, 49.5),
    ("sum_over_batch_size", 2.3, 113.85),
    ("sum_over_batch_size", np.array([[1.2], [3.4]]), 767.8 / 6),
    ("sum_over_batch_size", np.array([1.2, 3.4]), 767.8 / 6),
    ("sum_over_batch_size", 0.0, 0.0),
    ("mean", np.array([1.2, 3.4]), 767.8 / 6),
    ("sum", 2.3, 227.69998),
    ("mean_with_sample_weight", np.array([[1.2], [3.4]]),
     (110 / 3 * 1.2 + 187 / 3 * 3.4) / (1.2 + 3.4)),
])
def test_reductions_with_sample_weight(reduction, sample_weight, expected):
    loss = losses.MeanSquaredError(reduction=reduction)
    assert float(loss(Y_TRUE, Y_PRED, sample_weight=sample_weight)) == pytest.approx(expected,
                                                                                    rel=1e-5)


def test_no_reduction_and_invalid_reduction():
    out = losses.MeanSquaredError(reduction=None)(Y_TRUE, Y_PRED, sample_weight=2.3)
    np.testing.assert_allclose(out.numpy(), [84.3333, 143.3666], rtol=1e-5)
    assert losses.MeanSquaredError(reduction="none")(Y_TRUE, Y_PRED).shape == (2,)
    with pytest.raises(ValueError, match="reduction='abc'"):
        losses.MeanSquaredError(reduction="abc")
    keras2 = {"class_name": "MeanSquaredError", "config": {"reduction": "auto", "name": "mse"}}
    assert losses.deserialize(keras2).reduction == "sum_over_batch_size"


def test_timestep_weights_and_rank_broadcast():
    y, p = Y_TRUE.reshape(2, 3, 1), Y_PRED.reshape(2, 3, 1)
    weights = np.array([3, 6, 5, 0, 4, 2]).reshape(2, 3)
    assert float(losses.MeanSquaredError()(y, p, sample_weight=weights)) == pytest.approx(
        97.833336, rel=1e-6)
    per_step = ((y - p) ** 2)[..., 0]
    out = losses.MeanSquaredError()(y, p, sample_weight=np.array([1.0, 0.5]))
    assert float(out) == pytest.approx((per_step * [[1.0], [0.5]]).mean(), rel=1e-6)


def test_keras_mask_acts_as_sample_weight():
    y_true = np.array([0.0, 1.0, 1.0, 0.0])
    y_pred = torch.tensor([0.1, 0.9, 0.3, 0.4])
    loss = losses.LossFunctionWrapper(lambda t, p: (t - p) ** 2)
    y_pred._keras_mask = torch.tensor([True, False, True, True])
    masked = np.array([0.1, 0.3, 0.4]) - np.array([0.0, 1.0, 0.0])
    assert float(loss(y_true, y_pred)) == pytest.approx((masked**2).sum() / 3, rel=1e-6)
    w = np.array([0.4, 0.3, 0.2, 0.1])
    ref = (np.array([0.4, 0.2, 0.1]) * masked**2).sum() / 3
    assert float(loss(y_true, y_pred, sample_weight=w)) == pytest.approx(ref, rel=1e-6)
    assert float(losses.LossFunctionWrapper(lambda t, p: (t - p) ** 2, reduction="sum")(
        y_true, y_pred)) == pytest.approx((masked**2).sum(), rel=1e-6)
    y_pred._keras_mask = torch.zeros(4, dtype=torch.bool)
    assert float(loss(y_true, y_pred)) == 0.0


def test_loss_dtype_and_subclass_name():
    class MyWeirdLoss(losses.Loss):
        def call(self, y_true, y_pred):
            return (y_true - y_pred).abs().mean(-1)

    assert MyWeirdLoss().name == "my_weird_loss"
    out = losses.MeanSquaredError(dtype="float64")(Y_TRUE, Y_PRED)
    assert out.dtype == torch.float64 and out.shape == ()
    assert losses.mean_squared_error(np.array([4, 8, 12]), np.array([[3], [0], [1]])).shape == (3,)


@pytest.mark.parametrize("loss", [
    losses.Huber(delta=2.0, reduction="sum", name="h"), losses.CosineSimilarity(axis=0),
    losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
    losses.CategoricalCrossentropy(label_smoothing=0.2),
    losses.SparseCategoricalCrossentropy(ignore_class=3),
    losses.BinaryFocalCrossentropy(gamma=3.0), losses.KLDivergence(),
    losses.LossFunctionWrapper(losses.huber, delta=0.5),
])
def test_config_round_trip(loss):
    config = losses.serialize(loss)
    assert config["module"] == "keras.losses" and config["class_name"] == type(loss).__name__
    restored = losses.deserialize(config)
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    assert losses.get(config).get_config() == loss.get_config()


def test_get():
    assert losses.get(None) is None
    assert losses.get("mse") is losses.mean_squared_error
    assert losses.get("kld") is losses.kl_divergence
    assert isinstance(losses.get("MeanSquaredError"), losses.MeanSquaredError)
    assert isinstance(losses.get(losses.Huber), losses.Huber)
    instance = losses.Poisson()
    assert losses.get(instance) is instance and losses.get(losses.hinge) is losses.hinge
    assert losses.serialize(losses.mean_squared_error) == "mean_squared_error"
    with pytest.raises(ValueError, match="not_a_loss"):
        losses.get("not_a_loss")
    with pytest.raises(ValueError, match="identifier=3"):
        losses.get(3)
