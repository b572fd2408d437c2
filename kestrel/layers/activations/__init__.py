"""Activation layers: ReLU, LeakyReLU, ELU, PReLU (learned slope) and Softmax (masked)."""
from kestrel.layers.activations.elementwise import ELU, LeakyReLU, ReLU
from kestrel.layers.activations.prelu import PReLU
from kestrel.layers.activations.softmax import Softmax

__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"]
