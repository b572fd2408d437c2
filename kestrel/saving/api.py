"""save_model / load_model / save_weights / load_weights, dispatched on the file suffix.

| suffix | save_model | save_weights | read by |
| --- | --- | --- | --- |
| `.keras` | Keras 3 zip | - | load_model |
| `.weights.h5` | - | Keras 3 layout | load_weights |
| `.weights.json` | - | Keras 3 layout in shards (`max_shard_size`) | load_weights |
| `.h5`, `.hdf5` | legacy whole model | Keras 2 layout | load_model, load_weights |
| other (tf.keras 2's TensorFlow formats) | with `save_format="h5"` | Keras 2 layout | load_weights |

Every save is atomic: a failure leaves any previous file untouched.
"""
from __future__ import annotations

import contextlib
import os
import warnings
import zipfile

import h5py

from kestrel.distribution.sharding import whole_weights
from kestrel.saving import hdf5_legacy, keras_weights, keras_zip, sharded_weights
from kestrel.saving.atomic import atomic_write

_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
_WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5")


_SAVED_MODEL_HINTS = {  # tf.keras 2 wrote a TensorFlow SavedModel to a path without a suffix
    "save_model": " Saving to TensorFlow's SavedModel format with `save()` is gone in Keras 3: "
                  "use `model.export(filepath)` to export the model.",
    "load_model": " The legacy TensorFlow SavedModel format is not supported by `load_model()` "
                  "in Keras 3; it reads `.keras` files and legacy H5 files only.",
}


def _suffix(filepath, accepted: tuple[str, ...], what: str) -> str:
    path = os.fspath(filepath)
    for suffix in accepted:
        if path.lower().endswith(suffix):
            return suffix
    raise ValueError(
        f"Invalid filepath extension for {what}: the filename must end in one of "
        f"{', '.join(repr(s) for s in accepted)}.{_SAVED_MODEL_HINTS.get(what, '')} "
        f"Received: filepath={path}")


def _tf_format_path(filepath) -> bool:
    """tf.keras 2 wrote TensorFlow formats to paths without a Keras suffix."""
    return not os.fspath(filepath).lower().endswith(_MODEL_SUFFIXES)


def tf_checkpoint_path(filepath) -> bool:
    """A tf.keras 2 TensorFlow-checkpoint path: no suffix (`checkpoints/my_checkpoint`) or
    `.ckpt` (`training_1/cp-{epoch:04d}.ckpt`)."""
    return os.path.splitext(os.fspath(filepath))[1].lower() in ("", ".ckpt")


def _model_suffix(filepath, save_format) -> str:
    """The format of `save_model`: by suffix; Keras 2's `save_format="h5"` writes HDF5 to any
    path; another `save_format` only where the suffix already says the format (as Keras 3)."""
    if save_format is None:
        return _suffix(filepath, _MODEL_SUFFIXES, "save_model")
    if not _tf_format_path(filepath):
        warnings.warn("The `save_format` argument is deprecated in Keras 3; the format is "
                      f"inferred from the file path. Received: save_format={save_format}",
                      DeprecationWarning, stacklevel=4)
        return _suffix(filepath, _MODEL_SUFFIXES, "save_model")
    if save_format == "h5":
        return ".h5"
    raise ValueError(
        "The `save_format` argument is deprecated in Keras 3; pass a file path with a `.keras` "
        "or `.h5` extension, or save_format='h5' (TensorFlow's SavedModel format needs "
        f"TensorFlow). Received: save_format={save_format}, filepath={os.fspath(filepath)}")


def _weights_suffix(filepath, save_format) -> str:
    """The layout of `save_weights`: by suffix; a tf.keras 2 TensorFlow-checkpoint path
    (`training_1/cp.ckpt`) gets the Keras 2 HDF5 layout, which `load_weights` reads back."""
    if save_format not in (None, "h5", "tf"):
        raise ValueError(f"Unknown format. Received: save_format={save_format!r}; expected "
                         "'h5' or 'tf' (Keras 2).")
    if save_format == "h5" and _tf_format_path(filepath):
        return ".h5"
    if not (_tf_format_path(filepath) and tf_checkpoint_path(filepath)):
        return _suffix(filepath, _WEIGHT_SUFFIXES, "save_weights")
    warnings.warn(
        f"TensorFlow checkpoints need TensorFlow: '{os.fspath(filepath)}' gets the Keras 2 "
        "HDF5 weights layout instead, which `load_weights` reads from the same path.",
        stacklevel=4)
    return ".h5"


