"""Initializers that draw random values: normal, uniform, truncated normal, orthogonal.

They draw as Keras does, with `kestrel.random` ops seeded by an int: the `seed` given, or for
an unseeded initializer one taken from Python's `random` when it is created (its config keeps
`seed=None`). Every call of one initializer gives the same values, and
`kestrel.utils.set_random_seed` makes a seeded script's initial weights equal Keras'.
"""
from __future__ import annotations

import math

import torch

from kestrel import config
from kestrel.initializers.initializer import Initializer, Shape
from kestrel.registry.object_registry import register_builtin


def samplers():
    """`kestrel.random`'s samplers, imported on first use (`kestrel.random` imports the ops,
    which import layers, which import initializers)."""
    from kestrel.random import distributions

    return distributions


class RandomInitializer(Initializer):
    """Base class of the random initializers; holds and validates `seed`.

    Args:
        seed: an int for deterministic values, or `None` (an int is then taken from Python's
            `random` now; `get_config()` still gives `seed=None`).
    """

    def __init__(self, seed: int | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                f"{type(self).__name__}: `seed` must be an integer or None. "
                f"Received: seed={seed!r}"
            )
        from kestrel.random.seed_generator import make_default_seed  # see samplers()

        self._init_seed = seed
        self.seed = make_default_seed() if seed is None else seed

    def _check_positive(self, name: str, value: float) -> None:
        if not value > 0:
            raise ValueError(
                f"{type(self).__name__}: argument `{name}` must be positive. "
                f"Received: {name}={value}"
            )

    def _dtype(self, dtype) -> torch.dtype:
        """The floating-point torch dtype to draw in (floatx by default)."""
        dtype = config.to_torch_dtype(dtype)
        if not dtype.is_floating_point:
            raise ValueError(
                f"{type(self).__name__} only creates floating-point tensors. "
                f"Received: dtype={config.dtype_name(dtype)}"
            )
        return dtype

    def get_config(self) -> dict:
        return {"seed": self._init_seed}


@register_builtin("initializers", "random_normal", "normal")
class RandomNormal(RandomInitializer):
    """Draws from a normal distribution.

    Args:
        mean: mean of the values.
        stddev: standard deviation of the values (positive).
        seed: an int for deterministic values, or `None`.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self._check_positive("stddev", stddev)
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed)

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        return samplers().normal(shape, self.mean, self.stddev, self._dtype(dtype), self.seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


@register_builtin("initializers", "truncated_normal")
class TruncatedNormal(RandomInitializer):
    """Draws from a normal distribution, redrawing values beyond 2 stddev from the mean.

    Args:
        mean: mean of the untruncated distribution.
        stddev: standard deviation of the untruncated distribution (positive).
        seed: an int for deterministic values, or `None`.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self._check_positive("stddev", stddev)
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed)

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        return samplers().truncated_normal(shape, self.mean, self.stddev, self._dtype(dtype),
                                           self.seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


@register_builtin("initializers", "random_uniform", "uniform")
class RandomUniform(RandomInitializer):
    """Draws from a uniform distribution on `[minval, maxval)`.

    Args:
        minval: lower bound (inclusive).
        maxval: upper bound (exclusive), at least `minval`.
        seed: an int for deterministic values, or `None`.
    """

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        if minval > maxval:
            raise ValueError(
                f"{type(self).__name__}: `minval` must not exceed `maxval`. "
                f"Received: minval={minval}, maxval={maxval}"
            )
        self.minval = minval
        self.maxval = maxval
        super().__init__(seed)

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        return samplers().uniform(shape, self.minval, self.maxval, self._dtype(dtype),
                                  self.seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


@register_builtin("initializers", "orthogonal", "OrthogonalInitializer")
class Orthogonal(RandomInitializer):
    """A random orthogonal matrix (from the QR decomposition of a normal matrix) times `gain`.

    Shapes of rank > 2 are treated as a `(prod(shape[:-1]), shape[-1])` matrix.

    Args:
        gain: multiplicative factor applied to the orthogonal matrix.
        seed: an int for deterministic values, or `None`.
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        self.gain = gain
        super().__init__(seed)

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(
                "Orthogonal initializer needs a shape of rank 2 or more. "
                f"Received: shape={shape} of rank {len(shape)}"
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        dtype = self._dtype(dtype)
        matrix = samplers().normal((max(rows, cols), min(rows, cols)), dtype=dtype,
                                   seed=self.seed)
        # torch has no half-precision QR (Keras fails there): factor in float32
        q, r = torch.linalg.qr(matrix if dtype.itemsize > 2 else matrix.float())
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).to(dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "gain": self.gain}

