"""Keras 3's sharded weights: `save_weights("m.weights.json", max_shard_size=GB)`.

```
m.weights.json        {"metadata": {"total_size": <bytes, float>},
                       "weight_map": {"/layers/dense/vars": "m_00000.weights.h5" or a list}}
m_00000.weights.h5    the `.weights.h5` layout, cut into pieces: variables are written in
m_00001.weights.h5    order and a new shard starts when the next one would take the current
...                   shard past `max_shard_size` GB (1 GB = 1024**3 bytes)
```

A variable is never split; a layer's variables may be spread over several shards, then the
weight map lists them all for its group. The whole set is written to temporary files first
and renamed into place at the end, the index last, so a failed save leaves the previous set
as it was.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings

import h5py
import numpy as np

from kestrel.saving import keras_weights
from kestrel.saving.atomic import atomic_write

_BYTES_PER_GB = 1024**3


def index_path(filepath) -> str:
    """The `.weights.json` index that a sharded save of `filepath` writes.

    As Keras, a name ending in `weights.h5` is accepted with a warning and saved under the
    same name ending in `.json`; any other ending that is not `weights.json` is an error.
    """
    path = os.fspath(filepath)
    if not path.endswith(("weights.h5", "weights.json")):
        raise ValueError("The filename must end in `.weights.json` when `max_shard_size` is "
                         f"specified. Received: filepath={path}")
    if path.endswith(".json"):
        return path
    renamed = os.path.splitext(path)[0] + ".json"
    warnings.warn(f"Saving sharded weights requires `*.json` as the extension. The original "
                  f"path: {path} will be renamed to {renamed}.", stacklevel=3)
    return renamed


def _set_name(index: str) -> str:
    """The shards' common prefix: the index's name without `.json` and `.weights` (`m`)."""
    return os.path.splitext(os.path.basename(index))[0].replace(".weights", "")


def shard_name(index: str, number: int) -> str:
    """The file name of shard `number` of the set indexed by `index` (`m_00000.weights.h5`)."""
    return f"{_set_name(index)}_{number:05}.weights.h5"


def limit_in_bytes(max_shard_size) -> float:
    """`max_shard_size` (GB, int or float) in bytes."""
    try:
        return float(max_shard_size) * _BYTES_PER_GB
    except (TypeError, ValueError):
        raise ValueError("`max_shard_size` must be a number of GB (int or float). "
                         f"Received: max_shard_size={max_shard_size!r}") from None


def readable_size(size: float) -> str:
    """`size` bytes as Keras prints them: two decimals, in B, KB, MB, ... (steps of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


# ---------------------------------------------------------------------- writing
class _Pending:
    """A group or dataset handed out to `write_weights`; written once its attrs are set."""

    def __init__(self, writer: _ShardWriter, path: str, data: np.ndarray | None = None):
        self.writer, self.path, self.data, self.attrs = writer, path, data, {}

    def create_dataset(self, key: str, data) -> _Pending:
        return self.writer.add(f"{self.path}/{key}", np.asarray(data))


class _ShardWriter:
    """Stands in for the `h5py.File` that `keras_weights.write_weights` fills and spreads
    what it receives over shard files, each written through `atomic_write`.

    Each dataset is written when the next item arrives (its `dtype` attribute, set after
    `create_dataset`, decides its size), groups in the shard current at that moment.
    """

    def __init__(self, index: str, limit: float, commits: contextlib.ExitStack):
        self.index, self.limit, self.commits = index, limit, commits
        self.shards: list[str] = []
        self.weight_map: dict[str, str | list[str]] = {}
        self.filled = self.total = 0  # floats once a variable is counted, as in Keras
        self.file: h5py.File | None = None
        self.pending: _Pending | None = None
        self._open_shard()

    def create_group(self, path: str) -> _Pending:
        return self.add(path)

    def add(self, path: str, data: np.ndarray | None = None) -> _Pending:
        self._flush()
        self.pending = _Pending(self, path, data)
        return self.pending

    def finish(self) -> dict:
        """Write what is pending; the index's content."""
        self._flush()
        return {"metadata": {"total_size": self.total}, "weight_map": self.weight_map}

    def close(self) -> None:
        self.file.close()

    def _open_shard(self) -> None:
        if self.file is not None:
            self.file.close()
        name = shard_name(self.index, len(self.shards))
        temp_path = self.commits.enter_context(
            atomic_write(os.path.join(os.path.dirname(self.index), name)))
        self.file = h5py.File(temp_path, "w")
        self.shards.append(name)

    def _flush(self) -> None:
        item, self.pending = self.pending, None
        if item is None:
            return
        if item.data is None:
            self.file.require_group(item.path).attrs.update(item.attrs)
            return
        self._make_room(item)
        group_path, key = item.path.rsplit("/", 1)
        dataset = self.file.require_group(group_path).create_dataset(key, data=item.data)
        dataset.attrs.update(item.attrs)
        self._record(dataset.parent.name)

    def _make_room(self, item: _Pending) -> None:
        """Count `item` in the current shard, or start the next shard when it does not fit."""
        itemsize = 2 if item.attrs.get("dtype") == "bfloat16" else item.data.itemsize
        size = float(item.data.size * itemsize)
        self.total += size
        if size > self.limit:
            raise ValueError(
                f"The size of {item.path} is {readable_size(size)} which exceeds the maximum "
                f"shard size {readable_size(self.limit)}. You can increase the "
                "`max_shard_size` parameter to accommodate the size.")
        self.filled += size
        if self.filled > self.limit:
            self._open_shard()
            self.filled = size

    def _record(self, group_name: str) -> None:
        shard = self.shards[-1]
        listed = self.weight_map.get(group_name)
        if listed is None:
            self.weight_map[group_name] = shard
        elif isinstance(listed, str):
            self.weight_map[group_name] = [listed] if listed == shard else [listed, shard]
        elif shard not in listed:
            listed.append(shard)


def save_weights(model, index: str, max_shard_size, objects_to_skip=()) -> None:
    """Write `model`'s weights (and built optimizer) as the sharded set indexed by `index`,
    less `objects_to_skip` (see `keras_weights.write_weights`)."""
    if not model.built:
        raise ValueError("You are saving a model that has not yet been built. Try building "
                         "the model first by calling it on some data or by using `build()`.")
    limit = limit_in_bytes(max_shard_size)
    replaced = _listed_shards(index)
    with contextlib.ExitStack() as commits:  # exits last-in first-out: the index renamed last
        index_temp = commits.enter_context(atomic_write(index))
        writer = _ShardWriter(index, limit, commits)
        try:
            keras_weights.write_weights(writer, model, objects_to_skip=objects_to_skip)
            content = writer.finish()
        finally:
            writer.close()
        with open(index_temp, "w") as file:
            file.write(json.dumps(content, indent=4))
    _remove_shards(index, replaced - set(writer.shards))


def _listed_shards(index: str) -> set[str]:
    """Shard names of the set now indexed by `index` (empty when there is none)."""
    try:
        return set(_shard_files(_read_index(index), index))
    except (OSError, ValueError):
        return set()


def _remove_shards(index: str, names: set[str]) -> None:
    """Remove shards of a replaced set that the new set does not use."""
    pattern = re.compile(re.escape(_set_name(index)) + r"_\d{5}\.weights\.h5")
    for name in names:
        if pattern.fullmatch(name):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(os.path.dirname(index), name))


