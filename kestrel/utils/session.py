"""Global state helpers: `clear_session` and `set_random_seed`."""
from __future__ import annotations

import gc
import random

import numpy as np
import torch

from kestrel.layers import naming
from kestrel.trainers import cpu_memory
from kestrel.random.seed_generator import reset_global_seed_generator


def clear_session(free_memory: bool = True) -> None:
    """Reset automatic layer names (`dense`, `dense_1`, ... start again) and the global
    `SeedGenerator` of unseeded random ops; `free_memory` also runs Python's garbage
    collection (as Keras, so the memory of dropped models is freed now) and hands the CPU
    memory Kestrel's loops keep back to the system."""
    naming.reset_names()
    reset_global_seed_generator()
    if free_memory:
        gc.collect()
        cpu_memory.give_back()


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for reproducible runs; unseeded
    `kestrel.random` ops start a new global `SeedGenerator` from Python's seeded `random`."""
    reset_global_seed_generator()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
