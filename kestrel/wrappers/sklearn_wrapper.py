"""scikit-learn estimators around a compiled Kestrel model (Keras' `keras.wrappers`).

scikit-learn is optional (`pip install kestrel[sklearn]`): without it this module still
imports, and constructing a wrapper raises an ImportError that names the extra.
"""
from __future__ import annotations

import numpy as np

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
except ImportError:  # the wrappers stay importable; using one asks for the extra
    sklearn = None
    BaseEstimator = ClassifierMixin = RegressorMixin = TransformerMixin = object


def _validate_data(estimator, X, y=None, reset=True, **kwargs):
    """sklearn's input validation (`validate_data` from 1.6, the estimator method before)."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:
        args = (X,) if y is None else (X, y)
        return estimator._validate_data(*args, reset=reset, **kwargs)
    if y is None:
        return validate_data(estimator, X, reset=reset, **kwargs)
    return validate_data(estimator, X, y, reset=reset, **kwargs)


class SKLBase(BaseEstimator):
    """Common base of the wrappers: builds, fits and predicts with a Kestrel model.

    Args:
        model: A compiled `Model` (cloned with `kestrel.models.clone_model` before each fit
            unless `warm_start=True`), or a callable `model(X=..., y=..., **model_kwargs)`
            returning a compiled model, called with the encoded targets.
        warm_start: Whether a new `fit` continues training the model of the previous fit
            (or, for a `Model` argument, trains that very model) instead of a fresh one.
        model_kwargs: Extra keyword arguments for a callable `model`.
        fit_kwargs: Keyword arguments for `model.fit`; those given to `fit` take precedence.

    Attributes:
        model_: the fitted model. history_: the `History` of the last fit.
    """

    _multi_output = True  # targets may be 2-D (n_samples, n_outputs)

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
        if sklearn is None:
            raise ImportError(f"{type(self).__name__} requires scikit-learn. Install it with "
                              "`pip install kestrel[sklearn]` (or `pip install scikit-learn`).")
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    # ------------------------------------------------------------------ sklearn protocol
    def _more_tags(self):  # scikit-learn < 1.6
        return {"non_deterministic": True, **self._extra_tags[0]}

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags

    _extra_tags: tuple[dict, dict] = ({}, {})  # (scikit-learn < 1.6, >= 1.6 by section)

    @property
    def epoch_(self) -> int:
        """The number of epochs the last fit ran (0 before fitting)."""
        history = getattr(self, "history_", None)
        return len(history.epoch) if history is not None else 0

    # ------------------------------------------------------------------ fit / predict
    def _get_model(self, X, y):
        from kestrel.models import Model, clone_model

        if self.warm_start and hasattr(self, "model_"):
            return self.model_
        if isinstance(self.model, Model):
            return self.model if self.warm_start else clone_model(self.model)
        if not callable(self.model):
            raise TypeError(f"{type(self).__name__}: `model` must be a Model or a callable "
                            f"returning one. Received: model of type {type(self.model).__name__}")
        return self.model(X=X, y=y, **(self.model_kwargs or {}))

    def fit(self, X, y, **kwargs):
        """Fit a (fresh, unless `warm_start`) model on `X`, `y`.

        Args:
            X: array-like of shape (n_samples, n_features).
            y: array-like of shape (n_samples,) or (n_samples, n_outputs).
            **kwargs: passed to `model.fit`, over `fit_kwargs`.
        """
        X, y = _validate_data(self, X, y, multi_output=self._multi_output)
        y = self._encode_target(y)
        model = self._get_model(X, y)
        if not getattr(model, "compiled", False) or not getattr(model, "loss", None) \
                or getattr(model, "optimizer", None) is None:
            raise RuntimeError(f"{type(self).__name__}: the model must be compiled with a loss "
                               "and an optimizer.")
        self.history_ = model.fit(X, y, **{**(self.fit_kwargs or {}), **kwargs})
        self.model_ = model
        return self

    def _raw_predict(self, X) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        X = _validate_data(self, X, reset=False)
        return np.asarray(self.model_.predict(X, verbose=0))

    def predict(self, X):
        """Predictions for `X`, in the shape and labels of the fitted targets."""
        return self._decode_target(self._raw_predict(X))

    # Regressors and transformers train on the targets as given (1-D made a column).
    def _encode_target(self, y):
        from sklearn.utils.multiclass import type_of_target

        if type_of_target(y, input_name="y") == "unknown":
            raise ValueError(f"{type(self).__name__}: unknown label type for y (dtype "
                             f"{np.asarray(y).dtype}, shape {np.shape(y)}).")
        self._target_ndim = np.ndim(y)
        return np.reshape(y, (-1, 1)) if np.ndim(y) == 1 else y

    def _decode_target(self, raw):
        if self._target_ndim == 1 and raw.ndim == 2 and raw.shape[1] == 1:
            return raw[:, 0]
        return raw


class _ExtraTags:
    """Leftmost base: sets `_extra_tags` after the sklearn mixins made their tag sections."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        for section, values in self._extra_tags[1].items():
            for key, value in values.items():
                setattr(getattr(tags, section), key, value)
        return tags


