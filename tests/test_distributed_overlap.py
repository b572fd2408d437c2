"""Gradient all-reduce overlapped with backward: 2 gloo processes equal one process to 1e-5."""
import inspect
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist

import kestrel as keras
from kestrel.distribution import grad_buckets
from kestrel.distribution.grad_buckets import GradientBuckets, _group
from tests.spawn_ranks import run_two_ranks

N, BATCH, EPOCHS = 33, 16, 2  # the last batch holds one sample: rank 1 gets none


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 6)).astype("float32"), rng.integers(0, 3, size=(N,))


class GuideStep(keras.Model):
    """Keras' torch guide: backward, then `optimizer.apply` on the `.grad`s (no `step()`)."""

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        loss = self.compute_loss(y=y, y_pred=self(x, training=True))
        loss.backward()
        with torch.no_grad():
            self.optimizer.apply([v.value.grad for v in self.trainable_weights],
                                 self.trainable_weights)
        return {"loss": loss.detach()}


def _fit(seed: int, custom: bool = False):
    x, y = _data()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(6,))
    hidden = keras.layers.Dense(8, activation="tanh")(
        keras.layers.Dense(16, activation="relu")(inputs))
    model = (GuideStep if custom else keras.Model)(inputs, keras.layers.Dense(3)(hidden))
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return model.get_weights(), model.evaluate(x, y, verbose=0)


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    keras.distribution.initialize(timeout_s=20)
    try:
        _worker_checks(rank, out_dir)
    finally:
        dist.destroy_process_group()


def _worker_checks(rank: int, out_dir: str) -> None:
    overlapped = []
    launch = GradientBuckets._launch

    def spying_launch(self, everything):  # records launches made while backward still runs
        before = self._next
        launch(self, everything)
        overlapped.extend([self._in_backward] * (self._next - before))

    GradientBuckets._launch = spying_launch
    grad_buckets.BUCKET_BYTES, bucket_bytes = 200, grad_buckets.BUCKET_BYTES  # several buckets
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    try:
        weights, losses = _fit(seed=rank + 1)  # rank 0's initial weights must win
        custom, _ = _fit(seed=rank + 1, custom=True)
    finally:
        keras.distribution.set_distribution(None)
        grad_buckets.BUCKET_BYTES = bucket_bytes
    np.savez(os.path.join(out_dir, f"custom{rank}.npz"), *custom)
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), *weights, losses=np.array(losses),
             overlapped=np.array([any(overlapped), all(overlapped)]))
    # An unused parameter and a rank that runs no backward at all: the same all-reduces.
    torch.manual_seed(rank)
    used, unused = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    params = list(used.parameters()) + list(unused.parameters())
    buckets = GradientBuckets(params, lambda: 1.0 if rank == 0 else 0.0, bucket_bytes=8)
    if rank == 0:
        used(torch.ones(4, 3)).sum().backward()
    buckets.sync()
    buckets.remove()
    np.savez(os.path.join(out_dir, f"direct{rank}.npz"), *[p.grad.numpy() for p in params])


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("overlap")
    run_two_ranks(_worker, out)
    return out


def test_two_ranks_train_like_one_process(two_ranks):
    weights, losses = _fit(seed=1)
    ranks = [np.load(two_ranks / f"rank{r}.npz") for r in range(2)]
    for r in ranks:
        for i, w in enumerate(weights):
            np.testing.assert_allclose(r[f"arr_{i}"], w, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(r[f"arr_{i}"], ranks[0][f"arr_{i}"])
        np.testing.assert_allclose(r["losses"], losses, rtol=1e-5)


def test_a_custom_train_step_applying_grads_is_averaged_too(two_ranks):
    weights, _ = _fit(seed=1, custom=True)
    for r in range(2):
        ranked = np.load(two_ranks / f"custom{r}.npz")
        for i, w in enumerate(weights):
            np.testing.assert_allclose(ranked[f"arr_{i}"], w, rtol=1e-5, atol=1e-5)


def test_buckets_are_sent_while_backward_runs(two_ranks):
    for r in range(2):
        # a rank with no sample in the last batch launches its buckets after it, at the step
        launched_early, always_early = np.load(two_ranks / f"rank{r}.npz")["overlapped"]
        assert launched_early
        assert always_early == (r == 0)


def test_unused_parameters_and_a_rank_without_backward(two_ranks):
    grads = [np.load(two_ranks / f"direct{r}.npz") for r in range(2)]
    assert np.abs(grads[0]["arr_0"]).sum() > 0
    for key in grads[0].files:
        np.testing.assert_array_equal(grads[0][key], grads[1][key])
    np.testing.assert_array_equal(grads[0]["arr_2"], 0)  # unused: zeros, not None


def test_buckets_group_in_reverse_order_by_size_and_dtype():
    a, b, c = torch.zeros(10), torch.zeros(10), torch.zeros(10, dtype=torch.float64)
    assert [[id(p) for p in g] for g in _group([a, b, c], 40)] == [[id(a)], [id(b)], [id(c)]]
    assert [len(g) for g in _group([a, b, c], 1000)] == [2, 1]


def test_api_names_and_signatures_mirror_keras():
    os.environ["KERAS_BACKEND"] = "torch"
    import keras as real

    public = {n for n in dir(real.distribution) if not n.startswith("_")}
    assert public <= set(dir(keras.distribution))
    for name in ("TensorLayout", "distribute_tensor", "get_device_count", "DataParallel",
                 "list_devices"):
        ours = inspect.signature(getattr(keras.distribution, name)).parameters
        theirs = inspect.signature(getattr(real.distribution, name)).parameters
        assert list(ours)[:len(theirs)] == list(theirs), name


def test_layouts_and_device_count_in_one_process():
    d = keras.distribution
    assert d.get_device_count() == len(d.list_devices()) >= 1
    layout = d.TensorLayout(("batch", None))
    assert layout.axes == ("batch", None) and layout.device_mesh is None
    x = torch.arange(6.0).reshape(3, 2)
    assert d.distribute_tensor(x, layout) is x
    assert d.distribute_tensor(keras.Input((2,)), layout) is not None
    with pytest.raises(ValueError, match="axes"):
        d.distribute_tensor(x, d.TensorLayout(("batch", None, None)))
    with pytest.raises(ValueError, match="axis names"):
        d.TensorLayout(("model", None), d.DeviceMesh((1,), ["batch"]))
    with pytest.raises(TypeError, match="layout"):
        d.distribute_tensor(x, "batch")
