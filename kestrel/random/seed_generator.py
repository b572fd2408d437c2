"""`SeedGenerator`: a seed state `[seed, counter]`, and the torch generators random ops draw from.

Random ops take `seed=` as an int (the same values on every call), a `SeedGenerator` (new values
on every call, reproducible from its seed) or None (Keras' global `SeedGenerator`, created from
Python's `random`, so `kestrel.utils.set_random_seed` makes it reproducible). As in Keras' torch
backend, an op draws from a `torch.Generator` seeded with `(seed + counter) mod 2**32`, so the
numbers equal Keras'. A generator assigned to a layer attribute is a submodule: its state
travels in the layer's torch `state_dict` (Keras weight files, like Keras', leave it out; it is
not in `layer.weights`).
"""
from __future__ import annotations

import random as python_random

import torch
from torch import nn

from kestrel.layers import naming
from kestrel.variables import assignments_discarded

_MASK = 0xFFFFFFFF  # seeds are uint32 values held in int32, as in Keras' torch backend
_GLOBAL: list = []  # the global SeedGenerator of unseeded ops, once created


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
        # int32, as Keras' torch backend (the bits of a uint32); it stays on the host (_apply)
        self.register_buffer("state", torch.tensor([_as_int32(seed), 0], dtype=torch.int32))

    def next(self, ordered: bool = True) -> tuple[int, int]:
        """The current `(seed, counter)` pair; then advance the state: the counter by one, or
        (`ordered=False`, the global generator) both entries by Keras' int32 scramble. A
        symbolic call's placeholder run leaves the state as it is (Keras' run is stateless)."""
        seed, count = (int(v) for v in self.state.tolist())
        if assignments_discarded():
            return seed, count
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


def _as_int32(seed: int) -> int:
    """`seed`'s low 32 bits read as an int32."""
    return ((seed & _MASK) ^ 0x80000000) - 0x80000000


def global_seed_generator() -> SeedGenerator:
    """The generator of unseeded random ops, created on first use."""
    if not _GLOBAL:
        _GLOBAL.append(SeedGenerator())
    return _GLOBAL[0]


def reset_global_seed_generator() -> None:
    """Forget the global generator (`set_random_seed`, `clear_session`); the next unseeded op
    creates a new one from Python's `random`."""
    _GLOBAL.clear()


def draw_seed(seed) -> tuple[int, int]:
    """The `(seed, counter)` pair a random op uses."""
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed, 0
    if seed is None:
        if assignments_discarded():  # Keras' symbolic run draws no seed: no global generator yet
            return 0, 0
        return global_seed_generator().next(ordered=False)
    raise ValueError("Argument `seed` must be either an integer or an instance of "
                     f"`SeedGenerator`. Received: seed of type {type(seed).__name__}")


def torch_seed(seed) -> int:
    """The torch seed an op with `seed=` uses: `(seed + counter) mod 2**32`, as Keras."""
    first, second = draw_seed(seed)
    return (first + second) & _MASK


def torch_generator(seed, device) -> torch.Generator:
    """A torch generator on `device` for `seed` (an int, a `SeedGenerator` or None)."""
    return torch.Generator(device=device).manual_seed(torch_seed(seed))
