"""Merging layers (Add, Concatenate, Dot, ...) and their functional forms (add, concatenate, ...)."""
from kestrel.layers.merging.concatenate import Concatenate, concatenate
from kestrel.layers.merging.dot import Dot, dot
from kestrel.layers.merging.elementwise import (
    Add,
    Average,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    maximum,
    minimum,
    multiply,
    subtract,
)

__all__ = [
    "Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply",
    "Subtract", "add", "average", "concatenate", "dot", "maximum", "minimum", "multiply",
    "subtract",
]
