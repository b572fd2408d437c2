"""kestrel.wrappers: scikit-learn estimators, compared with real Keras 3's wrappers."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import kestrel  # noqa: E402
from kestrel.wrappers import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer  # noqa: E402
from kestrel.wrappers import sklearn_wrapper  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.random((24, 3)).astype("float32")
LABELS = np.array(["cat", "dog", "eel"] * 8)
Y_REG = RNG.random(24)


def _fixed_builder(lib, activation=None, seed=1):
    """A builder making the same model, weights and a frozen optimizer in Kestrel or Keras."""
    def build(X, y, units=4):
        model = lib.Sequential([lib.Input((X.shape[1],)),
                                lib.layers.Dense(units, activation="tanh"),
                                lib.layers.Dense(y.shape[1], activation=activation)])
        rng = np.random.default_rng(seed)
        model.set_weights([rng.normal(size=w.shape).astype("float32")
                           for w in model.get_weights()])
        loss = "categorical_crossentropy" if activation == "softmax" else "mse"
        model.compile(loss=loss, optimizer=lib.optimizers.SGD(learning_rate=0.0))
        return model
    return build


FIT = {"epochs": 1, "verbose": 0, "shuffle": False}


@pytest.mark.parametrize("labels", [LABELS, np.array([3, 7] * 12)])
def test_classifier_matches_keras(labels):
    ours = SKLearnClassifier(_fixed_builder(kestrel, "softmax"), fit_kwargs=FIT).fit(X, labels)
    theirs = keras.wrappers.SKLearnClassifier(_fixed_builder(keras, "softmax"),
                                              fit_kwargs=dict(FIT)).fit(X, labels)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.decision_function(X), atol=1e-5)
    assert ours.predict(X).dtype == theirs.predict(X).dtype
    assert ours.score(X, labels) == pytest.approx(theirs.score(X, labels))
    assert ours.n_features_in_ == theirs.n_features_in_ == 3


def test_regressor_and_transformer_match_keras():
    for ours_cls, theirs_cls, y in ((SKLearnRegressor, keras.wrappers.SKLearnRegressor, Y_REG),
                                    (SKLearnTransformer, keras.wrappers.SKLearnTransformer,
                                     Y_REG)):  # Keras' validation takes 1-D targets only
        ours = ours_cls(_fixed_builder(kestrel), fit_kwargs=FIT).fit(X, y)
        theirs = theirs_cls(_fixed_builder(keras), fit_kwargs=dict(FIT)).fit(X, y)
        assert ours.predict(X).shape == theirs.predict(X).shape
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-5)
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), atol=1e-5)
    reg = SKLearnRegressor(_fixed_builder(kestrel), fit_kwargs=FIT).fit(X, Y_REG)
    ref = keras.wrappers.SKLearnRegressor(_fixed_builder(keras), fit_kwargs=dict(FIT))
    assert reg.score(X, Y_REG) == pytest.approx(ref.fit(X, Y_REG).score(X, Y_REG), abs=1e-5)


def test_params_clone_and_errors():
    est = SKLearnClassifier(_fixed_builder(kestrel, "softmax"), model_kwargs={"units": 2},
                            fit_kwargs=FIT)
    assert est.get_params() == {"model": est.model, "warm_start": False,
                                "model_kwargs": {"units": 2}, "fit_kwargs": FIT}
    copy = clone(est.set_params(warm_start=True))
    assert copy.warm_start and copy.fit_kwargs == FIT and copy.model is est.model
    with pytest.raises(NotFittedError):
        est.predict(X)
    with pytest.raises(ValueError, match="binary and multiclass.*continuous"):
        est.fit(X, Y_REG)
    with pytest.raises(ValueError, match="single class"):
        est.fit(X, np.zeros(24))
    uncompiled = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(1)])
    with pytest.raises(RuntimeError, match="compiled"):
        SKLearnRegressor(uncompiled).fit(X, Y_REG)
    with pytest.raises(TypeError, match="Received: model of type int"):
        SKLearnRegressor(3).fit(X, Y_REG)


def test_missing_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setattr(sklearn_wrapper, "sklearn", None)
    with pytest.raises(ImportError, match=r"SKLearnRegressor requires scikit-learn.*"
                                          r"kestrel\[sklearn\]"):
        SKLearnRegressor(_fixed_builder(kestrel))


def test_model_argument_is_cloned_unless_warm_start():
    model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    before = [w.copy() for w in model.get_weights()]
    cold = SKLearnRegressor(model, fit_kwargs={"verbose": 0}).fit(X, Y_REG)
    assert cold.model_ is not model and cold.model_.compiled
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    warm = SKLearnRegressor(model, warm_start=True, fit_kwargs={"verbose": 0}).fit(X, Y_REG)
    assert warm.model_ is model and warm.fit(X, Y_REG, epochs=2).model_ is model
    assert warm.epoch_ == 2 and cold.fit_kwargs == {"verbose": 0}  # fit kwargs not stored
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_sklearn_tools():
    clf = SKLearnClassifier(_fixed_builder(kestrel, "softmax"), fit_kwargs=FIT)
    scores = cross_val_score(clf, X, LABELS, cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))
    pipe = make_pipeline(StandardScaler(), clf)
    search = GridSearchCV(pipe, {"sklearnclassifier__model_kwargs": [{"units": 2},
                                                                     {"units": 5}]}, cv=2)
    search.fit(X, LABELS)
    assert search.best_params_["sklearnclassifier__model_kwargs"] in ({"units": 2},
                                                                       {"units": 5})
    assert set(search.predict(X)) <= set(LABELS)
    layer = search.best_estimator_[-1].model_.layers[0]
    assert layer.units == search.best_params_["sklearnclassifier__model_kwargs"]["units"]
    trs = make_pipeline(SKLearnTransformer(_fixed_builder(kestrel), fit_kwargs=FIT))
    assert trs.fit_transform(X, RNG.random((24, 5))).shape == (24, 5)  # 2-D targets, too
    reg = SKLearnRegressor(_fixed_builder(kestrel), fit_kwargs=FIT)
    assert reg.fit(X, RNG.random((24, 2))).predict(X).shape == (24, 2)


def test_docstring_examples():
    import doctest

    result = doctest.testmod(sklearn_wrapper, extraglobs={"kestrel": kestrel, "np": np})
    assert result.attempted >= 9 and result.failed == 0
