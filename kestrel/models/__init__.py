"""Models: `Model` (functional and subclassing), `Sequential`, and model-level loading."""
from kestrel.models.cloning import clone_model
from kestrel.models.functional import Functional
from kestrel.models.model import Model
from kestrel.models.sequential import Sequential
from kestrel.saving.model_config import model_from_config, model_from_json, model_from_yaml


def __getattr__(name):
    # load_model / save_model need h5py; imported on first use to keep `import kestrel` light.
    if name in ("load_model", "save_model"):
        from kestrel.saving import api

        return getattr(api, name)
    raise AttributeError(f"module 'kestrel.models' has no attribute {name!r}")
