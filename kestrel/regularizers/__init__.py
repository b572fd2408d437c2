"""Weight regularizers and their lookup by name (`get`, `serialize`, `deserialize`)."""
from __future__ import annotations

from kestrel.regularizers.regularizers import (
    L1,
    L1L2,
    L2,
    OrthogonalRegularizer,
    Regularizer,
)
from kestrel.registry.serialization import category_functions

# Keras' lower-case spellings, usable as `kestrel.regularizers.l2(0.001)`.
l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer
serialize, deserialize, get = category_functions("regularizers", "regularizer")


__all__ = [
    "L1", "L1L2", "L2", "OrthogonalRegularizer", "Regularizer", "deserialize", "get", "l1",
    "l1_l2", "l2", "orthogonal_regularizer", "serialize",
]
