"""CNN on 28x28x1: Conv2D(32,3)+MaxPool+Conv2D(64,3)+MaxPool+Flatten+Dense(10), fit at batch 64.

Kestrel and Keras take channels-last images; the torch loop takes the same data channels-first,
as torch code does. Run: `python benchmarks/cnn.py [--threads N] [--quick]`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from _harness import ClassifierLoop, Measurement, Workload, main


def make_data(n: int):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 28, 28, 1)).astype("float32"), rng.integers(0, 10, n)


def build(K, jit_compile: bool):
    model = K.Sequential([
        K.Input(shape=(28, 28, 1)),
        K.layers.Conv2D(32, 3, activation="relu"),
        K.layers.MaxPooling2D(2),
        K.layers.Conv2D(64, 3, activation="relu"),
        K.layers.MaxPooling2D(2),
        K.layers.Flatten(),
        K.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile)
    return model


class CNNLoop(ClassifierLoop):
    """The same network from torch.nn, on NCHW tensors, returning logits."""

    def __init__(self, x, y):
        super().__init__(
            torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y),
            nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(5 * 5 * 64, 10)))


WORKLOAD = Workload(
    name="cnn",
    measurements=[Measurement("fit b64", "fit", 64)],
    samples=(1024, 256),
    make_data=make_data,
    build=build,
    make_hand=CNNLoop,
)

if __name__ == "__main__":
    main(WORKLOAD)
