"""Utilities: summaries, seeding, sessions, progress bars, data helpers."""
import importlib
from kestrel import _aliases
from kestrel.models.summary import print_summary
from kestrel.utils.session import clear_session, set_random_seed
from kestrel.utils.progbar import Progbar
from kestrel.utils.py_dataset import PyDataset, Sequence
from kestrel.utils.file_utils import get_file
from kestrel.utils.plot_history import plot_history
from kestrel.utils.plot_model import model_to_dot, plot_model
from kestrel.utils.data_utils import pack_x_y_sample_weight, unpack_x_y_sample_weight
from kestrel.utils.numerical_utils import normalize, to_categorical
from kestrel.utils.sequence_utils import pad_sequences
from kestrel.preprocessing._image_io import array_to_img, img_to_array, load_img, save_img

# Names that live elsewhere, imported on first use (keeps `import kestrel` light):
# "module:attribute", or a module alone.
_LAZY_NAMES = {
    "bounding_boxes": "kestrel.utils.bounding_boxes",
    "legacy": "kestrel.utils.legacy",
    "Config": "kestrel.utils.config_container:Config",
    "FeatureSpace": "kestrel.layers.preprocessing.feature_space:FeatureSpace",
    "split_dataset": "kestrel.utils.dataset_utils:split_dataset",
    "image_dataset_from_directory": "kestrel.utils.directory_datasets:image_dataset_from_directory",
    "text_dataset_from_directory": "kestrel.utils.directory_datasets:text_dataset_from_directory",
    "audio_dataset_from_directory": "kestrel.utils.directory_datasets:audio_dataset_from_directory",
    "timeseries_dataset_from_array":
        "kestrel.utils.timeseries_dataset:timeseries_dataset_from_array",
    "get_source_inputs": "kestrel.utils.graph_utils:get_source_inputs",
    "is_keras_tensor": "kestrel.backend:is_keras_tensor",
    "standardize_dtype": "kestrel.backend.dtypes:standardize_dtype",
    "enable_interactive_logging": "kestrel.config:enable_interactive_logging",
    "disable_interactive_logging": "kestrel.config:disable_interactive_logging",
    "is_interactive_logging_enabled": "kestrel.config:is_interactive_logging_enabled",
    "register_keras_serializable": "kestrel.saving:register_keras_serializable",
    "get_custom_objects": "kestrel.saving:get_custom_objects",
    "get_registered_name": "kestrel.saving:get_registered_name",
    "custom_object_scope": "kestrel.saving:custom_object_scope",
    "CustomObjectScope": "kestrel.saving:CustomObjectScope",
    "get_registered_object": "kestrel.saving:get_registered_object",
    "serialize_keras_object": "kestrel.saving.keras_objects:serialize_keras_object",
    "deserialize_keras_object": "kestrel.saving.keras_objects:deserialize_keras_object",
    "HDF5Matrix": "kestrel.utils.hdf5_matrix:HDF5Matrix",  # Keras 2
    "io_utils": "kestrel.utils.io_utils",  # Keras 2's module path, an alias (kestrel._aliases)
    "multi_gpu_model": "kestrel.utils.multi_gpu_utils:multi_gpu_model",  # Keras 2
    "SequenceEnqueuer": "kestrel.utils.enqueuers:SequenceEnqueuer",  # Keras 2
    "OrderedEnqueuer": "kestrel.utils.enqueuers:OrderedEnqueuer",  # Keras 2
    "GeneratorEnqueuer": "kestrel.utils.enqueuers:GeneratorEnqueuer",  # Keras 2
}


def __getattr__(name):
    if name in _LAZY_NAMES:
        module_name, _, attr = _LAZY_NAMES[name].partition(":")
        value = importlib.import_module(module_name)
        value = getattr(value, attr) if attr else value
        globals()[name] = value
        return value
    alias = _aliases.child_alias(__name__, name)
    if alias is not None:
        return alias
    raise AttributeError(f"module 'kestrel.utils' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_NAMES))
