"""The learning rate and step count as Keras code reads them: a float and an int that can also
be assigned and read like Keras' variables (`.numpy()`, `.value`, `np.asarray`)."""
from __future__ import annotations

import numpy as np
import torch


class LearningRateValue(float):
    """`optimizer.learning_rate`: the current rate as a float, with Keras Variable methods.

    `assign` (and Keras 2's `K.set_value`) sets the optimizer's rate.

    Example:
        optimizer.learning_rate.assign(1e-4)
    """

    name = "learning_rate"
    dtype = "float32"
    shape = ()
    trainable = False

    def __new__(cls, value: float, optimizer):
        instance = super().__new__(cls, value)
        instance._optimizer = optimizer
        return instance

    def assign(self, value) -> "LearningRateValue":
        self._optimizer.learning_rate = value
        return self._optimizer.learning_rate

    def numpy(self) -> np.float32:
        return np.float32(self)

    @property
    def value(self) -> torch.Tensor:
        return torch.tensor(float(self), dtype=torch.float32)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(np.float32(self), dtype=dtype)

    def __reduce__(self):  # copies and pickles are plain floats
        return float, (float(self),)


class IterationsValue(int):
    """`optimizer.iterations`: the number of steps applied, as an int with Keras Variable
    methods (Keras 3 holds it in an int32 variable named "iteration").

    Example:
        step = int(optimizer.iterations)      # or optimizer.iterations.numpy()
        optimizer.iterations.assign(0)
    """

    name = "iteration"
    dtype = "int32"
    shape = ()
    trainable = False

    def __new__(cls, value: int, optimizer):
        instance = super().__new__(cls, value)
        instance._optimizer = optimizer
        return instance

    def assign(self, value) -> "IterationsValue":
        self._optimizer.iterations = int(np.asarray(value))
        return self._optimizer.iterations

    def assign_add(self, value) -> "IterationsValue":
        return self.assign(int(self) + int(np.asarray(value)))

    def numpy(self) -> np.ndarray:
        return np.array(int(self), np.int32)

    @property
    def value(self) -> torch.Tensor:
        return torch.tensor(int(self), dtype=torch.int32)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(np.int32(self), dtype=dtype)

    def __reduce__(self):  # copies and pickles are plain ints
        return int, (int(self),)

