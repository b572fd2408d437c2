"""`KerasFileEditor`: inspect, edit and resave the weights of `.keras` / `.weights.h5` files.

The file's weights become a tree of dicts: one dict per object (`layers/dense`, `optimizer`),
holding its weights (`"0"`, `"1"`, ... -> NumPy arrays, read from `<path>/vars/`) and its
sub-objects. Edits change the tree; `save` writes it back in Keras 3's layout, atomically.
"""
from __future__ import annotations

import math
import os
import zipfile

import h5py
import numpy as np

from kestrel.saving.atomic import atomic_write

_MAX_BYTES = 1 << 32  # one weight larger than 4 GiB is refused, as Keras does
_MAX_RANK = 64


def _position(key: str):
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


class KerasFileEditor:
    """Inspect and edit the weights of a `.keras` or `.weights.h5` file.

    Args:
        filepath: a `.keras` or `.weights.h5` file.

    Example:
    ```python
    editor = KerasFileEditor("model.weights.h5")
    editor.summary()
    editor.delete_object("layers/dense_2")
    editor.add_object("layers/einsum_dense", weights={"0": kernel, "1": bias})
    editor.save("edited.weights.h5")
    ```
    """

    def __init__(self, filepath):
        self.filepath = os.fspath(filepath)
        self.config = self.metadata = None
        self.object_metadata: dict[str, dict] = {}  # object path -> attributes of its vars/
        self._weight_attrs: dict[int, tuple] = {}  # id(array read) -> (array, its attributes)
        if self.filepath.endswith(".keras"):
            from kestrel.registry.bounds import load_json
            from kestrel.saving import keras_zip

            with zipfile.ZipFile(self.filepath) as archive:
                self.config = keras_zip.read_config(archive, self.filepath)
                self.metadata = load_json(keras_zip._read_member(
                    archive, keras_zip.METADATA, self.filepath), "metadata.json")
                with keras_zip.open_weights(archive, self.filepath) as file:
                    self.weights_dict = self._read_object(file, "")
        elif self.filepath.endswith(".weights.h5"):
            with h5py.File(self.filepath, "r") as file:
                self.weights_dict = self._read_object(file, "")
        else:
            raise ValueError("KerasFileEditor: expected a `.keras` or `.weights.h5` file. "
                             f"Received: filepath={self.filepath}")
        print(f"Keras model file '{self.filepath}'")
        if self.metadata is not None:
            print(f"Saved with Keras {self.metadata.get('keras_version', '?')} - date: "
                  f"{self.metadata.get('date_saved', '?')}")

    # ------------------------------------------------------------------ reading
    def _read_object(self, group: h5py.Group, path: str) -> dict:
        """The tree of `group`: its `vars/` datasets, then its non-empty sub-objects."""
        tree = {}
        vars_group = self._child(group, "vars", path)
        if isinstance(vars_group, h5py.Group):
            if vars_group.attrs:
                self.object_metadata[path] = dict(vars_group.attrs)
            for key in sorted(vars_group, key=_position):
                tree[key] = self._read_dataset(self._child(vars_group, key, path), path, key)
        for key in group:
            child = self._child(group, key, path)
            if key != "vars" and isinstance(child, h5py.Group):
                sub = self._read_object(child, f"{path}/{key}".lstrip("/"))
                if sub:
                    tree[key] = sub
        return tree

    @staticmethod
    def _child(group: h5py.Group, key: str, path: str):
        if key not in group:
            return None
        link = group.get(key, getlink=True)
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            raise ValueError(f"KerasFileEditor: links are not allowed in weight files. "
                             f"Received: a {type(link).__name__} at '{path}/{key}'")
        return group[key]

    def _read_dataset(self, dataset, path: str, key: str) -> np.ndarray:
        where = f"{path}/{key}".lstrip("/")
        if not isinstance(dataset, h5py.Dataset):
            raise ValueError(f"KerasFileEditor: expected a weight at '{where}/vars'. "
                             f"Received: {type(dataset).__name__}")
        if dataset.external or dataset.is_virtual:
            raise ValueError("KerasFileEditor: external or virtual datasets are not allowed. "
                             f"Received: one at '{where}'")
        shape = dataset.shape or ()
        size = math.prod(shape) * dataset.dtype.itemsize
        if len(shape) > _MAX_RANK or size > _MAX_BYTES:
            raise ValueError(f"KerasFileEditor: weight '{where}' is too large to load safely "
                             f"(rank {len(shape)}, {size} bytes; limits {_MAX_RANK} and "
                             f"{_MAX_BYTES}).")
        value = np.asarray(dataset[()])
        if dataset.attrs:  # e.g. dtype="bfloat16": kept while this very array stays in the tree
            self._weight_attrs[id(value)] = (value, dict(dataset.attrs))
        return value

    # ------------------------------------------------------------------ inspecting
    def summary(self):
        """Print the objects and weights of the file as a tree."""
        print("Weights structure")
        self._print_tree(self.weights_dict, "", "  ")

    def _print_tree(self, tree: dict, path: str, prefix: str):
        items = list(tree.items())
        for index, (key, value) in enumerate(items):
            last = index == len(items) - 1
            connector = "└─ " if last else "├─ "
            if isinstance(value, dict):
                inner = f"{path}/{key}".lstrip("/")
                name = self.object_metadata.get(inner, {}).get("name")
                print(f"{prefix}{connector}{key}" + (f" ('{name}')" if name else ""))
                self._print_tree(value, inner, prefix + ("    " if last else "│   "))
            else:
                print(f"{prefix}{connector}{key}: shape={value.shape}, dtype={value.dtype}")

    def compare(self, reference_model) -> dict:
        """List every difference between the file and `reference_model`'s weights.

        Returns `{"status": "success" | "error", "error_count": int, "match_count": int}`.
        """
        print("Running comparison")
        errors, matches = self._compare(self.weights_dict, _weight_spec(reference_model), "")
        print("─────────────────────")
        if errors:
            print(f"Found {errors} error{'s' if errors != 1 else ''}: saved file is not "
                  "compatible with the reference model")
        else:
            print("Comparison successful: saved file is compatible with the reference model")
            print(f"    Found {matches} matching weight{'s' if matches != 1 else ''}")
        return {"status": "error" if errors else "success", "error_count": errors,
                "match_count": matches}

    def _compare(self, saved: dict, reference: dict, path: str) -> tuple[int, int]:
        errors = matches = 0
        for key in list(reference) + [k for k in saved if k not in reference]:
            where = f"{path}/{key}"
            ours, theirs = saved.get(key), reference.get(key)
            if ours is None or theirs is None:
                kind = "Object" if isinstance(ours if theirs is None else theirs, dict) \
                    else "Weight"
                present, missing = ("saved file", "reference model") if theirs is None \
                    else ("reference model", "saved file")
                print(f"...{kind} {where} present in {present}, missing from {missing}")
                errors += 1
            elif isinstance(ours, dict) and isinstance(theirs, dict):
                sub_errors, sub_matches = self._compare(ours, theirs, where)
                errors, matches = errors + sub_errors, matches + sub_matches
            elif isinstance(ours, dict) or isinstance(theirs, dict):
                print(f"...{where} is an object in one and a weight in the other")
                errors += 1
            elif tuple(ours.shape) != tuple(theirs):
                print(f"...Weight shape mismatch for {where}\n    In reference model: "
                      f"shape={tuple(theirs)}\n    In saved file: shape={tuple(ours.shape)}")
                errors += 1
            else:
                matches += 1
        return errors, matches

    # ------------------------------------------------------------------ editing
    def _find(self, name: str) -> tuple[dict, str]:
        """(parent dict, key) of an object given by path (`layers/dense`) or unique name."""
        if "/" in name:
            parent, key = self._parent(name, name)
            if key not in parent:
                raise ValueError(f"KerasFileEditor: path '{name}' not found in the file.")
            return parent, key
        found = []

        def visit(tree: dict):
            for key, value in tree.items():
                if isinstance(value, dict):
                    if key == name:
                        found.append((tree, key))
                    visit(value)
        visit(self.weights_dict)
        if len(found) != 1:
            problem = "occurs more than once in the file; pass its full path" if found else \
                "does not appear in the file; `editor.summary()` lists all objects"
            raise ValueError(f"KerasFileEditor: name '{name}' {problem}.")
        return found[0]

    def _parent(self, path: str, shown: str) -> tuple[dict, str]:
        parts = path.strip("/").split("/")
        tree = self.weights_dict
        for part in parts[:-1]:
            tree = tree.get(part)
            if not isinstance(tree, dict):
                raise ValueError(f"KerasFileEditor: path '{shown}' not found in the file.")
        return tree, parts[-1]

    def rename_object(self, object_name: str, new_name: str):
        """Rename an object given by name (`"dense_2"`) or path (`"layers/dense_2"`)."""
        if "/" in new_name:
            raise ValueError("KerasFileEditor.rename_object: `new_name` must be a leaf name, "
                             f"not a path. Received: new_name='{new_name}'")
        parent, key = self._find(object_name)
        if new_name in parent:
            raise ValueError(f"KerasFileEditor.rename_object: '{new_name}' already exists "
                             f"beside '{object_name}'.")
        parent[new_name] = parent.pop(key)

    def delete_object(self, object_name: str):
        """Remove an object (e.g. a layer) given by name or path, with all its weights."""
        parent, key = self._find(object_name)
        del parent[key]

    def add_object(self, object_path: str, weights: dict):
        """Add an object at `object_path` (e.g. `"layers/dense_2"`) with `weights`
        (`{"0": kernel, "1": bias}`); its parent path must exist."""
        weights = _as_weights(weights, "add_object")
        parent, key = self._parent(object_path, object_path.rsplit("/", 1)[0])
        parent[key] = weights

    def delete_weight(self, object_name: str, weight_name: str):
        """Remove weight `weight_name` (e.g. `"0"`) from an object given by name or path."""
        parent, key = self._find(object_name)
        weights = parent[key]
        if weight_name not in weights or isinstance(weights[weight_name], dict):
            found = [k for k, v in weights.items() if not isinstance(v, dict)]
            raise ValueError(f"KerasFileEditor.delete_weight: weight '{weight_name}' not "
                             f"found in object '{object_name}'. Weights found: {found}")
        del weights[weight_name]

    def add_weights(self, object_name: str, weights: dict):
        """Add (or replace) weights `{"2": value, ...}` of an object given by name or path."""
        weights = _as_weights(weights, "add_weights")
        parent, key = self._find(object_name)
        parent[key].update(weights)

    # ------------------------------------------------------------------ writing
    def save(self, filepath):
        """Write the edited weights to a `.weights.h5` file (atomically)."""
        filepath = os.fspath(filepath)
        if not filepath.endswith(".weights.h5"):
            raise ValueError("KerasFileEditor.save: expected a `.weights.h5` file. "
                             f"Received: filepath={filepath}")
        with atomic_write(filepath) as temp_path, h5py.File(temp_path, "w") as file:
            self._write_object(file, self.weights_dict, "")

    def resave_weights(self, filepath):
        """Same as `save(filepath)`."""
        self.save(filepath)

    def _write_object(self, group: h5py.Group, tree: dict, path: str):
        weights = {k: v for k, v in tree.items() if not isinstance(v, dict)}
        if weights or (not path and path in self.object_metadata):
            vars_group = group.create_group("vars")
            vars_group.attrs.update(self.object_metadata.get(path, {}))
            for key, value in weights.items():
                dataset = vars_group.create_dataset(key, data=value)
                original, attrs = self._weight_attrs.get(id(value), (None, {}))
                if original is value:
                    dataset.attrs.update(attrs)
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                self._write_object(group.create_group(key), value, f"{path}/{key}".lstrip("/"))


