"""Hostile or broken configs and files give a clear, bounded error; killed saves leave no litter."""
import json
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import kestrel as keras
from kestrel.layers import Dense, Input
from kestrel.registry import bounds, object_registry
from kestrel.saving import api, atomic, hdf5_legacy
from kestrel.saving.model_config import model_from_config, model_from_json, model_from_yaml

os.environ.setdefault("KERAS_BACKEND", "torch")


def mlp():
    return keras.Sequential([Input(shape=(4,)), Dense(3, name="hidden"), Dense(2, name="head")])


def mlp_config() -> dict:
    return json.loads(mlp().to_json())


def hidden_config(config: dict) -> dict:
    """The inner config of the layer named 'hidden' in a Sequential config."""
    return next(entry["config"] for entry in config["config"]["layers"]
                if entry["config"].get("name") == "hidden")


def shared_tower(levels: int = 10, width: int = 10):
    """A list whose repr would print width**levels zeros, built from `levels` shared lists."""
    value = [0] * width
    for _ in range(levels - 1):
        value = [value] * width
    return value


def keras_file_with_config(tmp_path, config: dict | str, name: str = "m.keras"):
    """A `.keras` file from a real saved model, with its config.json replaced."""
    source, target = tmp_path / "source.keras", tmp_path / name
    api.save_model(mlp(), source)
    text = config if isinstance(config, str) else json.dumps(config)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.namelist():
            new.writestr(item, text if item == "config.json" else old.read(item))
    return target


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ---------------------------------------------------------------- bounded reprs, YAML aliases
def test_short_repr_cuts_a_huge_shared_structure():
    text = bounds.short_repr(shared_tower())
    assert len(text) <= 200 and text.startswith("[[[")


@pytest.mark.parametrize("make", [lambda v: Dense(2, name=v), lambda v: Dense(2, bogus=v)])
def test_layer_errors_do_not_print_unbounded_values(make):
    with pytest.raises(ValueError) as info:
        make(shared_tower())
    assert len(str(info.value)) < 500


YAML_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}' if prev else 'x'] * 10)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi")
) + "class_name: Dense\nconfig: {units: 2, name: *i}\n"


def test_yaml_alias_bomb_is_refused():
    with pytest.raises(ValueError, match=r"model_from_yaml.*aliases expand to \d+ nodes"):
        model_from_yaml(YAML_BOMB)


def test_yaml_alias_cycle_and_deep_nesting_are_refused():
    with pytest.raises(ValueError, match="cycle"):
        model_from_yaml("class_name: Dense\nconfig: &a {units: 2, name: [*a]}\n")
    with pytest.raises(ValueError, match="nested too deeply"):
        model_from_yaml("[" * 300 + "]" * 300)  # stopped while composing


def test_yaml_with_small_aliases_still_loads():
    import yaml

    text = yaml.safe_dump(mlp_config()) + "extra: &shape [4]\nmore: *shape\n"
    model = model_from_yaml(text)
    assert [layer.name for layer in model.layers] == ["hidden", "head"]


# ---------------------------------------------------------------- unknown layer arguments
def test_unknown_layer_argument_in_json_is_refused_as_in_keras():
    import keras as real_keras

    config = mlp_config()
    hidden_config(config)["bogus_kwarg"] = 1
    with pytest.raises(ValueError, match=r"bogus_kwarg.*'hidden' \(Dense\)"):
        model_from_json(json.dumps(config))
    with pytest.raises(Exception, match="bogus_kwarg"):
        real_keras.models.model_from_json(json.dumps(config))


def test_unknown_layer_argument_in_keras_file_names_the_file(tmp_path):
    config = mlp_config()
    hidden_config(config)["bogus_kwarg"] = 1
    path = keras_file_with_config(tmp_path, config)
    with pytest.raises(ValueError, match=r"m\.keras.*bogus_kwarg.*'hidden' \(Dense\)"):
        api.load_model(path)