def _check_overwrite(filepath, overwrite: bool) -> None:
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(
            f"'{os.fspath(filepath)}' already exists and overwrite=False. Pass overwrite=True "
            f"to replace it. Received: overwrite={overwrite}")


def _check_exists(filepath) -> None:
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No file or directory found at {os.fspath(filepath)}")


def _open_h5(filepath) -> h5py.File:
    _check_exists(filepath)
    try:
        return h5py.File(filepath, "r")
    except OSError as error:
        raise ValueError(
            f"Cannot read '{os.fspath(filepath)}': it is not a valid HDF5 file, or it is "
            f"truncated or damaged ({error}).") from None


def _open_zip(filepath) -> zipfile.ZipFile:
    _check_exists(filepath)
    try:
        return zipfile.ZipFile(filepath, "r")
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(
            f"Cannot read '{os.fspath(filepath)}': it is not a valid .keras (zip) file, or it "
            f"is truncated or damaged ({error}).") from None


def _raised_by_h5py(error: BaseException) -> bool:
    trace = error.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    return trace is not None and trace.tb_frame.f_globals.get("__name__", "").startswith("h5py")


@contextlib.contextmanager
def _reading(filepath):
    """Turn h5py's low-level errors about damaged data into one clear `ValueError`."""
    try:
        yield
    except (OSError, RuntimeError, KeyError) as error:
        if not _raised_by_h5py(error):
            raise
        raise ValueError(f"Cannot read '{os.fspath(filepath)}': its HDF5 data is damaged "
                         f"({error}).") from None


def _builder(custom_objects, safe_mode: bool, filepath):
    """A function making a model from its saved config, in safe mode and custom scope;
    a config it cannot use raises a ValueError or TypeError that names `filepath`."""
    from kestrel.saving.model_config import model_from_config
    from kestrel.registry.object_registry import custom_object_scope
    from kestrel.registry.serialization import UnknownObjectError
    from kestrel.registry.safe_mode import safe_mode_scope

    def build(config):
        try:
            with custom_object_scope(custom_objects), safe_mode_scope(safe_mode):
                return model_from_config(config, custom_objects)
        except (ValueError, TypeError) as error:
            if type(error) not in (ValueError, TypeError, UnknownObjectError):
                raise
            raise type(error)(
                f"Cannot load the model in '{os.fspath(filepath)}': {error}") from error
    return build


def save_model(model, filepath, overwrite: bool = True, include_optimizer: bool = True,
               save_format=None, zipped=None, **kwargs) -> None:
    """Save the whole model: `.keras` (Keras 3 zip) or `.h5` / `.hdf5` (legacy HDF5).

    Args:
        model: the model to save.
        filepath: destination; its suffix picks the format.
        overwrite: replace an existing file (else `FileExistsError`).
        include_optimizer: also save the compile settings and optimizer state.
        save_format: Keras 2: `"h5"` writes the legacy HDF5 file to a path of any suffix.
        zipped: False writes the `.keras` members unzipped into the directory `filepath`
            (which must not end in `.keras`), as Keras 3; `load_model` reads it back.
    """
    if kwargs:
        raise ValueError(
            f"save_model got unsupported arguments {sorted(kwargs)}: the format is chosen by "
            f"the filename's suffix ('.keras', '.h5'). Received: {kwargs}")
    if zipped is False:
        _save_model_dir(model, filepath, overwrite, include_optimizer)
        return
    suffix = _model_suffix(filepath, save_format)
    _check_overwrite(filepath, overwrite)
    if suffix == ".keras":
        _warn_if_unbuilt(model)
    writer = keras_zip.save_model if suffix == ".keras" else hdf5_legacy.save_model
    with whole_weights(model), atomic_write(filepath) as temp_path:
        writer(model, temp_path, include_optimizer=include_optimizer)


