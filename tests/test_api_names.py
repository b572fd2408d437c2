"""Every public name of real Keras 3's modules exists in Kestrel, except the few listed here."""
import importlib
import inspect
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402

MODULES = ["", "activations", "applications", "backend", "callbacks", "config", "constraints",
           "datasets", "distribution", "dtype_policies", "export", "initializers", "layers",
           "legacy", "legacy.saving", "losses", "metrics", "mixed_precision", "models", "ops",
           "ops.image", "ops.linalg", "ops.nn", "ops.numpy", "optimizers", "optimizers.legacy",
           "optimizers.schedules", "preprocessing", "preprocessing.image",
           "preprocessing.sequence", "quantizers", "random", "regularizers", "saving", "tree",
           "utils", "utils.bounding_boxes", "utils.legacy", "visualization", "wrappers"]

# Not (yet) in Kestrel, by module; `src` is Keras' private tree.
NOT_YET = {
    "": {"src"},
}

# Parameters of Keras' functions and constructors that Kestrel's lack, by public name.
PARAMETERS_NOT_YET = {
    "KerasTensor": {"sparse", "ragged", "record_history"},  # made by Input and layers
    "constraints.serialize": {"constraint"},  # one serializer: serialize(obj)
    "regularizers.serialize": {"regularizer"},
    "quantizers.serialize": {"initializer"},
}


def _has(module, name) -> bool:
    try:
        return hasattr(module, name)
    except ImportError:
        return False


@pytest.mark.parametrize("path", MODULES)
def test_keras_public_names_exist(path):
    suffix = "." + path if path else ""
    theirs = importlib.import_module("keras" + suffix)
    ours = importlib.import_module("kestrel" + suffix)
    missing = {n for n in dir(theirs) if not n.startswith("_") and not _has(ours, n)}
    assert missing <= NOT_YET.get(path, set()), sorted(missing - NOT_YET.get(path, set()))


def test_backend_only_names_raise_clearly():
    for cls in (kestrel.layers.JaxLayer, kestrel.layers.FlaxLayer, kestrel.layers.TFSMLayer,
                kestrel.callbacks.OrbaxCheckpoint, kestrel.export.ExportArchive):
        with pytest.raises(NotImplementedError, match=f"{cls.__name__} needs .*Instead: "):
            cls("anything")


def test_legacy_aliases_are_the_current_objects():
    assert kestrel.optimizers.legacy.Adam is kestrel.optimizers.Adam
    config = kestrel.utils.legacy.serialize_keras_object(kestrel.layers.Dense(2))
    assert set(config) == {"class_name", "config"} and config["class_name"] == "Dense"
    assert kestrel.version() == kestrel.__version__


def _parameters(fn):
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None


def _signature_gaps(theirs, ours) -> set:
    """Keras' named parameters that `ours` lacks (unless it takes **kwargs), and those that
    Keras defaults but `ours` requires."""
    if inspect.isclass(theirs):
        theirs, ours = theirs.__init__, ours.__init__
    keras_params, our_params = _parameters(theirs), _parameters(ours)
    if keras_params is None or our_params is None:
        return set()
    open_ended = any(p.kind == p.VAR_KEYWORD for p in our_params.values())
    gaps = set()
    for name, param in keras_params.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name not in our_params:
            if not open_ended:
                gaps.add(name)
        elif param.default is not param.empty and our_params[name].default is param.empty:
            gaps.add(name)
    return gaps


@pytest.mark.parametrize("path", MODULES)
def test_keras_signatures_are_accepted(path):
    """A call written for Keras (its keyword names, its optional arguments) is accepted."""
    suffix = "." + path if path else ""
    theirs = importlib.import_module("keras" + suffix)
    ours = importlib.import_module("kestrel" + suffix)
    problems = {}
    for name in dir(theirs):
        keras_obj, our_obj = getattr(theirs, name), getattr(ours, name, None)
        if name.startswith("_") or our_obj is None or inspect.ismodule(keras_obj) or \
                not callable(keras_obj) or inspect.isclass(keras_obj) != inspect.isclass(our_obj):
            continue
        key = f"{path}.{name}".lstrip(".")
        gaps = _signature_gaps(keras_obj, our_obj) - PARAMETERS_NOT_YET.get(key, set())
        if gaps:
            problems[key] = sorted(gaps)
    assert not problems, problems
