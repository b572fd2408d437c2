"""Keras 2 (tf-keras) files load by every route, including call nodes that pass tensors as kwargs."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import kestrel as keras
from kestrel.layers import Dense, GaussianNoise, Input, MultiHeadAttention
from kestrel.models.functional_config import functional_from_config
from kestrel.saving import api
from kestrel.saving.model_config import model_from_json

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "keras2"
SHARED = HERE.parents[1] / "shared" / "keras-fixtures" / "k2"
ROUTES = ["json+_weights.h5", "load_model(.h5)", "json+.h5"]
# Keras 2 keeps MultiHeadAttention's build shapes (and one masking flag) in its config.
MHA_KERAS2_KEYS = ("query_shape", "key_shape", "value_shape", "softmax_robust_masking")


def _mha_takes_keras2_keys() -> bool:
    try:
        MultiHeadAttention.from_config({"num_heads": 1, "key_dim": 2, "query_shape": [None, 2, 2],
                                        "key_shape": [None, 2, 2], "value_shape": [None, 2, 2],
                                        "softmax_robust_masking": False})
    except ValueError:
        return False
    return True


MHA_PENDING = pytest.mark.xfail(
    not _mha_takes_keras2_keys(), strict=True, raises=ValueError,
    reason="MultiHeadAttention.from_config does not take Keras 2's query/key/value_shape yet")


def _manifest(folder: Path) -> dict:
    return {m["name"]: m for m in json.loads((folder / "manifest.json").read_text())["models"]}


def _arrays(folder: Path, entry: dict, kind: str):
    single = folder / f"{entry['name']}.{kind}.npy"
    if single.exists():
        return [np.load(single)]
    with np.load(folder / f"{entry['name']}.{kind}.npz") as archive:
        return [archive[item["name"]] for item in entry["inputs" if kind == "x" else "outputs"]]


def _load(folder: Path, name: str, route: str, config_text: str | None = None):
    if route == "load_model(.h5)":
        return api.load_model(folder / f"{name}.h5", compile=False)
    model = model_from_json(config_text or (folder / f"{name}.json").read_text())
    model.load_weights(folder / (f"{name}_weights.h5" if route == "json+_weights.h5"
                                 else f"{name}.h5"))
    return model


def _check_predictions(folder: Path, entry: dict, model) -> None:
    x = _arrays(folder, entry, "x")
    predicted = model.predict(x[0] if len(x) == 1 else x, verbose=0)
    predicted = predicted if isinstance(predicted, list) else [predicted]
    expected = _arrays(folder, entry, "y")
    assert len(predicted) == len(expected)
    for got, want in zip(predicted, expected):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=0)
    assert model.count_params() == entry["n_params"]


def _cases(folder: Path):
    for name, entry in _manifest(folder).items():
        if name == "byname_target":
            continue
        uses_mha = any(layer.startswith("MultiHeadAttention:") for layer in entry["layers"])
        for route in ROUTES:
            yield pytest.param(name, route, id=f"{name}-{route}",
                               marks=[MHA_PENDING] if uses_mha else [])


@pytest.mark.parametrize("name,route", list(_cases(FIXTURES)))
def test_keras2_fixture_reproduces_keras_predictions(name, route):
    _check_predictions(FIXTURES, _manifest(FIXTURES)[name], _load(FIXTURES, name, route))


def _without_mha_keras2_keys(text: str) -> str:
    config = json.loads(text)
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "MultiHeadAttention":
            for key in MHA_KERAS2_KEYS:
                layer["config"].pop(key, None)
    return json.dumps(config)


@pytest.mark.parametrize("route", ["json+_weights.h5", "json+.h5"])
@pytest.mark.parametrize("name", ["func_nodes", "func_layernorm_mha"])
def test_tensor_kwargs_replay(name, route):
    """The node forms alone (MHA's Keras 2 build-shape keys taken out of its config)."""
    text = _without_mha_keras2_keys((FIXTURES / f"{name}.json").read_text())
    model = _load(FIXTURES, name, route, text)
    _check_predictions(FIXTURES, _manifest(FIXTURES)[name], model)


def test_func_nodes_graph_has_every_call_form():
    nodes = {layer["name"]: layer["inbound_nodes"] for layer in
             json.loads((FIXTURES / "func_nodes.json").read_text())["config"]["layers"]}
    assert nodes["mha"][0][0][3]["value"] == ["proj", 1, 0]  # shared layer, second call
    assert nodes["cross"][0][0][3]["mask"] == [["keep", 0, 0], ["keep", 0, 0]]
    assert nodes["drop"][0][0][3] == {"training": False}
    assert nodes["out"] == [[["sub", 1, 0, {}]]]  # nested model: Keras 2 counts from 1
    model = model_from_json(_without_mha_keras2_keys((FIXTURES / "func_nodes.json").read_text()))
    mha = model.get_layer("mha")
    proj = model.get_layer("proj")
    query, value = (node.output_tensors[0] for node in proj._inbound_nodes[-2:])
    call = mha._inbound_nodes[-1]
    assert call.call_args[0] is query and call.call_kwargs["value"] is value
    assert call.call_kwargs["key"] is model.get_layer("tokens").output_tensor
    assert call.call_kwargs["return_attention_scores"] is True


def test_byname_loads_matching_layers_only():
    entry = _manifest(FIXTURES)["byname_target"]
    model = model_from_json((FIXTURES / "byname_target.json").read_text())
    model.load_weights(FIXTURES / "byname_target_init_weights.h5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(FIXTURES / entry["source_weights_file"], by_name=True,
                           skip_mismatch=True)
    assert any("head" in str(w.message) for w in caught)
    expected = model_from_json((FIXTURES / "byname_target.json").read_text())
    expected.load_weights(FIXTURES / "byname_target_expected_weights.h5")
    for got, want in zip(model.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(got, want)
    _check_predictions(FIXTURES, entry, model)


def _tiny_config(kwargs: dict) -> dict:
    """A Keras 2 functional config: GaussianNoise called on `x` with the given kwargs."""
    return {"name": "tiny", "layers": [
        {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 3], "dtype": "float32", "name": "x"}},
        {"class_name": "Dense", "name": "d", "inbound_nodes": [[["x", 0, 0, {}]]],
         "config": {"name": "d", "units": 3}},
        {"class_name": "GaussianNoise", "name": "noise",
         "inbound_nodes": [[["d", 0, 0, kwargs]]], "config": {"name": "noise", "stddev": 1.0}},
    ], "input_layers": [["x", 0, 0]], "output_layers": [["noise", 0, 0]]}


