"""Metric base, reduction, accuracy, regression, probabilistic and hinge metrics; `get`."""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import losses, metrics
from kestrel.saving import register_keras_serializable
from tests.fresh_session import fresh

RNG = np.random.default_rng(1)


def _batches(n=3, shape=(4, 3)):
    """Several (y_true, y_pred, sample_weight) batches of regression data."""
    return [(RNG.random(shape).astype("float32") + 0.1, RNG.random(shape).astype("float32") + 0.1,
             RNG.random(shape[0]).astype("float32")) for _ in range(n)]


def _weighted_mean(values, weights):
    values, weights = np.concatenate(values), np.concatenate(weights)
    return (values * weights).sum() / weights.sum()


class CountAbove(metrics.Metric):
    def __init__(self, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.hits = self.add_variable((), name="hits")
        self.seen = self.add_variable((2,), initializer="ones", name="seen")

    def update_state(self, values):
        self.hits.add_((values > 0).sum())
        self.seen += 1

    def result(self):
        return self.hits.clone()


def test_custom_metric_state_and_reset():
    m = CountAbove()
    assert m.name == "count_above" and m.dtype == "float32"
    assert [v.shape for v in m.variables] == [(), (2,)]
    m.update_state(torch.tensor([1.0, -1.0, 2.0]))
    assert float(m(torch.tensor([3.0]))) == 3.0
    assert m.seen.tolist() == [3.0, 3.0]
    m.reset_state()
    assert float(m.result()) == 0.0 and m.seen.tolist() == [1.0, 1.0]
    assert m.variables[0] is m.hits


def test_update_ignores_autograd():
    m = metrics.Mean()
    values = torch.tensor([1.0, 2.0], requires_grad=True)
    m.update_state(values * 2)
    assert not m.total.requires_grad and m.total.grad_fn is None
    assert float(m.result()) == 3.0


def test_update_moves_state_when_the_input_device_changes(monkeypatch):
    m = metrics.Mean()
    moves = []
    monkeypatch.setattr(m, "_move_to", lambda device: moves.append(device))
    m._device = torch.device("meta")
    m.update_state(torch.ones(2))
    m._device = torch.device("cpu")
    m.update_state(torch.ones(2))
    assert moves == [torch.device("cpu")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_state_follows_cuda_inputs():
    y = torch.tensor([0.0, 1.0, 1.0], device="cuda")
    for m in (metrics.Mean(), metrics.AUC(), metrics.Precision(thresholds=[0.3, 0.6])):
        total = m.variables[0]
        inputs = (y,) if isinstance(m, metrics.Mean) else (y, torch.tensor([0.2, 0.7, 0.4]).cuda())
        m.update_state(*inputs)
        assert m.variables[0] is total and total.device.type == "cuda"
        assert m.result().device.type == "cuda"
        m.reset_state()
        assert float(m.variables[0].sum()) == 0.0


def test_mean_and_sum_weighted():
    values, weights = [1.0, 2.0, 3.0, 4.0], [0.5, 0.0, 1.0, 2.0]
    mean, total = metrics.Mean(), metrics.Sum()
    mean.update_state(values[:2], sample_weight=weights[:2])
    mean.update_state(torch.tensor(values[2:]), sample_weight=torch.tensor(weights[2:]))
    assert float(mean.result()) == pytest.approx(_weighted_mean([values], [weights]))
    total.update_state(values, sample_weight=weights)
    assert float(total.result()) == pytest.approx(np.dot(values, weights))
    mean.reset_state()
    assert float(mean.result()) == 0.0 and mean.name == "mean" and total.name == "sum"


def test_mean_and_sum_on_float32_tensors_with_scalar_weights():
    """Plain 1-d / 0-d float32 tensors (the trainer's loss and accuracy values)."""
    values = torch.tensor([1.0, 2.0, 6.0])
    mean, total = metrics.Mean(), metrics.Sum()
    mean.update_state(values)
    mean.update_state(torch.tensor(3.0), sample_weight=5)  # a batch mean over 5 samples
    total.update_state(values, sample_weight=2)
    total.update_state(torch.tensor(1.0))
    assert float(mean.result()) == pytest.approx((9.0 + 15.0) / 8)
    assert float(total.result()) == pytest.approx(19.0)


def test_mean_reduces_per_sample_and_time_weights():
    values = RNG.random((3, 4)).astype("float32")
    m = metrics.Mean()
    m.update_state(values)
    assert float(m.result()) == pytest.approx(values.mean())
    m.reset_state()
    m.update_state(values, sample_weight=np.array([1.0, 0.0, 2.0]))
    assert float(m.result()) == pytest.approx((values.mean(1) * [1, 0, 2]).sum() / 3, rel=1e-6)
    m.reset_state()
    w = RNG.random((3, 4)).astype("float32")
    m.update_state(values, sample_weight=w)
    assert float(m.result()) == pytest.approx((values * w).sum() / w.sum(), rel=1e-5)


def test_mean_metric_wrapper_applies_keras_mask():
    fresh(kestrel)  # the first unnamed wrapper of a session is `mean_metric_wrapper`
    m = metrics.MeanMetricWrapper(losses.mean_absolute_error)
    assert m.name == "mean_metric_wrapper"
    y_pred = torch.tensor([[1.0], [5.0], [3.0]])
    y_pred._keras_mask = torch.tensor([True, False, True])
    m.update_state(np.zeros((3, 1)), y_pred)
    assert float(m.result()) == pytest.approx(2.0)


ACCURACY_CASES = [
    (metrics.BinaryAccuracy(), lambda y, p: (y == (p > 0.5)).mean(), "binary"),
    (metrics.BinaryAccuracy(threshold=0.8), lambda y, p: (y == (p > 0.8)).mean(), "binary"),
    (metrics.CategoricalAccuracy(), lambda y, p: (y.argmax(-1) == p.argmax(-1)).mean(), "onehot"),
    (metrics.SparseCategoricalAccuracy(), lambda y, p: (y == p.argmax(-1)).mean(), "sparse"),
    (metrics.TopKCategoricalAccuracy(k=2), lambda y, p: (
        (-p).argsort(-1)[:, :2] == y.argmax(-1)[:, None]).any(-1).mean(), "onehot"),
    (metrics.SparseTopKCategoricalAccuracy(k=2), lambda y, p: (
        (-p).argsort(-1)[:, :2] == y[:, None]).any(-1).mean(), "sparse"),
    (metrics.Accuracy(), lambda y, p: (y == p.round()).mean(), "round"),
]


def _classification(kind, n=8, classes=5):
    p = RNG.random((n, classes)).astype("float32")
    labels = RNG.integers(0, classes, n)
    if kind == "binary":
        return RNG.integers(0, 2, (n, 1)).astype("float32"), p[:, :1]
    if kind == "onehot":
        return np.eye(classes, dtype="float32")[labels], p
    if kind == "round":
        return RNG.integers(0, 2, n).astype("float32"), np.round(p[:, 0])
    return labels, p


@pytest.mark.parametrize("metric, reference, kind", ACCURACY_CASES,
                         ids=[f"{m.name}-{i}" for i, (m, _, _) in enumerate(ACCURACY_CASES)])
def test_accuracy_metrics_accumulate(metric, reference, kind):
    metric.reset_state()
    batches = [_classification(kind) for _ in range(3)]
    for y, p in batches:
        metric.update_state(y, torch.tensor(p))
    ys, ps = (np.concatenate(parts) for parts in zip(*batches))
    assert float(metric.result()) == pytest.approx(reference(ys, ps), rel=1e-6)
    assert metric.name == metric.get_config()["name"]


def test_sparse_accuracy_label_forms_and_weights():
    p = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]], dtype="float32")
    for labels in ([1, 2, 2], [[1], [2], [2]], np.array([1.0, 2.0, 2.0])):
        np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(labels, p).numpy(),
                                      [1.0, 0.0, 1.0])
    m = metrics.SparseCategoricalAccuracy()
    m.update_state([[1], [2], [2]], p, sample_weight=[0.5, 2.0, 1.0])
    assert float(m.result()) == pytest.approx(1.5 / 3.5)


