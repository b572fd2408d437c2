"""Models: `Model` (functional and subclassing), `Sequential`, and model-level loading."""
from kestrel.models.cloning import clone_model
from kestrel.models.functional import Functional
from kestrel.models.model import Model
from kestrel.models.sequential import Sequential


def __getattr__(name):
    # Loading lives in kestrel.saving, which stands above models: imported on first use.
    if name in ("load_model", "save_model"):
        from kestrel.saving import api

        return getattr(api, name)
    if name in ("model_from_config", "model_from_json", "model_from_yaml"):
        from kestrel.saving import model_config

        return getattr(model_config, name)
    raise AttributeError(f"module 'kestrel.models' has no attribute {name!r}")
