"""The Keras 3 `.keras` archive: `metadata.json`, `config.json`, `model.weights.h5` (zipped,
or as the files of a directory with `zipped=False`).

Members are read into memory (never extracted to disk); sizes are checked first so that a
damaged or hostile archive cannot make the reader allocate unbounded memory.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import tempfile
import types
import zipfile

import h5py

from kestrel.registry import object_registry
from kestrel.registry.serialization import serialize_keras_object
from kestrel.saving import keras_weights
from kestrel.saving.atomic import atomic_write
from kestrel.registry.bounds import load_json
from kestrel.saving.hdf5_legacy import KERAS_VERSION, json_default

METADATA = "metadata.json"
CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
ASSETS = "assets"
_MAX_EXPANSION = 1000  # deflate cannot exceed ~1032:1; a larger ratio means a zip bomb
_BOMB_FLOOR = 1 << 28  # members under 256 MiB are never treated as bombs


def compile_entry(model) -> dict:
    """The `compile_config` Keras writes beside a model's config; {} when not compiled."""
    from kestrel.saving.training_config import compile_config

    if not (getattr(model, "compiled", False) and model.optimizer is not None):
        return {}
    if _overrides(model, "get_compile_config"):  # a model's own get_compile_config writes it
        return serialize_keras_object(model.get_compile_config())
    return compile_config(model)


def compile_as_saved(model, compile_config: dict, custom_objects=None) -> None:
    """Compile `model` from a saved `compile_config`, by its own `compile_from_config` if any."""
    from kestrel.saving.training_config import restore_compile

    if _overrides(model, "compile_from_config"):  # as Keras: the model compiles itself
        with object_registry.custom_object_scope(custom_objects):
            model.compile_from_config(compile_config)
    else:
        restore_compile(model, compile_config, custom_objects)


def save_model(model, filepath, include_optimizer: bool = True) -> None:
    """Write `model` as a `.keras` zip at `filepath` (members stored uncompressed, as Keras)."""
    with zipfile.ZipFile(filepath, "w") as archive:
        _write_members(archive, model, include_optimizer)


def save_model_dir(model, dirpath, include_optimizer: bool = True) -> None:
    """Write `model` unzipped (Keras 3's `zipped=False`): the members as files of `dirpath`."""
    os.makedirs(dirpath, exist_ok=True)
    _write_members(DirectoryArchive(dirpath), model, include_optimizer)


def is_model_dir(path) -> bool:
    """Whether `path` is an unzipped `.keras` model: a directory holding `config.json`."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG))


class DirectoryArchive:
    """An unzipped `.keras` model: its members as files under `dirpath`, read and written
    through the `zipfile.ZipFile` methods this module uses."""

    def __init__(self, dirpath):
        self.dirpath = os.fspath(dirpath)

    def _path(self, name: str) -> str:
        return os.path.join(self.dirpath, *name.split("/"))

    def _create(self, name: str) -> str:
        path = self._path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def writestr(self, name: str, data) -> None:
        """Each member replaces its file atomically (a reader sees the old or the new one)."""
        with atomic_write(self._create(name)) as temp, open(temp, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)

    def write(self, source, name: str) -> None:
        with atomic_write(self._create(name)) as temp:
            shutil.copyfile(source, temp)

    def namelist(self) -> list[str]:
        return sorted(os.path.relpath(os.path.join(root, f), self.dirpath).replace(os.sep, "/")
                      for root, _, files in os.walk(self.dirpath) for f in files)

    def getinfo(self, name: str):
        path = self._path(name)
        if not os.path.isfile(path):
            raise ValueError(f"'{self.dirpath}' is not a complete unzipped Keras model: it has "
                             f"no '{name}' file. Files found: {self.namelist()}")
        size = os.path.getsize(path)
        return types.SimpleNamespace(file_size=size, compress_size=size)

    def read(self, name: str) -> bytes:
        with open(self._path(name), "rb") as file:
            return file.read()


def _write_members(archive, model, include_optimizer: bool) -> None:
    """Write the members of a `.keras` model into `archive` (a zip or a directory)."""
    from kestrel.saving.model_config import model_to_dict

    config = model_to_dict(model)
    config["compile_config"] = compile_entry(model) if include_optimizer else {}
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        keras_weights.write_weights(file, model, include_optimizer=include_optimizer)
    archive.writestr(METADATA, json.dumps(metadata))
    archive.writestr(CONFIG, json.dumps(config, default=json_default))
    archive.writestr(WEIGHTS, buffer.getvalue())
    _write_assets(archive, model)


def _asset_layers(model, method: str):
    """(archive folder, layer) for every layer that keeps files beside its weights
    (vocabularies), at the layer's `.weights.h5` path, as Keras lays out `assets/`."""
    from kestrel.saving.weight_paths import keras3_groups

    for path, layer in keras3_groups(model):
        if callable(getattr(layer, method, None)):
            yield f"{ASSETS}/{path}".rstrip("/"), layer


