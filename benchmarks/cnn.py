"""CNN on 28x28x1: Conv2D(32,3)+MaxPool+Conv2D(64,3)+MaxPool+Flatten+Dense(10), fit at batch 64.

Kestrel and Keras take channels-last images; the torch loop takes the same data channels-first,
as torch code does. Run: `python benchmarks/cnn.py [--threads N] [--quick]`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _harness import HandLoop, Measurement, Workload, main


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


class CNNLoop(HandLoop):
    """The same network from torch.nn, on NCHW tensors, returning logits."""

    def __init__(self, x, y):
        self.x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        self.y = torch.from_numpy(y)
        self.model = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(5 * 5 * 64, 10))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def fit_epoch(self, batch_size: int):
        model, optimizer = self.model, self.optimizer
        model.train()
        perm = torch.randperm(len(self.x))
        x, y = self.x[perm], self.y[perm]
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == yb).sum()
        return float(loss_sum), int(correct) / len(x)


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
