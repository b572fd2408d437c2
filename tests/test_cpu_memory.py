"""Freed CPU memory kept while Kestrel's loops run: counted in page faults, not time.

Each check runs in a fresh process: what glibc can reuse depends on the heap's history (an
exactly block-sized hole cannot serve an aligned request of that size), so a process that
already ran other tests would measure its own past instead.
"""
import platform
import subprocess
import sys

import pytest
import torch

import kestrel
from kestrel.trainers import cpu_memory

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="memory reuse is a glibc feature")

# A conv step whose activations (64 x 64 x 64 x 32 floats: 32 MiB) pass glibc's largest
# default mmap threshold; prints the page faults of each training step after the third.
SCRIPT = """
import resource, sys
import numpy as np
import kestrel
from kestrel import layers

if sys.argv[1] == "off":
    kestrel.config.disable_cpu_memory_reuse()

class Faults(kestrel.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def on_train_batch_end(self, batch, logs=None):
        if batch >= 3:
            print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.start)

model = kestrel.Sequential([layers.Input((64, 64, 3)), layers.Conv2D(32, 3, padding="same"),
                            layers.ReLU(), layers.GlobalAveragePooling2D(), layers.Dense(2)])
model.compile("sgd", "mse")
x = np.random.default_rng(0).random((512, 64, 64, 3), dtype=np.float32)
model.fit(x, np.zeros((512, 2)), batch_size=64, verbose=0, callbacks=[Faults()])
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
kept = rss()
kestrel.utils.clear_session()
print(kept - rss())
"""


def _faults_per_step(mode: str) -> tuple[list[int], int]:
    """Page faults of each measured step, and the bytes `clear_session()` handed back."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                          text=True, check=True, timeout=300)
    *faults, handed_back = (int(line) for line in done.stdout.split())
    return faults, handed_back


def test_training_steps_reuse_freed_memory_until_clear_session():
    pages_of_one_activation = (64 * 64 * 64 * 32 * 4) // 4096
    (kept, handed_back), (released, _) = _faults_per_step("on"), _faults_per_step("off")
    assert len(kept) == len(released) == 5
    assert handed_back > 2 * pages_of_one_activation * 4096
    assert sorted(kept)[2] < pages_of_one_activation // 10  # the median step: none
    # now and then a buffer lands in fresh memory while the heap settles; without reuse
    # every step faults all four of its activation-sized buffers in
    assert sum(kept) < sum(released) // 8
    assert min(released) > pages_of_one_activation  # each step faults its buffers in again


def test_disabling_lowers_the_thresholds_again():
    kestrel.config.enable_cpu_memory_reuse()
    cpu_memory.keep_freed(torch.device("cpu"))
    assert cpu_memory._state["raised"]
    kestrel.config.disable_cpu_memory_reuse()
    try:
        assert not kestrel.config.is_cpu_memory_reuse_enabled()
        assert not cpu_memory._state["raised"]
        cpu_memory.keep_freed(torch.device("cpu"))
        assert not cpu_memory._state["raised"]  # stays off until enabled
    finally:
        kestrel.config.enable_cpu_memory_reuse()
