"""ModelParallel and FullyShardedDataParallel on 2 and 4 processes (gloo) against one
process; the 4-process run (a 2x2 batch x model mesh) is marked slow."""
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist

import kestrel as keras
from tests.spawn_ranks import run_ranks

BATCH, EPOCHS = 8, 2


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 4)).astype("float32")


def _model(seed: int):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(6,))
    hidden = keras.layers.Dense(16, activation="tanh", name="dense_in")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="dense_out")(hidden))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def _fit(model):
    x, y = _data()
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return history.history["loss"]


def _layout_map(world: int):
    mesh = keras.distribution.DeviceMesh((world // 2, 2), ["batch", "model"])
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map["dense_in/kernel"] = (None, "model")
    layout_map["dense_in/bias"] = ("model",)
    layout_map["dense_out/kernel"] = ("model", None)
    return layout_map


def _worker(rank: int, port: int, out_dir: str, world: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    keras.distribution.initialize(timeout_s=30)
    try:
        for name, make in (("mp", lambda: keras.distribution.ModelParallel(
                layout_map=_layout_map(world), batch_dim_name="batch")),
                           ("fsdp", keras.distribution.FullyShardedDataParallel)):
            keras.distribution.set_distribution(make())
            model = _model(seed=rank + 1)  # rank 0's initial weights must win
            losses = _fit(model)
            numel = keras.distribution.local_numel(model)
            sharded = type(model.layers[1].kernel).__name__
            predicted = model.predict(_data()[0], batch_size=BATCH, verbose=0)
            with keras.distribution.gathered(model):
                weights = model.get_weights()
                if rank == 0 and name == "mp":
                    model.save(os.path.join(out_dir, f"{name}.keras"))
                    model.save_weights(os.path.join(out_dir, f"{name}.weights.h5"))
            if name == "fsdp":  # saving and loading gather by themselves, in every process
                model.save(os.path.join(out_dir, f"{name}.keras"))
                model.save_weights(os.path.join(out_dir, f"{name}.weights.h5"))
                model.load_weights(os.path.join(out_dir, f"{name}.weights.h5"))
                assert type(model.layers[1].kernel).__name__ == sharded
            keras.distribution.set_distribution(None)
            np.savez(os.path.join(out_dir, f"{name}{rank}.npz"), *weights, losses=losses,
                     numel=numel, sharded=sharded, predicted=predicted)
    finally:
        keras.distribution.set_distribution(None)
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("model_parallel")
    run_ranks(2, _worker, out, 2)
    return out


@pytest.fixture(scope="module")
def four_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("model_parallel4")
    run_ranks(4, _worker, out, 4)
    return out


@pytest.fixture(scope="module")
def reference():
    model = _model(seed=1)
    losses = _fit(model)
    return model, losses


@pytest.mark.parametrize("name", ["mp", "fsdp"])
def test_two_processes_train_like_one(two_ranks, reference, name):
    model, losses = reference
    for rank in range(2):
        got = np.load(two_ranks / f"{name}{rank}.npz")
        assert str(got["sharded"]) == "DTensor"
        np.testing.assert_allclose(got["losses"], losses, rtol=1e-5, atol=1e-6)
        for index, expected in enumerate(model.get_weights()):
            np.testing.assert_allclose(got[f"arr_{index}"], expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got["predicted"], model.predict(_data()[0], verbose=0),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mp", "fsdp"])
def test_four_processes_train_like_one(four_ranks, reference, name):
    """mp: 2 replicas x 2 model shards; fsdp: every weight in 4 shards."""
    model, losses = reference
    total = model.count_params()
    sharded, shards = {"mp": (6 * 16 + 16 + 16 * 4, 2), "fsdp": (total, 4)}[name]
    held = 0
    for rank in range(4):
        got = np.load(four_ranks / f"{name}{rank}.npz")
        np.testing.assert_allclose(got["losses"], losses, rtol=1e-5, atol=1e-6)
        for index, expected in enumerate(model.get_weights()):
            np.testing.assert_allclose(got[f"arr_{index}"], expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got["predicted"], model.predict(_data()[0], verbose=0),
                                   rtol=1e-5, atol=1e-5)
        held += int(got["numel"])
    # every shard of a sharded weight lives on one process per model replica
    assert held == 4 * (total - sharded) + (4 // shards) * sharded


@pytest.mark.parametrize("name", ["mp", "fsdp"])
def test_each_process_holds_half_of_the_sharded_weights(two_ranks, reference, name):
    total = reference[0].count_params()  # 6*16 + 16 + 16*4 + 4 = 180
    sharded = {"mp": 6 * 16 + 16 + 16 * 4, "fsdp": total}[name]
    for rank in range(2):
        assert int(np.load(two_ranks / f"{name}{rank}.npz")["numel"]) == total - sharded // 2


@pytest.mark.parametrize("name", ["mp", "fsdp"])
def test_saved_files_load_in_one_process_and_in_keras(two_ranks, reference, name):
    model, _ = reference
    x = _data()[0]
    expected = model.predict(x, verbose=0)
    loaded = keras.saving.load_model(two_ranks / f"{name}.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    fresh = _model(seed=5)
    fresh.load_weights(two_ranks / f"{name}.weights.h5")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    os.environ["KERAS_BACKEND"] = "torch"
    import keras as real

    theirs = real.saving.load_model(two_ranks / f"{name}.keras")
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), expected, rtol=1e-5,
                               atol=1e-5)


def test_layout_map_and_mesh_follow_keras():
    d = keras.distribution
    mesh = d.DeviceMesh((1,), ["model"])
    layout_map = d.LayoutMap(mesh)
    layout_map["dense.*kernel"] = (None, "model")
    layout_map[".*bias"] = d.TensorLayout(("model",))
    assert layout_map["dense_3/kernel"].axes == (None, "model")
    assert layout_map["dense_3/kernel"].device_mesh is mesh
    assert layout_map["conv2d/kernel"] is None
    layout_map["dense_1/bias"] = (None,)  # an exact key wins over the patterns
    assert layout_map["dense_1/bias"].axes == (None,)
    layout_map["dense_2.*"] = ("model",)
    with pytest.raises(ValueError, match="multiple"):
        layout_map["dense_2/bias"]
    with pytest.raises(ValueError, match="already exists"):
        layout_map["dense.*kernel"] = (None, None)
    with pytest.raises(ValueError, match="axis names"):
        d.TensorLayout(("data", None), mesh)
    with pytest.raises(ValueError, match="devices"):
        d.DeviceMesh((2, 2), ["a", "b"])
    with pytest.raises(ValueError, match="layout_map"):
        d.ModelParallel(layout_map={"x": 1})
    assert d.ModelParallel(layout_map=layout_map).batch_dim_name == "model"
    x = torch.ones(2, 3)
    assert d.distribute_tensor(x, layout_map["dense/kernel"]) is x  # one process
