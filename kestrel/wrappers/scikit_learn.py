"""Keras 2's scikit-learn wrappers (`keras.wrappers.scikit_learn`): `KerasClassifier` and
`KerasRegressor` take a `build_fn` returning a compiled model, and `sk_params` that go to
`build_fn`, `fit`, `predict` and `evaluate` by name.

    def create_model(optimizer="adam"):
        model = Sequential([Dense(8, input_dim=4, activation="relu"),
                            Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
        return model

    model = KerasClassifier(build_fn=create_model, epochs=10, batch_size=16, verbose=0)
    cross_val_score(model, X, y, cv=3)  # or GridSearchCV(model, {"optimizer": [...]})

Keras 3 replaced them with `kestrel.wrappers.SKLearnClassifier` / `SKLearnRegressor`.
"""
from __future__ import annotations

import inspect
import types

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from kestrel.models.model import Model
from kestrel.utils import to_categorical


def _accepts(fn, name: str) -> bool:
    parameters = inspect.signature(fn).parameters
    return name in parameters and parameters[name].kind not in (
        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class BaseWrapper(BaseEstimator):
    """Builds the model with `build_fn` at each `fit` and routes `sk_params` by name.

    Args:
        build_fn: a function (or callable object) returning a compiled model; None means the
            subclass' own `__call__`.
        **sk_params: arguments of `build_fn`, `fit`, `predict` or `evaluate`.
    """

    def __init__(self, build_fn=None, **sk_params):
        self.build_fn = build_fn
        self.sk_params = sk_params
        self.check_params(sk_params)

    def _builder(self):
        if self.build_fn is None:
            return self.__call__
        if isinstance(self.build_fn, (types.FunctionType, types.MethodType)):
            return self.build_fn
        return self.build_fn.__call__

    def check_params(self, params) -> None:
        """Raise for a parameter that no step takes (as Keras 2)."""
        legal = (Model.fit, Model.predict, Model.evaluate, self._builder())
        for name in params:
            if not any(_accepts(fn, name) for fn in legal) and name != "nb_epoch":
                raise ValueError(f"{name} is not a legal parameter")

    def get_params(self, deep=True):
        return {**self.sk_params, "build_fn": self.build_fn}

    def set_params(self, **params):
        self.check_params(params)
        self.build_fn = params.pop("build_fn", self.build_fn)
        self.sk_params.update(params)
        return self

    def filter_sk_params(self, fn, override=None) -> dict:
        """The `sk_params` that `fn` takes, updated with `override`."""
        return {**{k: v for k, v in self.sk_params.items() if _accepts(fn, k)},
                **(override or {})}

    def fit(self, x, y, **kwargs):
        """Build a fresh model and fit it; returns the `History`."""
        builder = self._builder()
        self.model = builder(**self.filter_sk_params(builder))
        loss = getattr(self.model, "loss", None)
        loss = getattr(loss, "__name__", loss)
        if loss == "categorical_crossentropy" and np.ndim(y) != 2:
            y = to_categorical(y)
        return self.model.fit(x, y, **self.filter_sk_params(Model.fit, kwargs))


class KerasClassifier(ClassifierMixin, BaseWrapper):
    """scikit-learn classifier around a Keras 2 style `build_fn` (see the module)."""

    def fit(self, x, y, sample_weight=None, **kwargs):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            self.classes_ = np.arange(y.shape[1])
        elif (y.ndim == 2 and y.shape[1] == 1) or y.ndim == 1:
            self.classes_ = np.unique(y)
            y = np.searchsorted(self.classes_, y)
        else:
            raise ValueError(f"Invalid shape for y: {y.shape}")
        self.n_classes_ = len(self.classes_)
        if sample_weight is not None:
            kwargs["sample_weight"] = sample_weight
        return super().fit(x, y, **kwargs)

    def predict_proba(self, x, **kwargs):
        """Class probabilities; a one-unit sigmoid output gives two columns."""
        probs = self.model.predict(x, **self.filter_sk_params(Model.predict, kwargs))
        return np.hstack([1 - probs, probs]) if probs.shape[1] == 1 else probs

    def predict(self, x, **kwargs):
        probs = self.model.predict(x, **self.filter_sk_params(Model.predict, kwargs))
        classes = probs.argmax(axis=-1) if probs.shape[-1] > 1 else \
            (probs[:, 0] > 0.5).astype("int32")
        return self.classes_[classes]

    def score(self, x, y, **kwargs):
        """The accuracy the model was compiled to report (`metrics=["accuracy"]`)."""
        y = np.searchsorted(self.classes_, y)
        loss = getattr(self.model.loss, "__name__", self.model.loss)
        if loss == "categorical_crossentropy" and np.ndim(y) != 2:
            y = to_categorical(y)
        outputs = self.model.evaluate(x, y, return_dict=True,
                                      **self.filter_sk_params(Model.evaluate, kwargs))
        for name in ("accuracy", "acc"):
            if name in outputs:
                return outputs[name]
        raise ValueError("The model is not configured to compute accuracy. You should pass "
                         '`metrics=["accuracy"]` to the `model.compile()` method.')


class KerasRegressor(RegressorMixin, BaseWrapper):
    """scikit-learn regressor around a Keras 2 style `build_fn` (see the module)."""

    def predict(self, x, **kwargs):
        out = self.model.predict(x, **self.filter_sk_params(Model.predict, kwargs))
        return np.squeeze(out, axis=-1) if out.shape[-1] == 1 else out

    def score(self, x, y, **kwargs):
        """Minus the loss (greater is better, as scikit-learn expects)."""
        loss = self.model.evaluate(x, y, **self.filter_sk_params(Model.evaluate, kwargs))
        return -loss[0] if isinstance(loss, list) else -loss
