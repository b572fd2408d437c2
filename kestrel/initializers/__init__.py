"""Weight initializers and their lookup by name (`get`, `serialize`, `deserialize`)."""
from __future__ import annotations

import inspect

import numpy as np
import torch

from kestrel import config
from kestrel.initializers.initializer import Constant, Identity, Initializer, Ones, Zeros
from kestrel.initializers.random_initializers import (
    Orthogonal,
    RandomInitializer,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
)
from kestrel.initializers.stft import STFT, STFTInitializer, stft
from kestrel.initializers.variance_scaling import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    VarianceScaling,
    compute_fans,
)
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

# Keras' lower-case spellings, usable as `kestrel.initializers.glorot_uniform()`.
zeros, ones, constant, identity = Zeros, Ones, Constant, Identity
zero, one, normal, uniform = Zeros, Ones, RandomNormal, RandomUniform  # Keras 2's spellings
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, orthogonal = VarianceScaling, Orthogonal
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_uniform, he_normal, lecun_uniform, lecun_normal = HeUniform, HeNormal, LecunUniform, LecunNormal
IdentityInitializer, OrthogonalInitializer = Identity, Orthogonal


def serialize(initializer) -> dict:
    """Keras 3's dict form: `{"module", "class_name", "config", "registered_name"}`."""
    return serialize_keras_object(initializer, "initializers")


def deserialize(config, custom_objects: dict | None = None):
    """Rebuild an initializer from a name or a serialized dict; classes are instantiated."""
    obj = deserialize_keras_object(config, "initializers", custom_objects)
    return obj() if inspect.isclass(obj) else obj


def get(identifier):
    """Resolve `identifier` to an initializer.

    Args:
        identifier: `None`, a name (`"glorot_uniform"`), a serialized dict, an initializer
            class or instance, any callable `(shape, dtype=None)`, or an array/tensor whose
            values are copied (the requested shape must match it).
    """
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if isinstance(identifier, (np.ndarray, np.generic, torch.Tensor)):
        return _from_values(identifier)
    if inspect.isclass(identifier):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(
        "Could not interpret initializer identifier: expected None, a name, a config dict, "
        f"a callable or an array. Received: identifier={identifier!r}"
    )


def _from_values(values):
    values = torch.as_tensor(values)

    def initialize(shape, dtype=None) -> torch.Tensor:
        if tuple(shape) != tuple(values.shape):
            raise ValueError(
                f"An array used as initializer has shape {tuple(values.shape)}; the weight "
                f"must have the same shape. Received: shape={tuple(shape)}"
            )
        return values.detach().to("cpu", config.to_torch_dtype(dtype), copy=True)

    return initialize


__all__ = [
    "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity",
    "IdentityInitializer", "Initializer", "LecunNormal", "LecunUniform", "Ones", "Orthogonal",
    "OrthogonalInitializer", "RandomInitializer", "RandomNormal", "RandomUniform", "STFT",
    "STFTInitializer", "stft",
    "TruncatedNormal", "VarianceScaling", "Zeros", "compute_fans", "constant", "deserialize",
    "get", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "identity",
    "lecun_normal", "lecun_uniform", "ones", "orthogonal", "random_normal", "random_uniform",
    "serialize", "truncated_normal", "variance_scaling", "zeros",
]
