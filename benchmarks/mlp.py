"""MLP 784-256-256-10 (relu, softmax, sparse categorical cross-entropy, accuracy).

Times a fit epoch at batch 32 and at batch 512, and evaluate / predict passes at batch 512.
Run: `python benchmarks/mlp.py [--threads N] [--quick]`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _harness import ClassifierLoop, Measurement, Workload, main


def make_data(n: int):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 784)).astype("float32"), rng.integers(0, 10, n)


def build(K, jit_compile: bool):
    model = K.Sequential([
        K.Input(shape=(784,)),
        K.layers.Dense(256, activation="relu"),
        K.layers.Dense(256, activation="relu"),
        K.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile)
    return model


class MLPLoop(ClassifierLoop):
    """nn.Sequential of Linear/ReLU returning logits; cross_entropy is softmax + NLL."""

    def __init__(self, x, y):
        super().__init__(torch.from_numpy(x), torch.from_numpy(y),
                         nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                                       nn.ReLU(), nn.Linear(256, 10)))

    @torch.no_grad()
    def evaluate(self, batch_size: int):
        self.model.eval()
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for start in range(0, len(self.x), batch_size):
            xb, yb = self.x[start:start + batch_size], self.y[start:start + batch_size]
            logits = self.model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
        return float(loss_sum) / len(self.x), int(correct) / len(self.x)

    @torch.no_grad()
    def predict(self, batch_size: int):
        self.model.eval()
        outputs = [torch.softmax(self.model(self.x[start:start + batch_size]), -1)
                   for start in range(0, len(self.x), batch_size)]
        return torch.cat(outputs).numpy()


WORKLOAD = Workload(
    name="mlp",
    measurements=[Measurement("fit b32", "fit", 32), Measurement("fit b512", "fit", 512),
                  Measurement("evaluate b512", "evaluate", 512),
                  Measurement("predict b512", "predict", 512)],
    samples=(8192, 2048),
    make_data=make_data,
    build=build,
    make_hand=MLPLoop,
)

if __name__ == "__main__":
    main(WORKLOAD)
