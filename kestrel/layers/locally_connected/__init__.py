"""Locally-connected layers (Keras 2's `keras.layers.local`): unshared convolutions."""
from kestrel.layers.locally_connected.locally_connected import (
    LocallyConnected1D,
    LocallyConnected2D,
)

__all__ = ["LocallyConnected1D", "LocallyConnected2D"]