class SKLearnClassifier(_ExtraTags, ClassifierMixin, SKLBase):
    """scikit-learn classifier around a Kestrel model; targets are one-hot encoded.

    `classes_` holds the sorted labels; the model sees one-hot targets in that column order
    and must output one score per class (`predict` takes the arg-max).

    Example:
    >>> def build(X, y):
    ...     model = kestrel.Sequential([kestrel.Input((X.shape[1],)),
    ...                                 kestrel.layers.Dense(y.shape[1], activation="softmax")])
    ...     model.compile(loss="categorical_crossentropy", optimizer="adam")
    ...     return model
    >>> clf = SKLearnClassifier(build, fit_kwargs={"epochs": 2, "verbose": 0})
    >>> clf.fit(np.random.rand(8, 3), np.array(["a", "b"] * 4)).classes_.tolist()
    ['a', 'b']
    """

    _multi_output = False
    _extra_tags = ({"poor_score": True}, {"classifier_tags": {"poor_score": True}})

    def _encode_target(self, y):
        from sklearn.utils.multiclass import type_of_target

        kind = type_of_target(y, input_name="y")
        if kind not in ("binary", "multiclass"):
            raise ValueError("SKLearnClassifier: only binary and multiclass targets are "
                             f"supported. Received: target type '{kind}'")
        self.classes_ = np.unique(y)
        if len(self.classes_) == 1:
            raise ValueError("SKLearnClassifier: cannot train with a single class. "
                             f"Received: classes_={self.classes_.tolist()}")
        return (np.asarray(y)[:, None] == self.classes_[None, :]).astype(np.float64)

    def _decode_target(self, raw):
        if raw.ndim != 2 or raw.shape[1] != len(self.classes_):
            raise ValueError(f"SKLearnClassifier: the model must output one score per class "
                             f"({len(self.classes_)}). Received: output shape {raw.shape}")
        return self.classes_[np.argmax(raw, axis=1)]

    def predict_proba(self, X):
        """The model's outputs for `X`: one column per class of `classes_`."""
        return self._raw_predict(X)

    def decision_function(self, X):
        """The model's raw outputs for `X`."""
        return self._raw_predict(X)


class SKLearnRegressor(_ExtraTags, RegressorMixin, SKLBase):
    """scikit-learn regressor around a Kestrel model (`score` is R²).

    Example:
    >>> model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(1)])
    >>> model.compile(loss="mse", optimizer="sgd")
    >>> reg = SKLearnRegressor(model, fit_kwargs={"verbose": 0})
    >>> reg.fit(np.random.rand(8, 3), np.random.rand(8)).predict(np.zeros((2, 3))).shape
    (2,)
    """

    _extra_tags = ({"poor_score": True}, {"regressor_tags": {"poor_score": True}})


class SKLearnTransformer(_ExtraTags, TransformerMixin, SKLBase):
    """scikit-learn transformer whose `transform` is the fitted model's output (e.g. an
    embedding); `fit(X, y)` trains it on targets `y`.

    Example:
    >>> model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(2)])
    >>> model.compile(loss="mse", optimizer="sgd")
    >>> trs = SKLearnTransformer(model, fit_kwargs={"verbose": 0})
    >>> trs.fit_transform(np.random.rand(8, 3), np.random.rand(8, 2)).shape
    (8, 2)
    """

    _extra_tags = ({"preserves_dtype": []}, {"transformer_tags": {"preserves_dtype": []}})

    def transform(self, X):
        """The fitted model's outputs for `X`, shape (n_samples, n_outputs)."""
        return self._raw_predict(X)