def test_accuracy_on_many_rows_picks_the_first_maximum():
    # past 4096 scores the class index comes from max(-1) instead of argmax: same answers
    p = torch.rand(1000, 10)
    p[::5, 3] = p[::5].amax(-1)  # ties with the maximum: the first index wins
    p[1::5] = 0.25  # a whole row tied
    p[2::5, 6] = float("nan")  # NaN counts as the maximum, as in argmax
    labels = torch.randint(0, 10, (1000,))
    labels[::3] = p[::3].argmax(-1)
    expected = (labels == p.argmax(-1)).float()
    torch.testing.assert_close(metrics.sparse_categorical_accuracy(labels, p), expected)
    onehot = torch.nn.functional.one_hot(labels, 10).float()
    torch.testing.assert_close(metrics.categorical_accuracy(onehot, p), expected)


def test_top_k_accuracy_edge_cases():
    p = np.array([[0.1, 0.9, 0.0], [0.5, 0.5, 0.0]], dtype="float32")
    assert metrics.sparse_top_k_categorical_accuracy([2, 1], p, k=10).tolist() == [1.0, 1.0]
    assert metrics.sparse_top_k_categorical_accuracy([[0], [1]], p, k=1).tolist() == [[0.0],
                                                                                     [1.0]]
    ids = np.array([[1, 0, 2], [0, 1, 2]])
    out = metrics.sparse_top_k_categorical_accuracy([0, 2], ids, k=2, from_sorted_ids=True)
    assert out.tolist() == [1.0, 0.0]


