"""Confusion counts, Precision, Recall and AUC against NumPy references, Keras and sklearn."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

import kestrel
from kestrel import metrics
from tests.fresh_session import fresh

EPS = 1e-7
RNG = np.random.default_rng(2)


def _scores(n=400, labels=None):
    y = RNG.integers(0, 2, (n,) if labels is None else (n, labels))
    p = np.clip(RNG.normal(0.35 + 0.3 * y, 0.2), 0, 1).astype("float32")
    return y, p


def np_confusion(y, p, thresholds, w=None):
    """tp, fp, tn, fn per threshold (rows) and label (columns) by direct comparison."""
    y, p = np.asarray(y).reshape(len(y), -1) != 0, np.asarray(p).reshape(len(y), -1)
    w = np.ones(p.shape) if w is None else np.broadcast_to(np.asarray(w).reshape(len(y), -1),
                                                           p.shape)
    above = p[None] > np.asarray(thresholds, dtype=p.dtype)[:, None, None]
    return [((a & b) * w).sum(1) for a, b in ((y, above), (~y, above), (~y, ~above),
                                              (y, ~above))]


def _div(a, b):
    return np.where(b == 0, 0.0, a / np.where(b == 0, 1, b))


def np_keras_auc(y, p, num_thresholds=200, curve="ROC", summation="interpolation", w=None,
                 multi_label=False, label_weights=None, thresholds=None):
    """Keras' AUC formulas on confusion counts computed by direct comparison."""
    inner = ([(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
             if thresholds is None else sorted(thresholds))
    thr = [-EPS, *inner, 1 + EPS]
    if not multi_label:
        if w is not None:
            extra = (1,) * (np.ndim(p) - np.ndim(w))
            w = np.ravel(np.broadcast_to(np.reshape(w, np.shape(w) + extra), np.shape(p)))
        y, p = np.ravel(y), np.ravel(p)
    tp, fp, tn, fn = np_confusion(y, p, thr, w)
    if curve == "PR" and summation == "interpolation":
        dtp, pos = tp[:-1] - tp[1:], tp + fp
        dp = pos[:-1] - pos[1:]
        slope = _div(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * pos[1:]
        ratio = np.where((pos[:-1] > 0) & (pos[1:] > 0), _div(pos[:-1], pos[1:]), 1.0)
        terms = _div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
    else:
        recall = _div(tp, tp + fn)
        if curve == "ROC":
            x, yv = _div(fp, fp + tn), recall
        elif curve == "PR":
            x, yv = recall, _div(tp, tp + fp)
        else:
            scale = _div(tp + fn, tn + fp)
            x = np.maximum(np.where(tp == 0, 0, 1 - scale * _div(fn, tp)), 0)
            yv = np.where(tp == 0, 1, 1 - scale * _div(fp, tp))
        heights = {"interpolation": (yv[:-1] + yv[1:]) / 2, "minoring": np.minimum(
            yv[:-1], yv[1:]), "majoring": np.maximum(yv[:-1], yv[1:])}[summation]
        terms = (x[:-1] - x[1:]) * heights
    by_label = terms.sum(0)
    if label_weights is None:
        return by_label.mean()
    return (by_label * label_weights).sum() / np.sum(label_weights)


def test_auc_keras_example():
    m = metrics.AUC(num_thresholds=3)
    assert float(m([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])) == pytest.approx(0.75)
    np.testing.assert_allclose(m.true_positives.numpy(), [2, 1, 0])
    np.testing.assert_allclose(m.true_negatives.numpy(), [0, 2, 2])
    m.reset_state()
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert float(m.result()) == pytest.approx(1.0)


@pytest.mark.parametrize("curve", ["ROC", "PR", "PRGAIN"])
@pytest.mark.parametrize("summation", ["interpolation", "majoring", "minoring"])
def test_auc_matches_keras_formula(curve, summation):
    y, p = _scores()
    w = RNG.random(len(y)).astype("float32")
    m = metrics.AUC(num_thresholds=50, curve=curve, summation_method=summation)
    for part in np.array_split(np.arange(len(y)), 3):
        m.update_state(y[part], torch.tensor(p[part]), sample_weight=w[part])
    expected = np_keras_auc(y, p, 50, curve, summation, w=w)
    assert float(m.result()) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_auc_close_to_sklearn():
    y, p = _scores(2000)
    assert float(metrics.AUC()(y, p)) == pytest.approx(roc_auc_score(y, p), abs=1e-2)
    pr = metrics.AUC(curve="PR", num_thresholds=500)(y, p)
    assert float(pr) == pytest.approx(average_precision_score(y, p), abs=1e-2)


def test_auc_from_logits_and_column_labels():
    y, p = _scores()
    logits = np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4)))
    expected = float(metrics.AUC()(y, np.clip(p, 1e-4, 1 - 1e-4)))
    from_logits = metrics.AUC(from_logits=True)(y[:, None], logits[:, None].astype("float32"))
    assert float(from_logits) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("label_weights", [None, [0.2, 1.0, 3.0]])
def test_auc_multi_label(label_weights):
    y, p = _scores(300, labels=3)
    lazy = metrics.AUC(multi_label=True, label_weights=label_weights)
    built = metrics.AUC(multi_label=True, num_labels=3, label_weights=label_weights)
    assert len(lazy.variables) == 0 and built.true_positives.shape == (200, 3)
    for m in (lazy, built):
        m.update_state(y, p)
        expected = np_keras_auc(y, p, multi_label=True, label_weights=label_weights)
        assert float(m.result()) == pytest.approx(expected, rel=1e-5)
    flat = metrics.AUC(label_weights=label_weights)(y, p)
    weights = None if label_weights is None else np.broadcast_to(label_weights, y.shape)
    assert float(flat) == pytest.approx(np_keras_auc(y, p, w=weights), rel=1e-5)


