"""The learning rate and step count as Keras code reads them: a float and an int that can also
be assigned and read like Keras' variables (`.numpy()`, `.value`, `np.asarray`)."""
from __future__ import annotations

import numpy as np
import torch


class _OptimizerScalar:
    """Keras Variable reads of a Python number an optimizer holds; subclasses pick the number
    type (`_number`: float or int), its `dtype` and how `assign` sets it on the optimizer."""

    _number: type

    shape = ()
    trainable = False

    def __new__(cls, value, optimizer):
        instance = super().__new__(cls, value)
        instance._optimizer = optimizer
        return instance

    def numpy(self) -> np.ndarray:
        """A 0-d array, as Keras' `Variable.numpy()`."""
        return np.array(self._plain(), self.dtype)

    @property
    def value(self) -> torch.Tensor:
        return torch.tensor(self._plain(), dtype=getattr(torch, self.dtype))

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.numpy(), dtype=dtype)

    def __reduce__(self):  # copies and pickles are plain numbers
        return type(self._plain()), (self._plain(),)

    def _plain(self):
        return self._number(self)


class LearningRateValue(_OptimizerScalar, float):
    """`optimizer.learning_rate`: the current rate as a float, with Keras Variable methods.

    `assign` (and Keras 2's `K.set_value`) sets the optimizer's rate.

    Example:
        optimizer.learning_rate.assign(1e-4)
    """

    name = "learning_rate"
    dtype = "float32"
    _number = float

    def assign(self, value) -> "LearningRateValue":
        self._optimizer.learning_rate = value
        return self._optimizer.learning_rate


class IterationsValue(_OptimizerScalar, int):
    """`optimizer.iterations`: the number of steps applied, as an int with Keras Variable
    methods (Keras 3 holds it in an int32 variable named "iteration").

    Example:
        step = int(optimizer.iterations)      # or optimizer.iterations.numpy()
        optimizer.iterations.assign(0)
    """

    name = "iteration"
    dtype = "int32"
    _number = int

    def assign(self, value) -> "IterationsValue":
        self._optimizer.iterations = int(np.asarray(value))
        return self._optimizer.iterations

    def assign_add(self, value) -> "IterationsValue":
        return self.assign(int(self) + int(np.asarray(value)))
