"""Sharded weights (`save_weights("m.weights.json", max_shard_size=GB)`) against real Keras 3:
the same files from the same model, each side loads the other's set with the same predictions,
and the same errors."""
import json
import os

import h5py
import numpy as np
import pytest

import kestrel
from kestrel.saving.api import load_training_state
from tests.ops_harness import keras

_BYTES = 1 / 1024**3  # max_shard_size is in GB


def _dense_stack(lib):
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(8, activation="relu"),
                           lib.layers.Dropout(0.1), lib.layers.Dense(3, use_bias=False)])


def _conv_bn(lib):
    return lib.Sequential([lib.Input((6, 6, 2)), lib.layers.Conv2D(4, 3),
                           lib.layers.BatchNormalization(),
                           lib.layers.GlobalAveragePooling2D(), lib.layers.Dense(2)])


BUILDERS = {"dense_stack": _dense_stack, "conv_bn": _conv_bn}


def _data(model):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    return x, rng.normal(size=(8, model.outputs[0].shape[-1])).astype("float32")


def _trained(lib, name):
    """A model of `lib` after one Adam step (so moving statistics and slots are not zero)."""
    model = BUILDERS[name](lib)
    model.compile(optimizer="adam", loss="mse")
    x, y = _data(model)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    return model, x


def _set(folder):
    return sorted(os.listdir(folder))


def _layout(folder):
    """{shard: [(path, shape or None for a group)]} of the shard files in `folder`."""
    layout = {}
    for name in _set(folder):
        if name.endswith(".h5"):
            with h5py.File(folder / name, "r") as file:
                items = []
                file.visititems(lambda path, item: items.append(
                    (path, getattr(item, "shape", None))))
                layout[name] = items
    return layout


@pytest.mark.parametrize("name", list(BUILDERS))
def test_kestrel_writes_the_files_keras_writes(tmp_path, name):
    ours, theirs = tmp_path / "kestrel", tmp_path / "keras"
    _trained(kestrel, name)[0].save_weights(ours / "m.weights.json", max_shard_size=300 * _BYTES)
    os.makedirs(theirs)
    _trained(keras(), name)[0].save_weights(theirs / "m.weights.json",
                                            max_shard_size=300 * _BYTES)
    assert _set(ours) == _set(theirs)
    assert len(_set(ours)) > 3  # the index and several shards
    assert _layout(ours) == _layout(theirs)
    assert (ours / "m.weights.json").read_text() == (theirs / "m.weights.json").read_text()


def _weightless(lib):
    return lib.Sequential([lib.Input((4,)), lib.layers.Flatten()])


def _bfloat16(lib):  # sized as 2 bytes a value, though Kestrel stores float32 data
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(8, dtype="bfloat16"),
                           lib.layers.Dense(3)])


@pytest.mark.parametrize("builder", [_weightless, _bfloat16])
def test_index_as_keras_for_unusual_models(tmp_path, builder):
    indexes = []
    for lib in (kestrel, keras()):
        builder(lib).save_weights(tmp_path / f"{lib.__name__}.weights.json",
                                  max_shard_size=100 * _BYTES)
        indexes.append((tmp_path / f"{lib.__name__}.weights.json").read_text())
    assert indexes[0] == indexes[1].replace("keras_", "kestrel_")


@pytest.mark.parametrize("name", list(BUILDERS))
def test_keras_loads_a_kestrel_set(tmp_path, name):
    model, x = _trained(kestrel, name)
    model.save_weights(tmp_path / "m.weights.json", max_shard_size=300 * _BYTES)
    loaded = BUILDERS[name](keras())
    loaded.load_weights(tmp_path / "m.weights.json")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_kestrel_loads_a_keras_set(tmp_path, name):
    model, x = _trained(keras(), name)
    model.save_weights(tmp_path / "m.weights.json", max_shard_size=300 * _BYTES)
    loaded = BUILDERS[name](kestrel)
    loaded.load_weights(tmp_path / "m.weights.json")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_training_state_comes_back_from_shards(tmp_path):
    model, _ = _trained(kestrel, "conv_bn")
    model.save_weights(tmp_path / "m.weights.json", max_shard_size=300 * _BYTES)
    loaded, _ = _trained(kestrel, "conv_bn")
    load_training_state(loaded, tmp_path / "m.weights.json")
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(restored), np.asarray(saved))


