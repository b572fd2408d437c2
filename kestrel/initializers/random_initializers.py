"""Initializers that draw random values: normal, uniform, truncated normal, orthogonal.

An integer `seed` makes an initializer deterministic: every call draws from a fresh
`torch.Generator` seeded with it. With `seed=None`, values come from torch's global
generator, so `torch.manual_seed` (or `kestrel.utils.set_random_seed`) controls them.
"""
from __future__ import annotations

import math

import torch

from kestrel import config
from kestrel.initializers.initializer import Initializer, Shape
from kestrel.registry.object_registry import register_builtin

# Truncated normals are cut at this many standard deviations from the mean, as in Keras.
TRUNCATION = 2.0


class RandomInitializer(Initializer):
    """Base class of the random initializers; holds and validates `seed`.

    Args:
        seed: an int for deterministic values, or `None`.
    """

    def __init__(self, seed: int | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                f"{type(self).__name__}: `seed` must be an integer or None. "
                f"Received: seed={seed!r}"
            )
        self.seed = seed

    def _check_positive(self, name: str, value: float) -> None:
        if not value > 0:
            raise ValueError(
                f"{type(self).__name__}: argument `{name}` must be positive. "
                f"Received: {name}={value}"
            )

    def _empty(self, shape: Shape, dtype) -> tuple[torch.Tensor, torch.Generator | None,
                                                   torch.dtype]:
        """A float tensor to fill in place, the generator to draw with, and the final dtype.

        Values are drawn in float32 (float64 if asked) and cast afterwards, so that
        half-precision dtypes get the same numbers as float32.
        """
        dtype = config.to_torch_dtype(dtype)
        if not dtype.is_floating_point:
            raise ValueError(
                f"{type(self).__name__} only creates floating-point tensors. "
                f"Received: dtype={config.dtype_name(dtype)}"
            )
        work = torch.float64 if dtype == torch.float64 else torch.float32
        generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)
        return torch.empty(tuple(shape), dtype=work), generator, dtype

    def get_config(self) -> dict:
        return {"seed": self.seed}


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
        tensor, generator, dtype = self._empty(shape, dtype)
        return tensor.normal_(self.mean, self.stddev, generator=generator).to(dtype)

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
        tensor, generator, dtype = self._empty(shape, dtype)
        return truncated_normal_(tensor, self.mean, self.stddev, generator).to(dtype)

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
        tensor, generator, dtype = self._empty(shape, dtype)
        return tensor.uniform_(self.minval, self.maxval, generator=generator).to(dtype)

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
        tensor, generator, dtype = self._empty((max(rows, cols), min(rows, cols)), dtype)
        q, r = torch.linalg.qr(tensor.normal_(generator=generator))
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).to(dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "gain": self.gain}


def truncated_normal_(tensor: torch.Tensor, mean: float, stddev: float,
                      generator: torch.Generator | None) -> torch.Tensor:
    """Fill `tensor` in place from a normal distribution truncated at 2 stddev.

    Draws standard normals, then redraws the ones outside (-2, 2) in a few vectorised
    passes (each keeps ~95% of what it draws), and scales by `stddev` and shifts by `mean`.
    """
    flat = tensor.view(-1)
    flat.normal_(generator=generator)
    redraw = (flat.abs() >= TRUNCATION).nonzero().squeeze(1)
    while redraw.numel():
        values = torch.empty(redraw.numel(), dtype=flat.dtype).normal_(generator=generator)
        keep = values.abs() < TRUNCATION
        flat[redraw[keep]] = values[keep]
        redraw = redraw[~keep]
    return tensor.mul_(stddev).add_(mean)
