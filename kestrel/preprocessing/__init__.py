"""Keras 2's `keras.preprocessing`: `sequence`, `text` and `image` utilities."""
from kestrel.preprocessing import image, sequence, text

__all__ = ["image", "sequence", "text"]