REGRESSION_CASES = [
    (metrics.MeanSquaredError, "mean_squared_error", lambda y, p: ((y - p) ** 2).mean(-1)),
    (metrics.MeanAbsoluteError, "mean_absolute_error", lambda y, p: np.abs(y - p).mean(-1)),
    (metrics.MeanAbsolutePercentageError, "mean_absolute_percentage_error",
     lambda y, p: 100 * np.abs((y - p) / y).mean(-1)),
    (metrics.MeanSquaredLogarithmicError, "mean_squared_logarithmic_error",
     lambda y, p: ((np.log1p(y) - np.log1p(p)) ** 2).mean(-1)),
    (metrics.LogCoshError, "logcosh", lambda y, p: np.log(np.cosh(p - y)).mean(-1)),
    (metrics.CosineSimilarity, "cosine_similarity", lambda y, p: (y * p).sum(-1) / (
        np.linalg.norm(y, axis=-1) * np.linalg.norm(p, axis=-1))),
    (metrics.Poisson, "poisson", lambda y, p: (p - y * np.log(p + 1e-7)).mean(-1)),
    (metrics.KLDivergence, "kl_divergence",
     lambda y, p: (np.clip(y, 1e-7, 1) * np.log(np.clip(y, 1e-7, 1) / np.clip(p, 1e-7, 1))).sum(
         -1)),
    (metrics.Hinge, "hinge", lambda y, p: np.maximum(1 - y * p, 0).mean(-1)),
    (metrics.SquaredHinge, "squared_hinge", lambda y, p: (np.maximum(1 - y * p, 0) ** 2).mean(-1)),
    (metrics.CategoricalHinge, "categorical_hinge",
     lambda y, p: np.maximum(((1 - y) * p).max(-1) - (y * p).sum(-1) + 1, 0)),
]


@pytest.mark.parametrize("cls, name, reference", REGRESSION_CASES,
                         ids=[name for _, name, _ in REGRESSION_CASES])
def test_mean_metrics_accumulate_weighted(cls, name, reference):
    m = cls()
    batches = _batches()
    for y, p, w in batches:
        m.update_state(y, torch.tensor(p), sample_weight=w)
    expected = _weighted_mean([reference(y, p) for y, p, _ in batches], [w for *_, w in batches])
    assert float(m.result()) == pytest.approx(expected, rel=1e-5)
    assert m.name == name
    m.reset_state()
    y, p, _ = batches[0]
    assert float(m(y, p)) == pytest.approx(reference(y, p).mean(), rel=1e-5)


def test_root_mean_squared_error():
    m = metrics.RootMeanSquaredError()
    batches = _batches()
    for y, p, w in batches:
        m.update_state(y, p, sample_weight=w)
    expected = _weighted_mean([((y - p) ** 2).mean(-1) for y, p, _ in batches],
                              [w for *_, w in batches])
    assert float(m.result()) == pytest.approx(np.sqrt(expected), rel=1e-5)


@pytest.mark.parametrize("metric, kwargs", [
    (metrics.BinaryCrossentropy, {"from_logits": True, "label_smoothing": 0.1}),
    (metrics.CategoricalCrossentropy, {"label_smoothing": 0.2}),
    (metrics.SparseCategoricalCrossentropy, {"from_logits": True}),
])
def test_crossentropy_metrics_match_loss_functions(metric, kwargs):
    logits = RNG.normal(0, 2, (6, 4)).astype("float32")
    labels = RNG.integers(0, 4, 6)
    y = {"BinaryCrossentropy": (logits > 0).astype("float32"),
         "CategoricalCrossentropy": np.eye(4, dtype="float32")[labels],
         "SparseCategoricalCrossentropy": labels}[metric.__name__]
    p = torch.softmax(torch.tensor(logits), -1) if metric.__name__ == "CategoricalCrossentropy" \
        else torch.tensor(logits)
    w = RNG.random(6).astype("float32")
    m = metric(**kwargs)
    m.update_state(y, p, sample_weight=w)
    per_sample = getattr(losses, m.name)(y, p, **kwargs).numpy()
    assert float(m.result()) == pytest.approx((per_sample * w).sum() / w.sum(), rel=1e-5)


