"""scikit-learn wrappers (Keras' `keras.wrappers`); scikit-learn is the optional extra
`kestrel[sklearn]`."""
from kestrel.wrappers.sklearn_wrapper import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]
