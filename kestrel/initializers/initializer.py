"""The Initializer base class and the deterministic (non-random) initializers."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.registry import serialization
from kestrel.registry.object_registry import register_builtin

Shape = tuple[int, ...] | list[int] | torch.Size


@register_builtin("initializers")
class Initializer:
    """Base class: `initializer(shape, dtype=None)` returns a new tensor of `shape` (the
    random ones draw on `kestrel.config.device()`, as Keras draws on its device).

    `shape` is the Keras-layout shape of the weight (Dense kernel `(in, out)`, Conv2D kernel
    `(kh, kw, in, out)`); `dtype` defaults to `kestrel.config.floatx()`.
    """

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} must implement __call__(shape, dtype=None)."
        )

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def clone(self):
        """A new initializer with the same configuration."""
        return type(self).from_config(self.get_config())


@register_builtin("initializers", "zeros", "zero")
class Zeros(Initializer):
    """Fills the tensor with 0."""

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        return torch.zeros(tuple(shape), dtype=config.to_torch_dtype(dtype))


@register_builtin("initializers", "ones", "one")
class Ones(Initializer):
    """Fills the tensor with 1."""

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        return torch.ones(tuple(shape), dtype=config.to_torch_dtype(dtype))


@register_builtin("initializers", "constant")
class Constant(Initializer):
    """Fills the tensor with `value`.

    Args:
        value: a Python scalar (or an array broadcastable to the shape).

    >>> Constant(3.0)((2,))
    tensor([3., 3.])
    """

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        dtype = config.to_torch_dtype(dtype)
        value = torch.as_tensor(self.value, dtype=dtype)
        return value.expand(tuple(shape)).clone()

    def get_config(self) -> dict:
        return {"value": serialization.serialize_keras_object(self.value)}  # arrays as Keras

    @classmethod
    def from_config(cls, config: dict):
        value = config.get("value", 0.0)
        if isinstance(value, dict):  # Keras' `__numpy__` / `__tensor__` form of an array
            value = serialization.deserialize_keras_object(value, "initializers")
        return cls(**{**config, "value": value})


@register_builtin("initializers", "identity", "IdentityInitializer")
class Identity(Initializer):
    """`gain` times the identity matrix; only for 2D shapes.

    Args:
        gain: multiplicative factor applied to the identity matrix.
    """

    def __init__(self, gain: float = 1.0):
        self.gain = gain

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(
                "Identity initializer can only be used for 2D matrices. "
                f"Received: shape={shape} of rank {len(shape)}"
            )
        return self.gain * torch.eye(*shape, dtype=config.to_torch_dtype(dtype))

    def get_config(self) -> dict:
        return {"gain": self.gain}
