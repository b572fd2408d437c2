"""Activation layers: ReLU, LeakyReLU, ELU, PReLU (learned slope), Softmax (masked) and
Keras 2's ThresholdedReLU."""
from kestrel.layers.activations.elementwise import ELU, LeakyReLU, ReLU, ThresholdedReLU
from kestrel.layers.activations.prelu import PReLU
from kestrel.layers.activations.softmax import Softmax

__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax", "ThresholdedReLU"]
