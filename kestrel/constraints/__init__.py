"""Weight constraints and their lookup by name (`get`, `serialize`, `deserialize`)."""
from __future__ import annotations

from kestrel.constraints.constraints import Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm
from kestrel.registry.serialization import category_functions

# Keras' lower-case spellings, usable as `kestrel.constraints.max_norm(3)`.
max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm
maxnorm, nonneg, unitnorm = MaxNorm, NonNeg, UnitNorm  # Keras 2's legacy spellings
serialize, deserialize, get = category_functions("constraints", "constraint")


__all__ = [
    "Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "deserialize", "get",
    "max_norm", "min_max_norm", "non_neg", "serialize", "unit_norm",
]