@register_keras_serializable(package="TestMetrics")
def half_error(y_true, y_pred):
    return 0.5 * torch.abs(torch.as_tensor(y_true) - y_pred).mean(-1)


@pytest.mark.parametrize("metric", [
    metrics.Mean(name="m"), metrics.Sum(dtype="float64"), metrics.Accuracy(),
    metrics.BinaryAccuracy(threshold=0.3), metrics.TopKCategoricalAccuracy(k=3),
    metrics.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True),
    metrics.CosineSimilarity(axis=0), metrics.BinaryCrossentropy(from_logits=True),
    metrics.SparseCategoricalCrossentropy(ignore_class=0), metrics.RootMeanSquaredError(),
    metrics.MeanMetricWrapper(metrics.binary_accuracy, name="ba", threshold=0.7),
    metrics.MeanMetricWrapper(losses.huber, delta=0.5), metrics.MeanMetricWrapper(half_error),
    metrics.MeanMetricWrapper(losses.cosine_similarity),
])
def test_config_round_trip(metric):
    config = metrics.serialize(metric)
    assert config["class_name"] == type(metric).__name__
    restored = metrics.deserialize(config)
    assert type(restored) is type(metric) and restored.get_config() == metric.get_config()
    if isinstance(metric, metrics.MeanMetricWrapper):
        assert restored._fn is metric._fn


def test_get():
    assert metrics.get(None) is None
    for name, cls in [("mse", metrics.MeanSquaredError), ("MAE", metrics.MeanAbsoluteError),
                      ("acc", metrics.Accuracy), ("accuracy", metrics.Accuracy),
                      ("binary_accuracy", metrics.BinaryAccuracy), ("AUC", metrics.AUC),
                      ("RootMeanSquaredError", metrics.RootMeanSquaredError),
                      ("logcosh", metrics.LogCoshError), ("kld", metrics.KLDivergence)]:
        assert type(metrics.get(name)) is cls, name
    huber = metrics.get("huber")
    assert isinstance(huber, metrics.MeanMetricWrapper) and huber.name == "huber"
    wrapped = metrics.get(metrics.categorical_accuracy)
    assert wrapped.name == "categorical_accuracy" and wrapped._fn is metrics.categorical_accuracy
    instance = metrics.Precision()
    assert metrics.get(instance) is instance
    assert isinstance(metrics.get(metrics.Recall), metrics.Recall)
    assert metrics.get(metrics.serialize(metrics.AUC(curve="PR"))).curve == "PR"
    with pytest.raises(ValueError, match="not_a_metric"):
        metrics.get("not_a_metric")
    with pytest.raises(ValueError, match="identifier=3"):
        metrics.get(3)


def _count_metric_class(lib):
    """A keras.io-style custom metric: state made with `add_weight(name=, initializer=)`."""

    class PositiveCount(lib.metrics.Metric):
        def __init__(self, name="positive_count", **kwargs):
            super().__init__(name=name, **kwargs)
            self.count = self.add_weight(name="count", initializer="zeros")
            self.total = self.add_weight(shape=(2,), initializer="ones", name="total")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = lib.ops.convert_to_tensor(y_pred)
            self.count.assign_add(lib.ops.sum(lib.ops.cast(y_pred > 0, "float32")))
            self.total.assign_add(lib.ops.ones((2,)))

        def result(self):
            return self.count
    return PositiveCount


def test_add_weight_defaults_to_a_scalar_as_keras():
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    y_pred = np.array([[1.0, -2.0], [3.0, 0.5]], "float32")
    results = {}
    for lib in (kestrel, keras):
        metric = _count_metric_class(lib)()
        metric.update_state(None, y_pred)
        results[lib.__name__] = (float(metric.result()), [v.path for v in metric.variables],
                                 [tuple(v.shape) for v in metric.variables])
    assert results["kestrel"] == results["keras"] == (3.0, ["positive_count/count",
                                                              "positive_count/total"],
                                                      [(), (2,)])


def test_add_weight_reads_keras2_order_with_the_name_first():
    class Legacy(metrics.Metric):
        def __init__(self):
            super().__init__(name="legacy")
            self.seen = self.add_weight("seen", (3,), initializer="ones", dtype="int32")

    metric = Legacy()
    assert metric.seen.path == "legacy/seen" and metric.seen.dtype == torch.int32
    assert metric.seen.numpy().tolist() == [1, 1, 1]
    with pytest.raises(TypeError, match="add_weight got `name` twice"):
        metric.add_weight("x", name="y")