def test_a_weights_h5_name_warns_and_becomes_json(tmp_path):
    for lib, folder in ((kestrel, tmp_path / "kestrel"), (keras(), tmp_path / "keras")):
        os.makedirs(folder, exist_ok=True)
        with pytest.warns(UserWarning, match="requires `\\*.json` as the extension"):
            _dense_stack(lib).save_weights(folder / "m.weights.h5", max_shard_size=1)
        assert _set(folder) == ["m.weights.json", "m_00000.weights.h5"]


@pytest.mark.parametrize("filepath, max_shard_size, message", [
    ("m.h5", 1, "must end in `.weights.json` when `max_shard_size`"),
    ("m.keras", 1, "must end in `.weights.json` when `max_shard_size`"),
    ("m.weights.json", None, "weights.h5"),
    ("m.weights.json", 100 * _BYTES, "exceeds the maximum shard size 100.00 B"),
])
def test_errors_as_keras(tmp_path, filepath, max_shard_size, message):
    for lib in (kestrel, keras()):
        with pytest.raises(ValueError, match=message):
            _dense_stack(lib).save_weights(tmp_path / filepath, max_shard_size=max_shard_size)


def test_unbuilt_model_is_refused_as_keras(tmp_path):
    for lib in (kestrel, keras()):
        model = lib.Sequential([lib.layers.Dense(2)])
        with pytest.raises(ValueError, match="has not yet been built"):
            model.save_weights(tmp_path / "m.weights.json", max_shard_size=1)


def test_by_name_and_keras_format_sharding_are_refused_as_keras(tmp_path):
    for lib in (kestrel, keras()):
        model = _dense_stack(lib)
        model.save_weights(tmp_path / "m.weights.json", max_shard_size=1)
        with pytest.raises(ValueError, match="by_name"):
            model.load_weights(tmp_path / "m.weights.json", by_name=True)
        with pytest.raises(ValueError, match="max_shard_size"):
            model.save(tmp_path / "m.keras", max_shard_size=1)


def test_a_failed_save_leaves_the_previous_set(tmp_path):
    model = _dense_stack(kestrel)
    model.save_weights(tmp_path / "m.weights.json", max_shard_size=300 * _BYTES)
    before = {name: (tmp_path / name).read_bytes() for name in _set(tmp_path)}
    too_wide = kestrel.Sequential([kestrel.Input((4,)), kestrel.layers.Dense(8),
                                   kestrel.layers.Dense(8), kestrel.layers.Dense(40)])
    with pytest.raises(ValueError, match="layers/dense_2/vars/0 is 1.25 KB"):  # in shard 2
        too_wide.save_weights(tmp_path / "m.weights.json", max_shard_size=300 * _BYTES)
    assert {name: (tmp_path / name).read_bytes() for name in _set(tmp_path)} == before


def test_a_smaller_set_replaces_a_larger_one(tmp_path):
    model = _dense_stack(kestrel)
    model.save_weights(tmp_path / "m.weights.json", max_shard_size=150 * _BYTES)
    assert len(_set(tmp_path)) > 2
    model.save_weights(tmp_path / "m.weights.json", max_shard_size=1)
    assert _set(tmp_path) == ["m.weights.json", "m_00000.weights.h5"]
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save_weights(tmp_path / "m.weights.json", overwrite=False, max_shard_size=1)


def test_a_missing_shard_is_named(tmp_path):
    model = _dense_stack(kestrel)
    model.save_weights(tmp_path / "m.weights.json", max_shard_size=150 * _BYTES)
    weight_map = json.loads((tmp_path / "m.weights.json").read_text())["weight_map"]
    split = weight_map["/layers/dense/vars"]  # kernel and bias in two shards
    assert len(split) == 2
    os.remove(tmp_path / split[1])
    with pytest.raises(FileNotFoundError, match=split[1]):
        model.load_weights(tmp_path / "m.weights.json")
