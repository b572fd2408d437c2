"""Files written by real Keras 3 load in Kestrel and reproduce Keras' own predictions."""
import importlib
import json
import pkgutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import kestrel.layers
from kestrel.saving import api
from kestrel.saving.model_config import model_from_json
from kestrel.saving.weight_paths import keras3_groups, own_weights

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
MODELS = {m["name"]: m for m in MANIFEST["models"]}
ROUTES = ["keras", "h5", "h5_no_compile", "json+weights.h5", "json+h5"]

# Every layer family registers its classes when imported.
for _module in pkgutil.walk_packages(kestrel.layers.__path__, "kestrel.layers."):
    importlib.import_module(_module.name)


def _arrays(name: str, kind: str, entry: dict):
    """The fixture's x or y: an array, or a list in the manifest's input/output order."""
    single = FIXTURES / f"{name}.{kind}.npy"
    if single.exists():
        return np.load(single)
    keys = [item["name"] for item in entry["inputs" if kind == "x" else "outputs"]]
    with np.load(FIXTURES / f"{name}.{kind}.npz") as archive:
        return [archive[key] for key in keys]


def _load(name: str, route: str):
    if route == "keras":
        return api.load_model(FIXTURES / f"{name}.keras")
    if route in ("h5", "h5_no_compile"):
        return api.load_model(FIXTURES / f"{name}.h5", compile=route == "h5")
    model = model_from_json((FIXTURES / f"{name}.json").read_text())
    weights = f"{name}.weights.h5" if route == "json+weights.h5" else f"{name}.h5"
    model.load_weights(FIXTURES / weights)
    return model


def _cases():
    for name, entry in MODELS.items():
        if name == "byname_target":
            continue
        for route in ROUTES:
            yield pytest.param(name, route, id=f"{name}-{route}")


@pytest.mark.parametrize("name,route", list(_cases()))
def test_fixture_reproduces_keras_predictions(name, route):
    entry = MODELS[name]
    model = _load(name, route)
    predicted = model.predict(_arrays(name, "x", entry), verbose=0)
    expected = _arrays(name, "y", entry)
    if not isinstance(expected, list):
        predicted, expected = [predicted], [expected]
    assert len(predicted) == len(expected)
    for got, want in zip(predicted, expected):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=0)
    assert model.count_params() == entry["n_params"]
    if route in ("keras", "h5"):
        assert model.compiled and model.optimizer.iterations > 0


@pytest.mark.parametrize("name", [n for n in MODELS if n != "byname_target"])
def test_fixture_optimizer_state_is_restored_from_keras(name):
    model = api.load_model(FIXTURES / f"{name}.keras")
    with h5py.File(FIXTURES / f"{name}.weights.h5", "r") as f:
        saved = f["optimizer/vars"]
        values = [saved[str(i)][()] for i in range(len(saved))]
    from kestrel.saving.keras_weights import optimizer_state

    state = [value for _, value in optimizer_state(model)]
    assert len(state) == len(values)
    for got, want in zip(state, values):
        np.testing.assert_allclose(got, want, atol=1e-7)


def test_byname_target_loads_matching_layers_and_warns_for_head():
    entry = MODELS["byname_target"]
    model = model_from_json((FIXTURES / "byname_target.json").read_text())
    model.load_weights(FIXTURES / "byname_target.init.weights.h5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(FIXTURES / entry["source_weights_file"], by_name=True,
                           skip_mismatch=True)
    messages = [str(w.message) for w in caught]
    assert messages and all("head" in m for m in messages)
    assert any("(16, 4)" in m and "(32, 10)" in m for m in messages)
    with h5py.File(FIXTURES / "byname_target.expected.weights.h5", "r") as f:
        for path, layer in keras3_groups(model):
            for index, attr in enumerate(own_weights(layer)):
                np.testing.assert_array_equal(getattr(layer, attr).detach().numpy(),
                                              f[f"{path}/vars/{index}"][()])
    predicted = model.predict(np.load(FIXTURES / "byname_target.x.npy"), verbose=0)
    np.testing.assert_allclose(predicted, np.load(FIXTURES / "byname_target.y.npy"), atol=1e-5)
