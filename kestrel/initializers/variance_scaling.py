"""VarianceScaling and its named presets (Glorot, He, Lecun), with Keras' fan computation."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from kestrel.initializers.initializer import Shape
from kestrel.initializers.random_initializers import RandomInitializer, samplers
from kestrel.registry.object_registry import register_builtin

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")
# Standard deviation of a unit normal truncated at +-2: dividing by it restores the variance.
TRUNCATED_STDDEV = 0.87962566103423978


def compute_fans(shape: Shape, input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None) -> tuple[int, int]:
    """`(fan_in, fan_out)` of a Keras-layout weight shape, as Keras computes them.

    Args:
        shape: the weight shape, e.g. `(in, out)` or `(kh, kw, in, out)`.
        input_axes: axes whose product is `fan_in` (used only with `output_axes`).
        output_axes: axes whose product is `fan_out` (used only with `input_axes`).
    """
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


@register_builtin("initializers", "variance_scaling")
class VarianceScaling(RandomInitializer):
    """Draws with variance `scale / n`, where `n` is the fan chosen by `mode`.

    Normal distributions get `stddev = sqrt(scale / n)` (after truncation for
    `"truncated_normal"`); `"uniform"` draws from `[-limit, limit]`, `limit = sqrt(3 * scale / n)`.

    Args:
        scale: positive scaling factor.
        mode: `"fan_in"`, `"fan_out"` or `"fan_avg"`.
        distribution: `"truncated_normal"` (`"normal"` is accepted for it),
            `"untruncated_normal"` or `"uniform"`.
        seed: an int for deterministic values, or `None`.
        input_axes: optional axes that make up `fan_in` (with `output_axes`).
        output_axes: optional axes that make up `fan_out` (with `input_axes`).
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None,
                 input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None):
        self._check_positive("scale", scale)
        if mode not in MODES:
            raise ValueError(
                f"{type(self).__name__}: argument `mode` must be one of {MODES}. "
                f"Received: mode={mode!r}"
            )
        dist = str(distribution).lower()
        dist = "truncated_normal" if dist == "normal" else dist
        if dist not in DISTRIBUTIONS:
            raise ValueError(
                f"{type(self).__name__}: argument `distribution` must be one of "
                f"{DISTRIBUTIONS}. Received: distribution={distribution!r}"
            )
        self.scale = scale
        self.mode = mode
        self.distribution = dist
        self.input_axes = None if input_axes is None else list(input_axes)
        self.output_axes = None if output_axes is None else list(output_axes)
        super().__init__(seed)

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        variance = self.scale / max(1.0, fan[self.mode])
        dtype = self._dtype(dtype)
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(variance) / TRUNCATED_STDDEV
            return samplers().truncated_normal(shape, 0.0, stddev, dtype, self.seed)
        if self.distribution == "untruncated_normal":
            return samplers().normal(shape, 0.0, math.sqrt(variance), dtype, self.seed)
        limit = math.sqrt(3.0 * variance)
        return samplers().uniform(shape, -limit, limit, dtype, self.seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


def with_fan_axes(initializer, input_axes: Sequence[int], output_axes: Sequence[int]):
    """The initializer to draw an einsum kernel with: a VarianceScaling lacking fan axes is
    copied with these axes and its own seed (so the copy draws what the original would, at the
    fans Keras' EinsumDense uses); any other initializer is returned as it is."""
    if isinstance(initializer, VarianceScaling) and (initializer.input_axes is None
                                                     or initializer.output_axes is None):
        return type(initializer).from_config({
            **initializer.get_config(), "seed": initializer.seed,
            "input_axes": list(input_axes), "output_axes": list(output_axes)})
    return initializer


class _Preset(VarianceScaling):
    """A VarianceScaling whose scale, mode and distribution are fixed by the subclass."""

    _preset: tuple[float, str, str]

    def __init__(self, seed: int | None = None, input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None):
        scale, mode, distribution = self._preset
        super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self) -> dict:
        return {"seed": self._init_seed, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


@register_builtin("initializers", "glorot_uniform")
class GlorotUniform(_Preset):
    """Glorot (Xavier) uniform: `[-limit, limit]`, `limit = sqrt(6 / (fan_in + fan_out))`."""

    _preset = (1.0, "fan_avg", "uniform")


@register_builtin("initializers", "glorot_normal")
class GlorotNormal(_Preset):
    """Glorot (Xavier) normal: truncated, `stddev = sqrt(2 / (fan_in + fan_out))`."""

    _preset = (1.0, "fan_avg", "truncated_normal")


@register_builtin("initializers", "he_uniform")
class HeUniform(_Preset):
    """He uniform: `[-limit, limit]`, `limit = sqrt(6 / fan_in)`."""

    _preset = (2.0, "fan_in", "uniform")


@register_builtin("initializers", "he_normal")
class HeNormal(_Preset):
    """He normal: truncated, `stddev = sqrt(2 / fan_in)`."""

    _preset = (2.0, "fan_in", "truncated_normal")


@register_builtin("initializers", "lecun_uniform")
class LecunUniform(_Preset):
    """Lecun uniform: `[-limit, limit]`, `limit = sqrt(3 / fan_in)`."""

    _preset = (1.0, "fan_in", "uniform")


@register_builtin("initializers", "lecun_normal")
class LecunNormal(_Preset):
    """Lecun normal: truncated, `stddev = sqrt(1 / fan_in)`."""

    _preset = (1.0, "fan_in", "truncated_normal")
