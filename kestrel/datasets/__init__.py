"""Keras' small datasets, downloaded once into `~/.keras/datasets` (or `$KERAS_HOME`)."""
from kestrel.datasets import boston_housing, cifar10, fashion_mnist, imdb, mnist

__all__ = ["boston_housing", "cifar10", "fashion_mnist", "imdb", "mnist"]
