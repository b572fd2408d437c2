"""Whole-model configs: to/from dicts, JSON and YAML (safe loading only)."""
from __future__ import annotations

import importlib

from kestrel.registry.bounds import load_json, load_yaml, short_repr
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

# Keras modules whose Kestrel classes live in lazily imported packages (registered on import).
_LAZY_PACKAGES = {"keras.distillation": "kestrel.distillation"}


def model_to_dict(model) -> dict:
    """The `serialize_keras_object` form of a model, as Keras 3 writes it."""
    entry = serialize_keras_object(model, "layers")
    build = model.get_build_config()
    entry["build_config"] = build if type(model).__name__ != "Functional" else {"input_shape": None}
    return entry


def deserialize_layer(entry, custom_objects=None):
    """A layer (or model) from its serialized dict; Keras 2 and Keras 3 forms accepted."""
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ValueError(f"Not a layer config: expected a dict with 'class_name'. "
                         f"Received: {short_repr(entry)}")
    class_name = entry["class_name"]
    if class_name == "FunctionOp" or str(entry.get("module", "")).startswith("keras.src.ops."):
        from kestrel.ops.operation import FunctionOp

        return FunctionOp.from_keras(entry)
    if class_name == "Model":
        entry = {**entry, "class_name": "Functional"}
    package = _LAZY_PACKAGES.get(entry.get("module"))
    if package:
        importlib.import_module(package)
    layer = deserialize_keras_object(entry, "layers", custom_objects)
    if entry.get("build_config") and not getattr(layer, "built", True):
        layer.build_from_config(entry["build_config"])
    return layer


def model_from_config(config: dict, custom_objects=None):
    """Instantiate a model from a config dict (Keras 2 or Keras 3)."""
    try:
        return deserialize_layer(config, custom_objects)
    except RecursionError:
        raise ValueError("The model config is nested too deeply to rebuild.") from None


def model_from_json(json_string: str, custom_objects=None):
    """Parse a JSON model config (from `to_json()`, Keras 2 or Keras 3) into a model,
    compiled as Keras does when the JSON holds a `compile_config`."""
    return _compiled(load_json(json_string, "model_from_json: the string"), custom_objects)


def model_from_yaml(yaml_string: str, custom_objects=None):
    """Parse a YAML model config with `yaml.safe_load` (no Python object tags) into a model;
    documents whose aliases expand beyond a bound are refused."""
    return _compiled(load_yaml(yaml_string, "model_from_yaml: the document"), custom_objects)


def model_to_json_dict(model) -> dict:
    """What `to_json` writes: the model's config and, as Keras, its `compile_config`."""
    from kestrel.saving.keras_zip import compile_entry

    return {**model_to_dict(model), "compile_config": compile_entry(model)}


def _compiled(config, custom_objects):
    """The model of `config`, compiled from its `compile_config` when that is not empty."""
    from kestrel.saving.keras_zip import compile_as_saved

    model = model_from_config(config, custom_objects)
    saved = config.get("compile_config") if isinstance(config, dict) else None
    if saved:
        compile_as_saved(model, saved, custom_objects)
    return model
