"""A functional model with two inputs and two outputs (classification + regression).

Inputs `a` (32 features) and `b` (16 features) each pass a Dense(64, relu), are concatenated
and mixed by a Dense(64, relu); output `cls` is Dense(5, softmax) with sparse categorical
cross-entropy and accuracy, output `reg` is Dense(1) with mean squared error (loss weight 0.5).
Times a fit epoch at batch 32 and an evaluate pass at batch 256.
Run: `python benchmarks/multi_output.py [--threads N] [--quick]`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _harness import HandLoop, Measurement, Workload, main


def make_data(n: int):
    rng = np.random.default_rng(0)
    x = {"a": rng.standard_normal((n, 32)).astype("float32"),
         "b": rng.standard_normal((n, 16)).astype("float32")}
    y = {"cls": rng.integers(0, 5, n), "reg": rng.standard_normal((n, 1)).astype("float32")}
    return x, y


def build(K, jit_compile: bool):
    a = K.Input(shape=(32,), name="a")
    b = K.Input(shape=(16,), name="b")
    merged = K.layers.Concatenate()([K.layers.Dense(64, activation="relu")(a),
                                     K.layers.Dense(64, activation="relu")(b)])
    hidden = K.layers.Dense(64, activation="relu")(merged)
    outputs = [K.layers.Dense(5, activation="softmax", name="cls")(hidden),
               K.layers.Dense(1, name="reg")(hidden)]
    model = K.Model(inputs=[a, b], outputs=outputs)
    model.compile(optimizer="adam",
                  loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]},
                  jit_compile=jit_compile)
    return model


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(32, 64), nn.Linear(16, 64)
        self.hidden = nn.Linear(128, 64)
        self.cls, self.reg = nn.Linear(64, 5), nn.Linear(64, 1)

    def forward(self, a, b):
        h = torch.cat([F.relu(self.a(a)), F.relu(self.b(b))], dim=1)
        h = F.relu(self.hidden(h))
        return self.cls(h), self.reg(h)


class MultiLoop(HandLoop):
    """Two inputs, two heads; loss = cross_entropy + 0.5 * mse."""

    def __init__(self, x, y):
        self.a, self.b = torch.from_numpy(x["a"]), torch.from_numpy(x["b"])
        self.cls, self.reg = torch.from_numpy(y["cls"]), torch.from_numpy(y["reg"])
        self.model = TwoHeads()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def fit_epoch(self, batch_size: int):
        model, optimizer = self.model, self.optimizer
        model.train()
        perm = torch.randperm(len(self.a))
        a, b, cls, reg = self.a[perm], self.b[perm], self.cls[perm], self.reg[perm]
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for start in range(0, len(a), batch_size):
            end = start + batch_size
            optimizer.zero_grad(set_to_none=True)
            logits, value = model(a[start:end], b[start:end])
            loss = F.cross_entropy(logits, cls[start:end]) + 0.5 * F.mse_loss(value, reg[start:end])
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == cls[start:end]).sum()
        return float(loss_sum), int(correct) / len(a)

    @torch.no_grad()
    def evaluate(self, batch_size: int):
        self.model.eval()
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for start in range(0, len(self.a), batch_size):
            end = start + batch_size
            logits, value = self.model(self.a[start:end], self.b[start:end])
            loss_sum += F.cross_entropy(logits, self.cls[start:end], reduction="sum")
            loss_sum += 0.5 * F.mse_loss(value, self.reg[start:end], reduction="sum")
            correct += (logits.argmax(1) == self.cls[start:end]).sum()
        return float(loss_sum) / len(self.a), int(correct) / len(self.a)


WORKLOAD = Workload(
    name="multi_output",
    measurements=[Measurement("fit b32", "fit", 32), Measurement("evaluate b256", "evaluate", 256)],
    samples=(4096, 1024),
    make_data=make_data,
    build=build,
    make_hand=MultiLoop,
)

if __name__ == "__main__":
    main(WORKLOAD)
