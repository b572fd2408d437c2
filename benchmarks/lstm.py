"""LSTM(64) over 50 timesteps of 32 features, then Dense(1); mean squared error, fit at batch 64.

Run: `python benchmarks/lstm.py [--threads N] [--quick]`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _harness import HandLoop, Measurement, Workload, main


def make_data(n: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 50, 32)).astype("float32")
    return x, rng.standard_normal((n, 1)).astype("float32")


def build(K, jit_compile: bool):
    model = K.Sequential([K.Input(shape=(50, 32)), K.layers.LSTM(64), K.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], jit_compile=jit_compile)
    return model


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 64, batch_first=True)
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


class LSTMLoop(HandLoop):
    """nn.LSTM (batch_first) and nn.Linear on the last hidden state."""

    def __init__(self, x, y):
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.model = Regressor()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def fit_epoch(self, batch_size: int):
        model, optimizer = self.model, self.optimizer
        model.train()
        perm = torch.randperm(len(self.x))
        x, y = self.x[perm], self.y[perm]
        loss_sum, abs_sum = torch.zeros(()), torch.zeros(())
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            out = model(xb)
            loss = F.mse_loss(out, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            abs_sum += (out.detach() - yb).abs().sum()
        return float(loss_sum), float(abs_sum) / len(x)


WORKLOAD = Workload(
    name="lstm",
    measurements=[Measurement("fit b64", "fit", 64)],
    samples=(1024, 256),
    make_data=make_data,
    build=build,
    make_hand=LSTMLoop,
)

if __name__ == "__main__":
    main(WORKLOAD)