def test_plain_lists_and_unknown_triples_stay_values(monkeypatch):
    monkeypatch.setattr(GaussianNoise, "call", lambda self, inputs, **kwargs: inputs)
    kwargs = {"shape": [None, 1, 8], "label": ["not_a_layer", 0, 0], "late": ["d", 3, 0],
              "pair": ["d", 0], "nested": {"ref": ["d", 0, 0], "flag": [True, 0, 0]}}
    model = functional_from_config(keras.Model, _tiny_config(kwargs))
    seen = model.get_layer("noise")._inbound_nodes[-1].call_kwargs
    assert seen["shape"] == [None, 1, 8] and seen["label"] == ["not_a_layer", 0, 0]
    assert seen["late"] == ["d", 3, 0] and seen["pair"] == ["d", 0]  # no such node / no triple
    assert seen["nested"]["flag"] == [True, 0, 0]
    assert seen["nested"]["ref"] is model.get_layer("d").output


def test_shared_layer_second_call_and_training_kwarg_in_keras2_lists():
    config = _tiny_config({"training": True})
    config["layers"][1]["inbound_nodes"].append([["x", 0, 0, {}]])  # d's node 1
    config["layers"].append({"class_name": "Add", "name": "add", "config": {"name": "add"},
                             "inbound_nodes": [[["d", 1, 0, {}], ["noise", 0, 0, {}]]]})
    config["output_layers"] = [["add", 0, 0]]
    model = functional_from_config(keras.Model, config)
    x = np.ones((2, 3), "float32")
    dense = model.get_layer("d")(x).detach().numpy()
    noise = model.predict(x, verbose=0) - 2 * dense  # d(x) + noise(d(x))
    assert np.abs(noise).max() > 1e-3  # training=True kept: the noise is applied
    assert len(model.get_layer("d")._inbound_nodes) >= 2


def test_keras3_form_shared_layer_round_trips():
    a = Input((3,), name="a")
    shared = Dense(2, name="shared")
    model = keras.Model(a, shared(shared(Dense(2, name="first")(a))))
    again = keras.Model.from_config(model.get_config())
    x = np.arange(6, dtype="float32").reshape(2, 3)
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("route", ROUTES + ["by_name"])
def test_shared_reference_k2_loads(route):
    if not SHARED.exists():
        pytest.skip("../shared/keras-fixtures absent: independent reference set")
    manifest = _manifest(SHARED)
    for name, entry in manifest.items():
        if name == "byname_target" or route == "by_name":
            continue
        text = (SHARED / f"{name}.json").read_text()
        if "MultiHeadAttention:mha" in entry["layers"] and not _mha_takes_keras2_keys():
            if route == "load_model(.h5)":
                continue  # the .h5 config cannot be edited on the way in
            text = _without_mha_keras2_keys(text)
        _check_predictions(SHARED, entry, _load(SHARED, name, route, text))
    if route == "by_name":
        model = model_from_json((SHARED / "byname_target.json").read_text())
        model.load_weights(SHARED / "byname_target_init_weights.h5")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(SHARED / "seq_mlp_weights.h5", by_name=True, skip_mismatch=True)
        _check_predictions(SHARED, manifest["byname_target"], model)
