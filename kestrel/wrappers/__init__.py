"""scikit-learn wrappers (Keras' `keras.wrappers`); scikit-learn is the optional extra
`kestrel[sklearn]`."""
import importlib

from kestrel.wrappers.sklearn_wrapper import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]


def __getattr__(name):
    if name == "scikit_learn":  # Keras 2's module, read as an attribute (tf.keras 2 books)
        return importlib.import_module("kestrel.wrappers.scikit_learn")
    raise AttributeError(f"module 'kestrel.wrappers' has no attribute {name!r}")