def test_keys_that_other_keras_versions_write_are_still_accepted():
    config = mlp_config()
    layer = hidden_config(config)
    layer.update(batch_input_shape=[None, 4], trainable=True, quantization_config=None,
                 lora_rank=None, dtype={"module": "keras", "class_name": "DTypePolicy",
                                        "config": {"name": "float32"}, "registered_name": None})
    entry = config["config"]["layers"][1]
    entry.update(module="keras.layers", registered_name=None, shared_object_id=7,
                 build_config={"input_shape": [None, 4]})
    model = model_from_json(json.dumps(config))
    assert model.get_layer("hidden").units == 3


# ---------------------------------------------------------------- nesting depth
DEEP = "[" * 10_000 + "]" * 10_000


def test_deeply_nested_json_is_a_value_error():
    config = json.dumps(mlp_config())
    with pytest.raises(ValueError, match="model_from_json.*nested too deeply"):
        model_from_json(config.replace('"hidden"', DEEP))
    with pytest.raises(ValueError, match="nested too deeply"):  # parses, but deeper than allowed
        model_from_json(config.replace('"hidden"', "[" * 300 + "]" * 300))


def test_deeply_nested_config_in_files_names_the_file(tmp_path):
    text = json.dumps(mlp_config()).replace('"hidden"', DEEP)
    path = keras_file_with_config(tmp_path, text)
    with pytest.raises(ValueError, match=r"m\.keras.*config\.json.*nested too deeply"):
        api.load_model(path)
    legacy = tmp_path / "m.h5"
    api.save_model(mlp(), legacy)
    with h5py.File(legacy, "r+") as file:
        file.attrs["model_config"] = text
    with pytest.raises(ValueError, match=r"m\.h5.*model_config.*nested too deeply"):
        api.load_model(legacy)


def test_recursion_while_rebuilding_is_a_value_error(monkeypatch):
    from kestrel.saving import model_config

    def recurse(*args):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(model_config, "deserialize_keras_object", recurse)
    with pytest.raises(ValueError, match="nested too deeply"):
        model_from_config(mlp_config())


# ---------------------------------------------------------------- oversized weights
def test_huge_units_names_the_layer_weight_and_shape(tmp_path):
    config = mlp_config()
    hidden_config(config)["units"] = 10**12
    with pytest.raises(ValueError, match=r"'hidden' \(Dense\).*'kernel'.*units.*"
                                         r"shape=\(4, 1000000000000\)"):
        model_from_json(json.dumps(config))
    with pytest.raises(ValueError, match=r"m\.keras.*'hidden'.*kernel"):
        api.load_model(keras_file_with_config(tmp_path, config))


def test_failed_allocation_names_the_layer_and_weight():
    def out_of_memory(shape, dtype=None):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    class Big(keras.layers.Layer):
        def build(self, input_shape):
            self.table = self.add_weight(name="table", shape=(1000, 1000),
                                         initializer=out_of_memory)

    with pytest.raises(RuntimeError, match=r"'big_layer' \(Big\).*'table'.*\(1000, 1000\)"):
        Big(name="big_layer").build((None, 2))


def test_negative_weight_shape_is_refused():
    layer = keras.layers.Layer(name="neg")
    with pytest.raises(ValueError, match=r"'neg' \(Layer\).*'w'.*shape=\(4, -3\)"):
        layer.add_weight(name="w", shape=(4, -3))


# ---------------------------------------------------------------- class_name type
@pytest.mark.parametrize("key", ["class_name", "registered_name"])
def test_non_string_class_name_is_a_type_error(key):
    config = mlp_config()
    config["config"]["layers"][1][key] = 123
    with pytest.raises(TypeError, match=f"'{key}' must be a string.*{key}=123"):
        model_from_json(json.dumps(config))