# ---------------------------------------------------------------------- reading
def _read_index(index) -> dict:
    with open(index) as file:
        try:
            content = json.load(file)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"Cannot read '{os.fspath(index)}': it is not a valid sharded "
                             f"weights index (JSON) file ({error}).") from None
    if not isinstance(content, dict) or not isinstance(content.get("weight_map"), dict):
        raise ValueError(f"Cannot read '{os.fspath(index)}': a sharded weights index needs a "
                         f"'weight_map' object, mapping groups to shard files.")
    return content


def _shard_files(content: dict, index) -> list[str]:
    """The shard file names the index lists, in order of first mention."""
    names = []
    for listed in content["weight_map"].values():
        for name in [listed] if isinstance(listed, str) else listed:
            if not isinstance(name, str) or os.path.basename(name) != name or not name:
                raise ValueError(f"Cannot read '{os.fspath(index)}': its weight map must name "
                                 f"shard files in the index's folder. Received: {name!r}")
            if name not in names:
                names.append(name)
    return names


@contextlib.contextmanager
def open_sharded(index):
    """The shards listed by `index` gathered into one in-memory HDF5 file (read-only use)."""
    folder = os.path.dirname(os.path.abspath(index))
    shards = [os.path.join(folder, name) for name in _shard_files(_read_index(index), index)]
    for shard in shards:
        if not os.path.exists(shard):
            raise FileNotFoundError(f"Shard '{os.path.basename(shard)}' listed in "
                                    f"'{os.fspath(index)}' is missing: expected it at {shard}")
    with h5py.File(io.BytesIO(), "w") as view:
        for shard in shards:
            _gather(view, shard)
        yield view


def _gather(view: h5py.File, shard: str) -> None:
    """Copy `shard`'s groups (their attributes merged) and datasets into `view`."""
    try:
        file = h5py.File(shard, "r")
    except OSError as error:
        raise ValueError(f"Cannot read shard '{shard}': it is not a valid HDF5 file, or it is "
                         f"truncated or damaged ({error}).") from None

    def visit(name: str, item) -> None:
        if isinstance(item, h5py.Group):
            group = view.require_group(name)
            for key, value in item.attrs.items():
                if key not in group.attrs:
                    group.attrs[key] = value
        elif name in view:
            raise ValueError(f"Cannot read shard '{shard}': '{name}' is also in an earlier "
                             "shard of the set.")
        else:
            file.copy(item, view.require_group(os.path.dirname(name) or "/"),
                      name=os.path.basename(name))
    with file:
        file.visititems(visit)