@pytest.mark.parametrize("thresholds", [[0.25, 0.5, 0.75], [0.1, 0.35, 0.5, 0.9]])
def test_auc_explicit_thresholds(thresholds):
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    p = np.array([0.5, 0.25, 0.75, 0.9, 0.35, 0.1, 0.5, 0.0], dtype="float32")
    m = metrics.AUC(thresholds=thresholds)
    assert m.num_thresholds == len(thresholds) + 2
    assert m.get_config()["thresholds"] == thresholds
    expected = np_keras_auc(y, p, thresholds=thresholds)
    assert float(m(y, p)) == pytest.approx(expected, rel=1e-6)


def test_auc_config_and_errors():
    m = metrics.AUC(num_thresholds=10, curve="pr", summation_method="majoring", name="a",
                    multi_label=True, num_labels=2, label_weights=[1.0, 2.0])
    config = m.get_config()
    assert config["curve"] == "PR" and config["label_weights"] == [1.0, 2.0]
    restored = metrics.deserialize(metrics.serialize(m))
    assert restored.get_config() == config and restored.true_positives.shape == (10, 2)
    with pytest.raises(ValueError, match="num_thresholds=1"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve='XYZ'"):
        metrics.AUC(curve="XYZ")
    with pytest.raises(ValueError, match="num_labels"):
        metrics.AUC(num_labels=3)


@pytest.mark.parametrize("thresholds", [None, 0.3, [0.2, 0.6], [0.0, 0.5, 1.0]])
def test_confusion_counts(thresholds):
    y, p = _scores(50)
    w = RNG.random(50)
    thr = [0.5] if thresholds is None else np.atleast_1d(thresholds)
    expected = np_confusion(y, p, thr, w)
    for cls, ref in zip((metrics.TruePositives, metrics.FalsePositives, metrics.TrueNegatives,
                         metrics.FalseNegatives), expected):
        m = cls(thresholds=thresholds)
        m.update_state(y[:20], p[:20], sample_weight=w[:20])
        m.update_state(y[20:], p[20:], sample_weight=w[20:])
        result = m.result().numpy()
        np.testing.assert_allclose(result, ref[:, 0] if result.ndim else ref[0, 0], rtol=1e-5,
                                   atol=1e-5)
        assert metrics.deserialize(metrics.serialize(m)).get_config() == m.get_config()


def test_precision_recall_keras_examples():
    fresh(kestrel)  # the first unnamed Precision of a session is `precision`
    m = metrics.Precision()
    assert m.name == "precision"
    assert float(m([0, 1, 1, 1], [1, 0, 1, 1])) == pytest.approx(2 / 3)
    m.reset_state()
    assert float(m([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])) == 1.0
    assert float(metrics.Precision(top_k=2)([0, 0, 1, 1], [1, 1, 1, 1])) == 0.0
    assert float(metrics.Precision(top_k=4)([0, 0, 1, 1], [1, 1, 1, 1])) == 0.5
    r = metrics.Recall()
    assert float(r([0, 1, 1, 1], [1, 0, 1, 1])) == pytest.approx(2 / 3)
    assert float(metrics.Recall()([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])) == 1.0


@pytest.mark.parametrize("thresholds", [None, [0.3, 0.7], [0.0, 0.25, 0.5, 0.75, 1.0]])
def test_precision_recall_match_numpy(thresholds):
    y, p = _scores(60, labels=3)
    w = RNG.random(60)
    thr = [0.5] if thresholds is None else thresholds
    tp, fp, _, fn = (c.sum(-1) for c in np_confusion(y, p, thr, w[:, None]))
    for metric, ref in ((metrics.Precision(thresholds), _div(tp, tp + fp)),
                        (metrics.Recall(thresholds), _div(tp, tp + fn))):
        metric.update_state(y[:30], p[:30], sample_weight=w[:30])
        metric.update_state(y[30:], p[30:], sample_weight=w[30:])
        np.testing.assert_allclose(metric.result().numpy(), ref if thresholds else ref[0],
                                   rtol=1e-5)


def test_precision_recall_class_id_and_top_k():
    y = np.array([[0, 1, 1], [1, 0, 1], [0, 0, 1]])
    p = np.array([[0.2, 0.6, 0.7], [0.9, 0.1, 0.3], [0.4, 0.8, 0.1]], dtype="float32")
    # class 1: predicted positive in rows 0 and 2, labelled positive in row 0
    assert float(metrics.Precision(class_id=1)(y, p)) == pytest.approx(0.5)
    assert float(metrics.Recall(class_id=2)(y, p)) == pytest.approx(1 / 3)
    # top_k=1 keeps one prediction per row: 0.7 (pos), 0.9 (pos), 0.8 (neg)
    assert float(metrics.Precision(top_k=1)(y, p)) == pytest.approx(2 / 3)
    fresh(kestrel)  # the next unnamed Recall is the session's first: `recall`
    config = metrics.Recall(thresholds=[0.2, 0.4], top_k=2, class_id=1).get_config()
    assert config == {"name": "recall", "dtype": "float32", "thresholds": [0.2, 0.4],
                      "top_k": 2, "class_id": 1}
    with pytest.raises(ValueError, match="thresholds"):
        metrics.Precision(thresholds=[0.5, 1.5])
