"""Kestrel: the Keras model API, natively on PyTorch.

    import kestrel as keras
    model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(10)])
"""
from kestrel import (activations, callbacks, config, constraints, datasets, distribution, export,
                     initializers, layers, losses, metrics, mixed_precision, models, optimizers,
                     regularizers, utils)
from kestrel.layers import Input, InputLayer, Layer
from kestrel.models import Model, Sequential

__version__ = "0.1.0"