def test_registry_lookup_refuses_non_string_names():
    with pytest.raises(TypeError, match="must be strings.*of type list"):
        object_registry.lookup(shared_tower(), "layers")


# ---------------------------------------------------------------- legacy .h5 declared shapes
def test_legacy_h5_huge_declared_dataset_is_compared_before_reading(tmp_path):
    path = tmp_path / "w.h5"
    api.save_weights(mlp(), path)
    with h5py.File(path, "r+") as file:
        group = file["hidden"]
        name = [n for n in hdf5_legacy.read_names(group, "weight_names") if "kernel" in n][0]
        del group[name]
        group.create_dataset(name, shape=(10**6, 10**6), dtype="float32")  # never written
    with pytest.raises(ValueError, match=r"Shape mismatch.*\(1000000, 1000000\)"):
        api.load_weights(mlp(), path)


def test_legacy_h5_huge_optimizer_dataset_is_skipped_unread(tmp_path):
    model = mlp()
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((4, 4)), np.zeros((4, 2)), epochs=1, verbose=0)
    path = tmp_path / "m.h5"
    api.save_model(model, path)
    with h5py.File(path, "r+") as file:
        group = file["optimizer_weights"]
        name = list(group.keys())[0]
        while isinstance(group[name], h5py.Group):
            group, name = group[name], list(group[name].keys())[0]
        del group[name]
        group.create_dataset(name, shape=(10**6, 10**6), dtype="float32")
    with pytest.warns(UserWarning, match=r"\(1000000, 1000000\).*starts fresh"):
        loaded = api.load_model(path)
    assert loaded.get_layer("hidden").units == 3


# ---------------------------------------------------------------- stale temporaries
@pytest.mark.parametrize("name, save", [
    ("m.keras", lambda model, path: model.save(path)),
    ("w.weights.h5", lambda model, path: model.save_weights(path)),
    ("ckpt.keras", lambda model, path: model.fit(
        np.zeros((2, 4)), np.zeros((2, 2)), epochs=1, verbose=0,
        callbacks=[keras.callbacks.ModelCheckpoint(str(path))])),
])
def test_next_save_removes_stale_temporaries_of_its_target_only(tmp_path, name, save):
    gone = dead_pid()
    stale = tmp_path / f".{name}.{gone}.ab_c12xy.tmp"
    keep = [tmp_path / f".{name}.{os.getpid()}.abcdefgh.tmp",  # a save in progress (alive)
            tmp_path / f".{name}.abcdefgh.tmp",  # not the pattern (no pid)
            tmp_path / f".other{name}.{gone}.abcdefgh.tmp",  # another target
            tmp_path / f"{name}.{gone}.abcdefgh.tmp",  # no leading dot
            tmp_path / f".{name}.{gone}.abcdefgh.tmp.bak"]
    for path in [stale, *keep]:
        path.write_bytes(b"x" * 64)
    model = mlp()
    model.compile(optimizer="sgd", loss="mse")
    save(model, tmp_path / name)
    assert not stale.exists()
    assert all(path.exists() for path in keep)
    assert (tmp_path / name).exists()
    leftovers = sorted(p.name for p in tmp_path.iterdir()
                       if p.name.endswith(".tmp") and p not in keep)
    assert leftovers == []


def test_killed_writer_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    target = tmp_path / "m.weights.h5"
    code = ("import importlib.util, sys, time\n"  # atomic.py alone: no kestrel import needed
            "spec = importlib.util.spec_from_file_location('atomic', sys.argv[2])\n"
            "atomic = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(atomic)\n"
            "with atomic.atomic_write(sys.argv[1]) as temp:\n"
            "    open(temp, 'wb').write(b'partial')\n"
            "    print('ready', flush=True)\n"
            "    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(target), atomic.__file__],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"ready"
    finally:
        child.kill()
        child.wait()
    litter = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(litter) == 1 and str(child.pid) in litter[0].name
    api.save_weights(mlp(), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.weights.h5"]
