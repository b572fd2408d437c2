"""Kestrel: the Keras model API, natively on PyTorch."""
__version__ = "0.1.0"
