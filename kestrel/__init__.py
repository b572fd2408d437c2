"""Kestrel: the Keras model API, natively on PyTorch.

    import kestrel as keras
    model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(10)])

Submodules that Keras scripts reach less often (`ops`, `random`, `tree`, `backend`,
`preprocessing`, ...) and the top-level class aliases load on first use.
"""
import importlib

from kestrel import _aliases

_aliases.install()  # Keras 2 module paths (kestrel.layers.recurrent, ...), resolved lazily

from kestrel import (activations, callbacks, config, constraints, datasets, distribution, export,
                     initializers, layers, losses, metrics, mixed_precision, models, optimizers,
                     regularizers, utils)
from kestrel.layers import Input, InputLayer, Layer
from kestrel.models import Model, Sequential

__version__ = "0.1.0"

_LAZY_MODULES = ("ops", "random", "tree", "backend", "preprocessing", "applications", "legacy",
                 "engine", "dtype_policies", "saving", "visualization", "quantizers",
                 "wrappers", "distillation")

# Top-level names Keras 3 exports, as "module:attribute", imported on first use.
_LAZY_NAMES = {
    "Variable": "kestrel.variables:Variable",
    "KerasTensor": "kestrel.layers.node:KerasTensor",
    "InputSpec": "kestrel.layers.input_spec:InputSpec",
    "Loss": "kestrel.losses.loss:Loss",
    "Metric": "kestrel.metrics.metric:Metric",
    "Optimizer": "kestrel.optimizers.optimizer:Optimizer",
    "Initializer": "kestrel.initializers.initializer:Initializer",
    "Regularizer": "kestrel.regularizers.regularizers:Regularizer",
    "DTypePolicy": "kestrel.mixed_precision:DTypePolicy",
    "FloatDTypePolicy": "kestrel.mixed_precision:FloatDTypePolicy",
    "Operation": "kestrel.ops.operation:Operation",
    "Function": "kestrel.ops.function:Function",
    "name_scope": "kestrel.backend.scopes:name_scope",
    "device": "kestrel.backend.scopes:device",
    "Quantizer": "kestrel.quantizers:Quantizer",
    "remat": "kestrel.layers.remat:remat",
    "RematScope": "kestrel.layers.remat:RematScope",
    "StatelessScope": "kestrel.layers.stateless:StatelessScope",
    "SymbolicScope": "kestrel.backend.scopes:SymbolicScope",
}


def __getattr__(name):
    if name in _LAZY_MODULES:
        module = importlib.import_module(f"kestrel.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_NAMES:
        module_name, attr = _LAZY_NAMES[name].split(":")
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    alias = _aliases.child_alias(__name__, name)
    if alias is not None:
        return alias
    raise AttributeError(f"module 'kestrel' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))


def version() -> str:
    """Kestrel's version (Keras' `keras.version()`)."""
    return __version__