def _save_model_dir(model, dirpath, overwrite: bool, include_optimizer: bool) -> None:
    """`save_model(..., zipped=False)`: Keras 3's unzipped `.keras` layout in `dirpath`."""
    if os.fspath(dirpath).endswith(".keras"):
        raise ValueError("When using `zipped=False`, the `filepath` argument should not end "
                         f"in `.keras`. Received: filepath={os.fspath(dirpath)}")
    _check_overwrite(dirpath, overwrite)
    _warn_if_unbuilt(model)
    with whole_weights(model):
        keras_zip.save_model_dir(model, dirpath, include_optimizer=include_optimizer)


def _warn_if_unbuilt(model) -> None:
    """Keras' warning when a whole model is saved before it is built (it may hold no weights)."""
    if not model.built:
        warnings.warn("You are saving a model that has not yet been built. It might not contain "
                      "any weights yet. Consider building the model first by calling it on "
                      "some data.", stacklevel=2)


def load_model(filepath, custom_objects: dict | None = None, compile: bool = True,
               safe_mode: bool = True):
    """Load a model saved by Kestrel, Keras 3 (`.keras`, `.h5`) or Keras 2 (`.h5`).

    Args:
        filepath: a `.keras`, `.h5` or `.hdf5` file, or a directory saved with `zipped=False`.
        custom_objects: user classes/functions named in the file's config.
        compile: restore the compile settings and optimizer state when the file has them.
        safe_mode: refuse to run Python code stored in the file (Lambda bytecode).
    """
    build = _builder(custom_objects, safe_mode, filepath)
    if keras_zip.is_model_dir(filepath):  # saved with zipped=False
        with _reading(filepath):
            return keras_zip.load_model(keras_zip.DirectoryArchive(filepath), filepath, build,
                                        compile, custom_objects)
    suffix = ".h5" if _tf_format_path(filepath) and h5py.is_hdf5(filepath) else \
        _suffix(filepath, _MODEL_SUFFIXES, "load_model")  # Keras 2: save_format="h5"
    if suffix == ".keras":
        with _open_zip(filepath) as archive, _reading(filepath):
            return keras_zip.load_model(archive, filepath, build, compile, custom_objects)
    with _open_h5(filepath) as file, _reading(filepath):
        return hdf5_legacy.load_model(file, build, compile, custom_objects)


def save_weights(model, filepath, overwrite: bool = True, max_shard_size=None,
                 save_format=None, objects_to_skip=None) -> None:
    """Save weights: `.weights.h5` (Keras 3 layout) or `.h5` / `.hdf5` (Keras 2 layout); a
    tf.keras 2 checkpoint path (no Keras suffix, or `save_format`) gets the Keras 2 layout.

    With `max_shard_size` (GB), a `.weights.json` index and shard files of at most that size
    (`sharded_weights`). `objects_to_skip` (Keras 3 layouts only): layers or optimizers left
    out of the file, with everything below them.
    """
    if max_shard_size is not None:
        index = sharded_weights.index_path(filepath)
        _check_overwrite(index, overwrite)
        with whole_weights(model):
            sharded_weights.save_weights(model, index, max_shard_size, objects_to_skip or ())
        return
    suffix = _weights_suffix(filepath, save_format)
    _check_skip_suffix(objects_to_skip, suffix, filepath, "saving")
    _check_overwrite(filepath, overwrite)
    _check_built_for_saving(model)
    with whole_weights(model), atomic_write(filepath) as temp_path, \
            h5py.File(temp_path, "w") as file:
        if suffix == ".weights.h5":
            keras_weights.write_weights(file, model, objects_to_skip=objects_to_skip or ())
        else:
            hdf5_legacy.save_weights_to_group(file, model)


def _check_built_for_saving(model) -> None:
    """Keras' ValueError for the weights of a model that is not built (it has none yet)."""
    if not model.built:
        raise ValueError("You are saving a model that has not yet been built. Try building the "
                         "model first by calling it on some data or by using `build()`.")


def _check_skip_suffix(objects_to_skip, suffix: str, filepath, action: str) -> None:
    """Keras' ValueError for `objects_to_skip` with a file other than `.weights.h5`/`.json`."""
    if objects_to_skip is not None and suffix not in (".weights.h5", ".weights.json"):
        raise ValueError(f"`objects_to_skip` only supports {action} '.weights.h5' files."
                         f"Received: {os.fspath(filepath)}")


