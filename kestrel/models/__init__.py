"""Models: `Model` (functional and subclassing), `Sequential`, and model-level loading."""
from kestrel.models.functional import Functional
from kestrel.models.model import Model
from kestrel.models.sequential import Sequential
from kestrel.saving.api import load_model, save_model
from kestrel.saving.model_config import model_from_config, model_from_json, model_from_yaml
