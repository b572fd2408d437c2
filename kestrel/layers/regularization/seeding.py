"""Seeding and checks for the random layers: argument checks, seeded generators, dropout.

The regularization layers draw as Keras does, from a `SeedGenerator` (`attach_seed_generator`);
other seeded layers from their own `torch.Generator`, unseeded ones from torch's global RNG.
"""
from __future__ import annotations

import torch


def check_rate(layer, value, arg: str = "rate") -> None:
    """Raise a ValueError naming `layer` unless `value` is a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': {arg} must be a float in [0, 1). "
            f"Received: {arg}={value!r}")


def check_seed(layer, seed) -> None:
    """Raise a ValueError naming `layer` unless `seed` is an int or None."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': seed must be an integer or None. "
            f"Received: seed={seed!r}")


def attach_seed_generator(layer, seed) -> None:
    """Give `layer` Keras' `seed_generator` (a `SeedGenerator(seed)`; unseeded, it starts from
    Python's `random`), which the Keras-style random layers pass to `kestrel.random` ops, so a
    seed gives Keras' numbers. It is kept out of the torch module tree (no state_dict entry)."""
    from kestrel.random.seed_generator import SeedGenerator

    layer.__dict__["seed_generator"] = SeedGenerator(seed)


def generator_for(layer, device: torch.device) -> torch.Generator | None:
    """`layer`'s generator on `device`, seeded once with `layer.seed`; None when unseeded.

    Unseeded layers draw from torch's global RNG (`kestrel.utils.set_random_seed`).
    """
    if layer.seed is None:
        return None
    generator = layer.__dict__.get("_generator")
    if generator is None or generator.device != device:
        generator = torch.Generator(device=device).manual_seed(layer.seed)
        layer.__dict__["_generator"] = generator
    return generator


def dropout(x: torch.Tensor, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout of `x` (train-time, `rate` < 1), from `generator` when given."""
    if generator is None:
        return torch.nn.functional.dropout(x, rate, True)
    keep = 1.0 - rate
    mask = torch.empty_like(x).bernoulli_(keep, generator=generator)
    return x * mask.div_(keep)
