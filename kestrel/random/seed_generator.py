"""`SeedGenerator`: a seed state `[seed, counter]`, and the torch generators random ops draw from.

Random ops take `seed=` as an int (the same values on every call), a `SeedGenerator` (new values
on every call, reproducible from its seed) or None (torch's global RNG, which
`kestrel.utils.set_random_seed` seeds). A generator assigned to a layer attribute is a
submodule: its state travels in the layer's torch `state_dict` (Keras weight files, like Keras',
leave it out; it is not in `layer.weights`).
"""
from __future__ import annotations

import random as python_random

import torch
from torch import nn

from kestrel.layers import naming

_MASK = (1 << 64) - 1


def make_default_seed() -> int:
    """A seed from Python's `random` (so `set_random_seed` makes it reproducible)."""
    return python_random.randint(1, int(1e9))


class SeedGenerator(nn.Module):
    """A seed that advances on every random op it is passed to.

    Args:
        seed: initial int seed; None picks one from Python's `random`.
        name: name of the generator (its state is `<name>/seed_generator_state`).

    >>> gen = SeedGenerator(seed=42)
    >>> a, b = kestrel.random.normal((2,), seed=gen), kestrel.random.normal((2,), seed=gen)
    """

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs):
        super().__init__()
        if kwargs:
            raise ValueError(f"SeedGenerator: unrecognized keyword arguments: {sorted(kwargs)}")
        self.name = name or naming.unique_name("seed_generator")
        self._initial_seed = seed
        if seed is None:
            seed = make_default_seed()
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"Argument `seed` must be an integer. Received: seed={seed!r}")
        # int64 keeps any Python seed and the counter exact; it stays on the host (see _apply).
        self.register_buffer("state", torch.tensor([seed, 0], dtype=torch.int64))

    def next(self, ordered: bool = True) -> tuple[int, int]:
        """The current `(seed, counter)` pair; then advance the state."""
        seed, count = (int(v) for v in self.state.tolist())
        with torch.no_grad():
            if ordered:
                self.state[1] += 1
            else:
                self.state.copy_((self.state + 1) * 5387 % 933199)
        return seed, count

    def _apply(self, fn, recurse=True):
        """Keep the state on the host whatever `.to()`/`.cuda()`/`.half()` a model receives."""
        return self

    def get_config(self) -> dict:
        return {"seed": self._initial_seed, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "SeedGenerator":
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name}, seed={self._initial_seed}"


def _mix(seed: int, count: int) -> int:
    """A 64-bit seed from a `(seed, counter)` pair (splitmix64 finalizer)."""
    z = ((seed & _MASK) * 0x9E3779B97F4A7C15 + (count & _MASK) + 0x632BE59BD9B4E019) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


def draw_seed(seed) -> tuple[int, int] | None:
    """The `(seed, counter)` pair a random op uses; None means torch's global RNG."""
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed, 0
    if seed is None:
        return None
    raise ValueError("Argument `seed` must be either an integer or an instance of "
                     f"`SeedGenerator`. Received: seed of type {type(seed).__name__}")


def torch_generator(seed, device) -> torch.Generator | None:
    """A torch generator on `device` for `seed`; None (the global RNG) when `seed` is None."""
    pair = draw_seed(seed)
    if pair is None:
        return None
    return torch.Generator(device=device).manual_seed(_mix(*pair))