def _write_assets(archive, model) -> None:
    for folder, layer in _asset_layers(model, "save_assets"):
        with tempfile.TemporaryDirectory() as tmp:
            layer.save_assets(tmp)
            for name in sorted(os.listdir(tmp)):
                archive.write(os.path.join(tmp, name), f"{folder}/{name}")


def _read_assets(archive, model, filepath) -> None:
    names = archive.namelist()
    for folder, layer in _asset_layers(model, "load_assets"):
        members = [n for n in names if n.startswith(folder + "/") and not n.endswith("/")
                   and "/" not in n[len(folder) + 1:]]
        if not members:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for member in members:
                with open(os.path.join(tmp, member.rsplit("/", 1)[1]), "wb") as out:
                    out.write(_read_member(archive, member, filepath))
            layer.load_assets(tmp)


def _read_member(archive, name: str, filepath) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(
            f"'{filepath}' is a zip archive but not a Keras model file: it has no '{name}' "
            f"member. Members found: {archive.namelist()}") from None
    if info.file_size > _BOMB_FLOOR and info.file_size > _MAX_EXPANSION * max(
            info.compress_size, 1):
        raise ValueError(f"Refusing to read '{name}' from '{filepath}': it declares "
                         f"{info.file_size} bytes but stores only {info.compress_size}.")
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise ValueError(f"'{filepath}' is damaged: cannot read member '{name}' "
                         f"({error}).") from None


def read_config(archive, filepath) -> dict:
    """The parsed `config.json` of an open `.keras` archive."""
    raw = _read_member(archive, CONFIG, filepath)
    config = load_json(raw, f"'{filepath}': config.json")
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"'{filepath}': config.json does not describe a model (no "
                         "'class_name').")
    return config


def open_weights(archive, filepath) -> h5py.File:
    """`model.weights.h5` of an open archive, as an in-memory HDF5 file."""
    data = _read_member(archive, WEIGHTS, filepath)
    try:
        return h5py.File(io.BytesIO(data), "r")
    except OSError as error:
        raise ValueError(f"'{filepath}' is damaged: {WEIGHTS} is not a readable HDF5 file "
                         f"({error}).") from None


def load_model(archive, filepath, build, compile: bool, custom_objects=None):
    """Rebuild a model from an open `.keras` archive; `build(config)` makes it from config."""
    config = read_config(archive, filepath)
    compile_config = config.get("compile_config")
    model = build(config)
    if compile and compile_config:
        compile_as_saved(model, compile_config, custom_objects)
    with open_weights(archive, filepath) as file:
        keras_weights.read_weights(file, model, load_optimizer=bool(compile and compile_config))
    _read_assets(archive, model, filepath)
    return model


def _overrides(model, method: str) -> bool:
    """Whether `model`'s class defines its own `method` (Kestrel's models have none)."""
    from kestrel.models.model import Model

    return callable(getattr(type(model), method, None)) and \
        getattr(type(model), method) is not getattr(Model, method, None)
