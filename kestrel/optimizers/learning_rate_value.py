"""The learning rate as Keras code reads it: a float that can also be assigned, like Keras' variable."""
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
