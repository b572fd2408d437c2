"""Bad paths and damaged files give clear errors; saves are atomic; safe mode reaches loading."""
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

import kestrel as keras
from kestrel.layers import Dense, Input, Layer
from kestrel.saving import api, hdf5_legacy, keras_weights
from kestrel.saving.atomic import atomic_write
from kestrel.registry.safe_mode import safe_mode_enabled


def mlp():
    return keras.Sequential([Input(shape=(4,)), Dense(3, name="hidden"), Dense(2, name="head")])


@pytest.mark.parametrize("call", [
    lambda p: api.save_model(mlp(), p), lambda p: api.save_weights(mlp(), p),
    lambda p: api.load_model(p), lambda p: api.load_weights(mlp(), p)])
def test_unknown_suffix_lists_the_accepted_ones(tmp_path, call):
    with pytest.raises(ValueError, match=r"'\.h5'.*Received: filepath=.*model\.pt"):
        call(tmp_path / "model.pt")


def test_save_weights_rejects_keras_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"'\.weights\.h5'"):
        api.save_weights(mlp(), tmp_path / "w.keras")


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "w.weights.h5", "w.h5"])
def test_overwrite_false_refuses_and_keeps_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"previous")
    save = api.save_weights if name.startswith("w") else api.save_model
    with pytest.raises(FileExistsError, match="overwrite=False"):
        save(mlp(), path, overwrite=False)
    assert path.read_bytes() == b"previous"
    save(mlp(), path)  # overwrite=True is the default
    assert path.read_bytes() != b"previous"


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.keras"):
        api.load_model(tmp_path / "nothere.keras")


@pytest.mark.parametrize("name", ["m.h5", "m.weights.h5"])
def test_not_hdf5_and_truncated_hdf5(tmp_path, name):
    path = tmp_path / name
    path.write_text("this is not HDF5")
    with pytest.raises(ValueError, match="not a valid HDF5 file"):
        api.load_weights(mlp(), path)
    good = tmp_path / "good.h5"
    api.save_model(mlp(), good)
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated"):
        api.load_model(path) if name == "m.h5" else api.load_weights(mlp(), path)


def test_weights_only_h5_is_not_a_model(tmp_path):
    api.save_weights(mlp(), tmp_path / "w.h5")
    with pytest.raises(ValueError, match="No model config.*load_weights"):
        api.load_model(tmp_path / "w.h5")


def test_hdf5_without_keras_layout(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(ValueError, match="holds no Keras weights"):
        api.load_weights(mlp(), tmp_path / "x.h5")


def test_keras_archive_problems(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    with pytest.raises(ValueError, match="not a valid .keras"):
        api.load_model(bad)
    with zipfile.ZipFile(tmp_path / "noconfig.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ValueError, match="no 'config.json' member"):
        api.load_model(tmp_path / "noconfig.keras")
    api.save_model(mlp(), tmp_path / "good.keras")
    data = (tmp_path / "good.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or damaged"):
        api.load_model(tmp_path / "cut.keras")


def test_unknown_class_names_it_and_custom_objects(tmp_path):
    api.save_model(mlp(), tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["class_name"] = "FancyDense"
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "fancy.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="FancyDense.*custom_objects"):
        api.load_model(tmp_path / "fancy.keras")
    loaded = api.load_model(tmp_path / "fancy.keras", custom_objects={"FancyDense": Dense})
    assert loaded.layers[0].name == "hidden"


def _fail_after_first_member(monkeypatch):
    """Make the zip writer store one member, then fail like a full disk."""
    original = zipfile.ZipFile.writestr

    def writestr(self, name, data, *args, **kwargs):
        original(self, name, data, *args, **kwargs)
        raise RuntimeError("disk full")
    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)


def _fail_after_first_dataset(monkeypatch, module, attr):
    """Make an HDF5 writer put some data in the file, then fail like a full disk."""
    def broken(file, *args, **kwargs):
        file.create_dataset("partial", data=np.zeros(10))
        raise RuntimeError("disk full")
    monkeypatch.setattr(module, attr, broken)


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "w.weights.h5", "w.h5"])
def test_failure_mid_write_keeps_previous_file(tmp_path, monkeypatch, name):
    path = tmp_path / name
    save = api.save_weights if name.startswith("w") else api.save_model
    save(mlp(), path)
    before = path.read_bytes()
    if name.endswith(".keras"):
        _fail_after_first_member(monkeypatch)
    elif name.endswith(".weights.h5"):
        _fail_after_first_dataset(monkeypatch, keras_weights, "write_weights")
    else:
        _fail_after_first_dataset(monkeypatch, hdf5_legacy, "save_weights_to_group")
    with pytest.raises(RuntimeError, match="disk full"):
        save(mlp(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [name]  # no temporary file left behind


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "f.bin"
    with atomic_write(path) as temp:
        assert os.path.dirname(temp) == str(tmp_path) and temp != str(path)
        with open(temp, "wb") as handle:
            handle.write(b"new")
    assert path.read_bytes() == b"new"


class SafeModeProbe(Layer):
    """Records whether safe mode was on while it was deserialized."""

    seen: list = []

    def call(self, x):
        return x

    @classmethod
    def from_config(cls, config):
        cls.seen.append(safe_mode_enabled())
        return super().from_config(config)


def test_load_model_applies_safe_mode(tmp_path):
    model = keras.Sequential([Input(shape=(4,)), SafeModeProbe(name="probe"), Dense(2)])
    api.save_model(model, tmp_path / "m.keras")
    custom = {"SafeModeProbe": SafeModeProbe}
    api.load_model(tmp_path / "m.keras", custom_objects=custom)
    api.load_model(tmp_path / "m.keras", custom_objects=custom, safe_mode=False)
    assert SafeModeProbe.seen == [True, False]


def test_load_weights_into_an_unbuilt_model(tmp_path):
    api.save_weights(mlp(), tmp_path / "w.weights.h5")
    unbuilt = keras.Sequential([Dense(3), Dense(2)], name="lazy")
    with pytest.raises(ValueError, match="'lazy'.*not built"):
        api.load_weights(unbuilt, tmp_path / "w.weights.h5")


def test_save_format_argument_warns_where_the_suffix_says_the_format(tmp_path):
    """As Keras 3 (tf.keras 2 code passes it): a warning, and the suffix decides."""
    with pytest.warns(DeprecationWarning, match="`save_format` argument is deprecated"):
        api.save_model(mlp(), tmp_path / "m.keras", save_format="tf")
    assert zipfile.is_zipfile(tmp_path / "m.keras")


@pytest.mark.parametrize("name", ["m.h5", "m.weights.h5"])
def test_damaged_hdf5_metadata_gives_value_errors_only(tmp_path, name):
    model = mlp()
    good = tmp_path / f"good_{name}"
    (api.save_weights if name.endswith(".weights.h5") else api.save_model)(model, good)
    data = good.read_bytes()
    garbage = bytes(range(7, 7 + 48))
    failures = 0
    for offset in range(512, len(data) - 64, 211):
        damaged = tmp_path / name
        damaged.write_bytes(data[:offset] + garbage + data[offset + 48:])
        try:
            if name.endswith(".weights.h5"):
                api.load_weights(model, damaged)
            else:
                api.load_model(damaged)
        except ValueError:
            failures += 1
    assert failures > 0  # some damage was detected, and always as a ValueError
