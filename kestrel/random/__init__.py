"""`kestrel.random`: Keras 3's random ops on torch tensors, seeded as Keras seeds them.

    gen = kestrel.random.SeedGenerator(1337)
    kestrel.random.normal((2, 3), seed=gen)      # new values on each call, reproducible
    kestrel.random.uniform((2,), seed=42)        # the same values on each call
    kestrel.random.dropout(x, 0.5)               # torch's global RNG (set_random_seed)
"""
import sys

from kestrel.random.arrays import dropout, shuffle
from kestrel.random.distributions import (beta, binomial, categorical, gamma, normal, randint,
                                          truncated_normal, uniform)
from kestrel.random.seed_generator import SeedGenerator

__all__ = ["SeedGenerator", "beta", "binomial", "categorical", "dropout", "gamma", "normal",
           "randint", "shuffle", "truncated_normal", "uniform"]


def __getattr__(name):
    if name == "random":  # keras-core's module `keras_core.random.random` (`random.random.uniform`)
        return sys.modules[__name__]
    raise AttributeError(f"module 'kestrel.random' has no attribute {name!r}")
