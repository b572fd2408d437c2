"""Unnamed metrics are numbered per session as in Keras 3: `auc`, then `auc_1`, ... until
`clear_session()`; metrics with a fixed default name (`accuracy`) are not. Checked against
real Keras 3 (torch backend), whose counters are its own, in the same process."""
import inspect
import os

import numpy as np
import pytest

import kestrel

os.environ["KERAS_BACKEND"] = "torch"
import keras  # noqa: E402  (the trusted reference)

from tests.fresh_session import fresh  # noqa: E402

X = np.random.default_rng(0).random((8, 4)).astype("float32")
Y = (X[:, :1] > 0.5).astype("float32")
REQUIRED = {"IoU": {"num_classes": 2, "target_class_ids": [0]},
            "MeanIoU": {"num_classes": 2},
            "OneHotIoU": {"num_classes": 2, "target_class_ids": [0]},
            "OneHotMeanIoU": {"num_classes": 2},
            "MeanMetricWrapper": {"fn": "mean_squared_error"},
            "PrecisionAtRecall": {"recall": 0.5},
            "RecallAtPrecision": {"precision": 0.5},
            "SensitivityAtSpecificity": {"specificity": 0.5},
            "SpecificityAtSensitivity": {"sensitivity": 0.5}}


def _metric_classes(lib):
    return {name: cls for name, cls in vars(lib.metrics).items()
            if inspect.isclass(cls) and issubclass(cls, lib.metrics.Metric)
            and cls is not lib.metrics.Metric}


def _two_names(lib, names):
    """The names of two unnamed instances of each metric class in `names`, in one session."""
    fresh(lib)
    pairs = {}
    for name in names:
        kwargs = dict(REQUIRED.get(name, {}))
        if "fn" in kwargs:
            kwargs["fn"] = lib.losses.get(kwargs["fn"])
        cls = getattr(lib.metrics, name)
        pairs[name] = (cls(**kwargs).name, cls(**kwargs).name)
    return pairs


def test_every_metric_class_numbers_its_default_name_as_keras():
    names = sorted(_metric_classes(keras))
    assert set(names) <= set(_metric_classes(kestrel))
    ours = _two_names(kestrel, names)
    assert ours == _two_names(keras, names)
    assert ours["AUC"] == ("auc", "auc_1")
    assert ours["Accuracy"] == ("accuracy", "accuracy")


def _history_keys(lib, metrics):
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=metrics(lib))
    history = model.fit(X, Y, validation_data=(X, Y), batch_size=8, epochs=1, verbose=0)
    return sorted(history.history)


def _session(lib):
    """Four models compiled in one session, then the next unnamed AUC; then a cleared session."""
    fresh(lib)
    keys = [_history_keys(lib, lambda k: [k.metrics.AUC(), k.metrics.Precision()]),
            _history_keys(lib, lambda k: [k.metrics.AUC(), k.metrics.Precision(), "accuracy"]),
            _history_keys(lib, lambda k: ["AUC", "Recall"]),
            _history_keys(lib, lambda k: ["auc", "recall"])]
    next_name = lib.metrics.AUC().name
    lib.utils.clear_session()
    after_clear = _history_keys(lib, lambda k: [k.metrics.AUC()])
    return keys, next_name, after_clear, lib.metrics.AUC(name="auc").name, lib.metrics.AUC().name


def test_history_keys_of_models_compiled_in_one_session_match_keras():
    ours = _session(kestrel)
    assert ours == _session(keras)
    keys, next_name, after_clear = ours[:3]
    assert "val_auc_1" in keys[1] and "val_precision_1" in keys[1]
    assert "val_AUC" in keys[2]  # a string keeps its spelling but takes a number: auc_4 next
    assert next_name == "auc_4"
    assert "val_auc" in after_clear


@pytest.mark.parametrize("lib", [kestrel, keras], ids=["kestrel", "keras"])
def test_clear_session_restarts_metric_numbering(lib):
    fresh(lib)
    assert [lib.metrics.Recall().name, lib.metrics.Recall().name] == ["recall", "recall_1"]
    lib.backend.clear_session()
    assert lib.metrics.Recall().name == "recall"
    assert lib.metrics.MeanSquaredError().name == "mean_squared_error"


class _CallableMetric:
    def __call__(self, y_true, y_pred):
        return y_pred


def _mean_error(y_true, y_pred):
    return y_pred - y_true


def _wrapped_callables(lib):
    """Compile wraps each callable metric in an unnamed (numbered) MeanMetricWrapper, as Keras."""
    fresh(lib)
    keys = _history_keys(lib, lambda k: [_mean_error, _CallableMetric(), "mse",
                                         k.losses.BinaryCrossentropy()])
    return keys, lib.metrics.MeanMetricWrapper(_mean_error).name


def test_callable_metrics_in_compile_take_wrapper_numbers_as_keras():
    ours = _wrapped_callables(kestrel)
    assert ours == _wrapped_callables(keras)
    assert ours[1] == "mean_metric_wrapper_3"


def _uids(lib):
    """`backend.get_uid` shares the automatic names' counters, as in Keras."""
    fresh(lib)
    lib.layers.Dense(1)
    lib.metrics.AUC()
    uids = [lib.backend.get_uid("dense"), lib.backend.get_uid("auc"), lib.backend.get_uid("thing")]
    return uids, lib.layers.Dense(1).name, lib.metrics.AUC().name, _thing_name(lib)


def _thing_name(lib):
    class Thing(lib.layers.Layer):
        pass

    return Thing().name


def test_get_uid_shares_the_automatic_name_counters_as_keras():
    ours = _uids(kestrel)
    assert ours == _uids(keras)
    assert ours == ([2, 2, 1], "dense_2", "auc_2", "thing_1")


def _nested_lists(lib):
    """A single-output model takes every metric of nested lists, as Keras."""
    fresh(lib)
    return [_history_keys(lib, lambda k, spec=spec: spec)
            for spec in ([["precision"]], [["precision"], ["auc"]], [("mae",)])]


def test_nested_metric_lists_on_one_output_match_keras():
    ours = _nested_lists(kestrel)
    assert ours == _nested_lists(keras)
    assert "val_auc" in ours[1]
