"""Keras' small datasets, downloaded once into `~/.keras/datasets` (or `$KERAS_HOME`)."""
from kestrel.datasets import (boston_housing, california_housing, cifar10, cifar100,
                              fashion_mnist, imdb, mnist, reuters)

__all__ = ["boston_housing", "california_housing", "cifar10", "cifar100", "fashion_mnist",
           "imdb", "mnist", "reuters"]
