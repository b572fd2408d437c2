"""Data-parallel fit under torchrun (2 CPU processes, gloo) equals single-process training."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import kestrel as keras
from kestrel.distribution.data_parallel import piece

SCRIPT = Path(__file__).parent / "scripts" / "distributed_fit.py"


def _run(args, out_dir, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KESTREL_DIST_TIMEOUT": "20"}
    return subprocess.run(args + [str(SCRIPT), str(out_dir)] + (["--crash"] if "crash" in
                          str(out_dir) else []), env=env, capture_output=True, text=True,
                          timeout=timeout)


def _torchrun():
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            "--master_port", str(29500 + os.getpid() % 1000)]


def test_two_ranks_equal_single_process(tmp_path):
    single = _run([sys.executable], tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    multi = _run(_torchrun(), tmp_path)
    assert multi.returncode == 0, multi.stderr[-3000:]
    ref = np.load(tmp_path / "single.npz")
    r0, r1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    for key in ref.files:
        np.testing.assert_array_equal(r0[key], r1[key])  # identical on both ranks
        np.testing.assert_allclose(r0[key], ref[key], rtol=1e-5, atol=1e-5)
    results = [json.loads((tmp_path / f"{t}.json").read_text()) for t in ("single", "rank0", "rank1")]
    for other in results[1:]:
        for name, values in results[0]["history"].items():
            np.testing.assert_allclose(other["history"][name], values, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(other["evaluate"], results[0]["evaluate"], rtol=1e-5)
        np.testing.assert_allclose(other["predict"], results[0]["predict"], rtol=1e-5, atol=1e-6)


def test_a_dying_rank_makes_the_other_fail_quickly(tmp_path):
    out = tmp_path / "crash"
    out.mkdir()
    start = time.time()
    result = _run(_torchrun(), out, timeout=120)
    assert result.returncode != 0
    assert time.time() - start < 60


def test_piece_splits_evenly_and_exactly():
    sizes = [piece(10, r, 3) for r in range(3)]
    assert sizes == [(0, 4), (4, 7), (7, 10)]
    assert piece(1, 1, 2) == (1, 1)


def test_single_process_api():
    keras.distribution.initialize()  # no torchrun variables: a no-op
    assert keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    assert isinstance(keras.distribution.distribution(), keras.distribution.DataParallel)
    keras.distribution.set_distribution(None)
    with pytest.raises(ValueError, match="layout_map"):
        keras.distribution.ModelParallel()
    with pytest.raises(ValueError):
        keras.distribution.set_distribution("everything")
