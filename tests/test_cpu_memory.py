"""Freed CPU memory kept while Kestrel's loops run: counted in page faults, not time."""
import platform
import resource

import numpy as np
import pytest
import torch

import kestrel
from kestrel import layers
from kestrel.trainers import cpu_memory

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="memory reuse is a glibc feature")

BLOCK = 64 << 20  # bytes: above glibc's largest default mmap threshold (32 MiB)


def _faults_of_fresh_block() -> int:
    """Page faults of allocating and writing one BLOCK-sized tensor."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(BLOCK // 4)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del block
    return faults


def _model():
    model = kestrel.Sequential([layers.Input((4,)), layers.Dense(2)])
    model.compile("sgd", "mse")
    return model


class Probe(kestrel.callbacks.Callback):
    """Faults of a fresh block allocated twice inside fit (the second reuses the first)."""

    def on_train_end(self, logs=None):
        _faults_of_fresh_block()
        self.faults = _faults_of_fresh_block()


@pytest.fixture
def reuse_enabled():
    kestrel.config.enable_cpu_memory_reuse()
    yield
    kestrel.config.enable_cpu_memory_reuse()


def test_fit_reuses_freed_blocks_and_gives_them_back(reuse_enabled):
    pages = BLOCK // resource.getpagesize()
    probe = Probe()
    _model().fit(np.zeros((8, 4)), np.zeros((8, 2)), verbose=0, callbacks=[probe])
    assert probe.faults < pages // 10  # the freed block was reused
    assert _faults_of_fresh_block() > pages // 2  # handed back when fit returned


def test_disabled_reuse_leaves_glibc_handling(reuse_enabled):
    _model().fit(np.zeros((8, 4)), np.zeros((8, 2)), verbose=0)
    kestrel.config.disable_cpu_memory_reuse()
    assert not kestrel.config.is_cpu_memory_reuse_enabled()
    probe = Probe()
    _model().fit(np.zeros((8, 4)), np.zeros((8, 2)), verbose=0, callbacks=[probe])
    assert probe.faults > BLOCK // resource.getpagesize() // 2


def test_only_the_outermost_loop_gives_memory_back(reuse_enabled, monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_memory, "give_back", lambda: calls.append(1))
    with cpu_memory.loop(torch.device("cpu")):
        with cpu_memory.loop(torch.device("cpu")):
            pass
        assert calls == []
    assert calls == [1]
