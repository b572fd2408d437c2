"""Optimizers with Keras 3's API and maths, running torch multi-tensor kernels.

`get("adam")`, `get({"class_name": "SGD", "config": {...}})` and `get(instance)` resolve an
optimizer as `Model.compile` does; names are case-insensitive, as in Keras.
"""
from __future__ import annotations

from kestrel.optimizers import legacy, schedules
from kestrel.optimizers.adam import Adam, Adamax, AdamW, Nadam
from kestrel.optimizers.adafactor import Adafactor
from kestrel.optimizers.adaptive import Adadelta, Adagrad, RMSprop
from kestrel.optimizers.ftrl import Ftrl
from kestrel.optimizers.lamb import Lamb
from kestrel.optimizers.lion import Lion
from kestrel.optimizers.loss_scale_optimizer import LossScaleOptimizer
from kestrel.optimizers.multi import MultiOptimizer, OptimizerMap
from kestrel.optimizers.muon import Muon
from kestrel.optimizers.optimizer import Optimizer
from kestrel.optimizers.schedule_free import ScheduleFreeAdamW
from kestrel.optimizers.sgd import SGD
from kestrel.registry.object_registry import custom_object_scope
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

__all__ = ["SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb",
           "Lion", "LossScaleOptimizer", "MultiOptimizer", "Muon", "Nadam", "Optimizer",
           "OptimizerMap", "RMSprop", "ScheduleFreeAdamW", "deserialize", "get", "legacy",
           "schedules", "serialize"]

# Keras 2's lower-case class aliases (`keras.optimizers.rmsprop(lr=1e-4)`).
sgd, rmsprop, adagrad, adadelta, adam, adamax, nadam = (
    SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, Nadam)

_BUILTIN_NAMES = {cls.__name__.lower() for cls in (
    SGD, Adadelta, Adafactor, Adagrad, Adam, AdamW, Adamax, Ftrl, Lamb, Lion,
    LossScaleOptimizer, MultiOptimizer, Muon, Nadam, RMSprop, ScheduleFreeAdamW)}


def serialize(optimizer: Optimizer) -> dict:
    """The Keras 3 config dict of an optimizer."""
    return serialize_keras_object(optimizer, "optimizers")


def deserialize(config: dict, custom_objects: dict | None = None) -> Optimizer:
    """Rebuild an optimizer from its config dict; built-in class names are case-insensitive."""
    config = dict(config)
    if str(config.get("class_name", "")).lower() in _BUILTIN_NAMES:
        config["class_name"] = config["class_name"].lower()
    with custom_object_scope(custom_objects):  # also visible to a nested schedule
        return deserialize_keras_object(config, "optimizers", custom_objects)


def get(identifier) -> Optimizer | None:
    """Resolve a name, a config dict or an `Optimizer` instance to an optimizer instance."""
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = deserialize({"class_name": identifier, "config": {}})
    else:
        obj = identifier
    if isinstance(obj, Optimizer):
        return obj
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")
