"""F-scores, R2, IoUs, correlations and rate-at-constraint metrics against real Keras 3."""
import os
import warnings

import numpy as np
import pytest
import torch

import kestrel
from kestrel import metrics

os.environ["KERAS_BACKEND"] = "torch"
import keras  # noqa: E402  (the trusted reference)

from tests.fresh_session import fresh  # noqa: E402

RNG = np.random.default_rng(7)
BATCH = 16


def _f32(*shape):
    return RNG.random(shape).astype("float32")


def _multilabel():
    return (_f32(BATCH, 4) > 0.6).astype("float32"), _f32(BATCH, 4)


def _regression():
    y_true = RNG.normal(size=(BATCH, 3)).astype("float32")
    return y_true, y_true + 0.7 * RNG.normal(size=(BATCH, 3)).astype("float32")


def _rows():
    return RNG.normal(size=(BATCH, 5)).astype("float32"), RNG.normal(size=(BATCH, 5)).astype(
        "float32")


def _ids():
    return RNG.integers(0, 4, BATCH), RNG.integers(0, 4, BATCH)


def _ids_and_scores():
    return RNG.integers(0, 4, BATCH), _f32(BATCH, 4)


def _one_hot_and_scores():
    return np.eye(4, dtype="float32")[RNG.integers(0, 4, BATCH)], _f32(BATCH, 4)


def _binary():
    return (_f32(BATCH) > 0.5).astype("float32"), _f32(BATCH)


def _binary_classes():
    return (_f32(BATCH, 3) > 0.5).astype("float32"), _f32(BATCH, 3)


def _fractions():
    return _f32(BATCH)


def _integers():  # IoU's default int32 state truncates weights: use whole numbers
    return RNG.integers(0, 3, BATCH).astype("float32")


# class name, constructor kwargs, batch maker, sample weight maker
CASES = [
    ("F1Score", {}, _multilabel, _fractions),
    ("F1Score", {"average": "micro", "threshold": 0.5}, _multilabel, _fractions),
    ("F1Score", {"average": "macro"}, _multilabel, _fractions),
    ("FBetaScore", {"average": "weighted", "beta": 2.0, "threshold": 0.4},
     _multilabel, _fractions),
    ("FBetaScore", {"beta": 0.5}, _multilabel, _fractions),
    ("R2Score", {}, _regression, _fractions),
    ("R2Score", {"class_aggregation": "variance_weighted_average"}, _regression, _fractions),
    ("R2Score", {"class_aggregation": None, "num_regressors": 2}, _regression, _fractions),
    ("IoU", {"num_classes": 4, "target_class_ids": [0, 2]}, _ids, _integers),
    ("IoU", {"num_classes": 4, "target_class_ids": [1], "dtype": "float32",
             "sparse_y_pred": False, "ignore_class": 3}, _ids_and_scores, _fractions),
    ("MeanIoU", {"num_classes": 4, "ignore_class": 0}, _ids, _integers),
    ("MeanIoU", {"num_classes": 4, "sparse_y_pred": False, "dtype": "float32"},
     _ids_and_scores, _fractions),
    ("BinaryIoU", {"threshold": 0.3}, _binary, _integers),
    ("BinaryIoU", {"target_class_ids": [1], "dtype": "float32"}, _binary, _fractions),
    ("OneHotIoU", {"num_classes": 4, "target_class_ids": [1, 3]}, _one_hot_and_scores,
     _integers),
    ("OneHotMeanIoU", {"num_classes": 4, "dtype": "float32"}, _one_hot_and_scores, _fractions),
    ("PearsonCorrelation", {}, _rows, _fractions),
    ("PearsonCorrelation", {"axis": 0}, _rows, None),
    ("ConcordanceCorrelation", {}, _rows, _fractions),
    ("PrecisionAtRecall", {"recall": 0.6}, _binary, _fractions),
    ("RecallAtPrecision", {"precision": 0.5, "num_thresholds": 7}, _binary, _fractions),
    ("SensitivityAtSpecificity", {"specificity": 0.4}, _binary, _fractions),
    ("SensitivityAtSpecificity", {"specificity": 0.7, "num_thresholds": 1}, _binary, _fractions),
    ("SpecificityAtSensitivity", {"sensitivity": 0.5, "class_id": 1}, _binary_classes,
     _fractions),
    ("SpecificityAtSensitivity", {"sensitivity": 0.8, "num_thresholds": 2}, _binary, None),
]
IDS = [f"{name}-{i}" for i, (name, *_) in enumerate(CASES)]


def _pair(name, kwargs):
    return getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)