def load_weights(model, filepath, by_name: bool = False, skip_mismatch: bool = False,
                 objects_to_skip=None) -> None:
    """Load weights from `.weights.h5`, `.weights.json` (sharded), `.keras` or `.h5` files of
    Kestrel, Keras 2 or 3.

    Args:
        model: the model to fill.
        filepath: the weights (or whole-model) file, or the index of sharded weights.
        by_name: (`.h5` only) match layers by name instead of by order.
        skip_mismatch: skip, with a warning, layers whose weight count or shapes differ.
        objects_to_skip: (`.weights.h5` / `.weights.json` only) layers or optimizers that
            keep their values, with everything below them, as Keras 3.
    """
    suffix = ".h5" if _tf_format_path(filepath) and h5py.is_hdf5(filepath) else \
        _suffix(filepath, (".keras", ".weights.json") + _WEIGHT_SUFFIXES, "load_weights")
    _check_skip_suffix(objects_to_skip, suffix, filepath, "loading")
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' has no weights yet: it is not built. Call it on a batch of "
            "data or call `model.build(input_shape)` before `load_weights()`.")
    with whole_weights(model):
        _read_weights_file(model, filepath, suffix, by_name, skip_mismatch,
                           objects_to_skip or ())


def _read_weights_file(model, filepath, suffix: str, by_name: bool, skip_mismatch: bool,
                       objects_to_skip=()) -> None:
    if suffix == ".keras":
        _reject_by_name(by_name, suffix)
        with _open_zip(filepath) as archive, keras_zip.open_weights(archive, filepath) as file, \
                _reading(filepath):
            keras_weights.read_weights(file, model, skip_mismatch=skip_mismatch)
        return
    if suffix == ".weights.json":
        _reject_by_name(by_name, suffix)
        with _open_keras3_weights(filepath, suffix) as file:
            keras_weights.read_weights(file, model, skip_mismatch=skip_mismatch,
                                       objects_to_skip=objects_to_skip)
        return
    with _open_h5(filepath) as file, _reading(filepath):
        if "layer_names" in file.attrs or "layer_names0" in file.attrs \
                or "model_weights" in file:
            _check_skip_suffix(objects_to_skip or None, ".h5", filepath, "loading")
            group = file["model_weights"] if "model_weights" in file else file
            hdf5_legacy.load_weights_from_group(group, model, by_name=by_name,
                                                skip_mismatch=skip_mismatch)
        elif "layers" in file or "vars" in file or "_layer_checkpoint_dependencies" in file:
            _reject_by_name(by_name, ".weights.h5")
            keras_weights.read_weights(file, model, skip_mismatch=skip_mismatch,
                                       objects_to_skip=objects_to_skip)
        else:
            raise ValueError(
                f"'{os.fspath(filepath)}' is an HDF5 file but holds no Keras weights: it has "
                "neither Keras 2's `layer_names` nor Keras 3's `layers/` layout.")


def load_training_state(model, filepath) -> None:
    """Load weights and optimizer state from a `.weights.h5` (or sharded `.weights.json`)
    written by `save_weights`."""
    suffix = _suffix(filepath, (".weights.h5", ".weights.json"), "load_training_state")
    with _open_keras3_weights(filepath, suffix) as file:
        keras_weights.read_weights(file, model, load_optimizer=True)


@contextlib.contextmanager
def _open_keras3_weights(filepath, suffix: str):
    """The HDF5 file of a `.weights.h5`, or the shards of a `.weights.json` gathered in one."""
    _check_exists(filepath)
    opened = sharded_weights.open_sharded(filepath) if suffix == ".weights.json" \
        else _open_h5(filepath)
    with _reading(filepath), opened as file:
        yield file


def _reject_by_name(by_name: bool, suffix: str) -> None:
    if by_name:
        raise ValueError(
            f"by_name=True is only supported for the Keras 2 `.h5` weights layout; weights in "
            f"the {suffix} layout are matched by structure. Received: by_name={by_name}")