def _as_weights(weights, method: str) -> dict:
    if not isinstance(weights, dict):
        raise ValueError(f"KerasFileEditor.{method}: `weights` must be a dict of weight names "
                         f"('0', '1', ...) to arrays. Received: type(weights)="
                         f"{type(weights).__name__}")
    return {str(key): np.asarray(value) for key, value in weights.items()}


def _weight_spec(model) -> dict:
    """The `.weights.h5` tree of a Kestrel model, with shapes in place of values."""
    from kestrel.layers.weights import keras_value
    from kestrel.saving.keras_weights import optimizer_state
    from kestrel.saving.weight_paths import keras3_groups, own_weights

    spec: dict = {}
    for path, layer in keras3_groups(model):
        node = spec
        for part in path.split("/") if path else []:
            node = node.setdefault(part, {})
        for index, attr in enumerate(own_weights(layer)):
            node[str(index)] = tuple(keras_value(layer, attr).shape)
    state = optimizer_state(model)
    if state:
        spec["optimizer"] = {str(i): tuple(np.shape(v)) for i, (_, v) in enumerate(state)}
    return _prune(spec)


def _prune(tree: dict) -> dict:
    """`tree` without objects that hold no weights (e.g. Dropout), as Keras' files."""
    out = {}
    for key, value in tree.items():
        value = _prune(value) if isinstance(value, dict) else value
        if value != {}:
            out[key] = value
    return out
