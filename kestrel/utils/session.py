"""Global state helpers: `clear_session` and `set_random_seed`."""
from __future__ import annotations

import random

import numpy as np
import torch

from kestrel.layers import naming


def clear_session() -> None:
    """Reset automatic layer names (`dense`, `dense_1`, ... start again)."""
    naming.reset_names()


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for reproducible runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