@pytest.mark.parametrize("name, kwargs, make_batch, make_weights", CASES, ids=IDS)
def test_matches_keras_over_several_batches(name, kwargs, make_batch, make_weights):
    ours, theirs = _pair(name, kwargs)
    for weighted in (False, True) if make_weights else (False,):
        ours.reset_state()
        theirs.reset_state()
        for _ in range(3):
            y_true, y_pred = make_batch()
            sample_weight = make_weights() if weighted else None
            ours.update_state(torch.as_tensor(y_true), torch.as_tensor(y_pred),
                              sample_weight=sample_weight)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs.update_state(y_true, y_pred, sample_weight=sample_weight)
        np.testing.assert_allclose(ours.result().numpy(),
                                   keras.ops.convert_to_numpy(theirs.result()),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, kwargs, make_batch, make_weights", CASES[::3],
                         ids=IDS[::3])
def test_reset_state_starts_over(name, kwargs, make_batch, make_weights):
    batch = make_batch()
    fresh = getattr(metrics, name)(**kwargs)
    fresh.update_state(*batch)
    used = getattr(metrics, name)(**kwargs)
    used.update_state(*make_batch())
    used.reset_state()
    used.update_state(*batch)
    torch.testing.assert_close(used.result(), fresh.result())


@pytest.mark.parametrize("name, kwargs", [case[:2] for case in CASES], ids=IDS)
def test_config_matches_keras_and_round_trips(name, kwargs):
    ours, theirs = _pair(name, {"name": "m", **kwargs})
    config = ours.get_config()
    assert config == theirs.get_config()
    assert list(config) == list(theirs.get_config())
    rebuilt = metrics.deserialize(metrics.serialize(ours))
    assert type(rebuilt) is type(ours) and rebuilt.get_config() == config


def test_variable_paths_match_keras():
    for name, kwargs, make_batch, _ in CASES:
        ours, theirs = _pair(name, {"name": "m", **kwargs})
        batch = make_batch()
        ours.update_state(*batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.update_state(*batch)
        assert [v.path for v in ours.variables] == [v.path for v in theirs.variables], name


@pytest.mark.parametrize("string", ["f1_score", "f_beta_score", "r2_score",
                                    "pearson_correlation", "concordance_correlation",
                                    "binary_io_u", "BinaryIoU"])
def test_strings_resolve_like_keras(string):
    assert type(metrics.get(string)).__name__ == type(keras.metrics.get(string)).__name__


@pytest.mark.parametrize("string", ["precision_at_recall", "recall_at_precision",
                                    "sensitivity_at_specificity", "specificity_at_sensitivity",
                                    "io_u", "mean_io_u", "one_hot_io_u", "one_hot_mean_io_u"])
def test_strings_of_metrics_with_required_arguments_name_the_class(string):
    from keras.src.metrics import ALL_OBJECTS_DICT

    found = kestrel.registry.object_registry.lookup(string, "metrics")
    assert found.__name__ == ALL_OBJECTS_DICT[string].__name__


def test_invalid_arguments():
    cases = [(lambda: metrics.F1Score(average="sample"), "average='sample'"),
             (lambda: metrics.FBetaScore(beta=2), "beta=2"),
             (lambda: metrics.F1Score(threshold=1.5), "threshold=1.5"),
             (lambda: metrics.R2Score(class_aggregation="max"), "class_aggregation='max'"),
             (lambda: metrics.R2Score(num_regressors=-1), "num_regressors=-1"),
             (lambda: metrics.IoU(3, [0, 3]), "num_classes=3"),
             (lambda: metrics.PrecisionAtRecall(1.2), "recall=1.2"),
             (lambda: metrics.SensitivityAtSpecificity(0.5, num_thresholds=0),
              "num_thresholds=0")]
    for build, message in cases:
        with pytest.raises(ValueError, match=message):
            build()
    with pytest.raises(ValueError, match="y_pred.shape"):
        metrics.F1Score().update_state(np.ones(3), np.ones(3))


def test_compile_and_fit_with_new_losses_and_metrics():
    fresh(kestrel)  # unnumbered metric names: the first of their session
    x = RNG.normal(size=(64, 6)).astype("float32")
    y = np.eye(3, dtype="float32")[RNG.integers(0, 3, 64)]
    model = kestrel.Sequential([kestrel.Input((6,)), kestrel.layers.Dense(3,
                                                                          activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_focal_crossentropy",
                  metrics=["f1_score", metrics.OneHotMeanIoU(3),
                           metrics.PrecisionAtRecall(0.5)])
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert set(history.history) >= {"loss", "f1_score", "one_hot_mean_io_u",
                                    "precision_at_recall"}
    assert all(np.isfinite(v).all() for v in history.history.values())
    model.compile(optimizer="sgd", loss=kestrel.losses.Dice(), metrics=["r2_score"])
    assert np.isfinite(model.evaluate(x, y, verbose=0)).all()
