"""Keras 3 layouts: `.weights.h5` (by structure) and the `.keras` zip; resuming training."""
import io
import json
import zipfile

import h5py
import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.layers import Dense, Input, Layer
from kestrel.layers.regularization import Dropout
from kestrel.saving import api
from kestrel.saving.weight_paths import keras3_groups


class TorchLayoutDense(Layer):
    """Dense storing its kernel as torch's (out, in): exercises layout conversion on save."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        transpose = (lambda t: t.t().contiguous(), lambda t: t.t())
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), layout=transpose)
        self.bias = self.add_weight("bias", (self.units,), "zeros")

    def call(self, x):
        return torch.nn.functional.linear(x, self.kernel, self.bias)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Cell(Layer):
    """A layer holding sublayers as a private attribute, a public alias and a list."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._query = Dense(2, name="q")
        self.stack = [Dense(2, name="s0"), Dense(2, name="s1")]

    @property
    def query(self):
        return self._query

    def call(self, x):
        return self.stack[1](self.stack[0](self._query(x)))


def mlp(name="mlp", units=3):
    return keras.Sequential([Input(shape=(5,)), Dense(4, activation="relu", name="hidden"),
                             Dropout(0.5), TorchLayoutDense(units, name="head")], name=name)


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(32, 5)).astype("float32"), rng.normal(size=(32, 3)).astype("float32")


def test_weights_h5_layout_is_keyed_by_class_and_position(tmp_path):
    model = mlp()
    api.save_weights(model, tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5", "r") as f:
        assert set(f["layers"]) == {"dense", "dropout", "torch_layout_dense"}
        assert f["layers/dense/vars"].attrs["name"] == "hidden"
        assert len(f["layers/dropout/vars"]) == 0
        assert f["vars"].attrs["name"] == "mlp"
        head = model.layers[2]
        assert f["layers/torch_layout_dense/vars/0"].shape == (4, 3)  # Keras layout, not torch
        np.testing.assert_array_equal(f["layers/torch_layout_dense/vars/0"][()],
                                      head.get_weights()[0])
        assert "optimizer" not in f


def test_functional_inputs_sublayers_and_shared_layers_get_keras_paths():
    a, b = Input(shape=(3,), name="a"), Input(shape=(3,), name="b")
    shared = Dense(3, name="shared")
    cell = Cell(name="cell")
    model = keras.Model([a, b], [cell(shared(a)), shared(b)])
    paths = {path: layer.name for path, layer in keras3_groups(model)}
    assert paths["layers/input_layer"] == "a" and paths["layers/input_layer_1"] == "b"
    assert paths["layers/dense"] == "shared"
    assert paths["layers/cell/query"] == "q"  # the public alias wins, as in Keras
    assert paths["layers/cell/stack/dense"] == "s0"
    assert paths["layers/cell/stack/dense_1"] == "s1"
    assert list(paths.values()).count("shared") == 1


def test_nested_model_paths():
    inner = keras.Sequential([Input(shape=(3,)), Dense(2, name="in_dense")], name="inner")
    x = Input(shape=(3,))
    model = keras.Model(x, Dense(1, name="out")(inner(x)))
    paths = {path: layer.name for path, layer in keras3_groups(model)}
    assert paths["layers/sequential/layers/dense"] == "in_dense"
    assert paths["layers/dense"] == "out"


def test_load_by_structure_ignores_layer_names(tmp_path):
    source, target = mlp(), mlp(name="renamed")
    for layer in target.layers:
        layer.name = layer.name + "_x"
    api.save_weights(source, tmp_path / "m.weights.h5")
    target.load_weights(tmp_path / "m.weights.h5")
    x, _ = data()
    np.testing.assert_allclose(target.predict(x, verbose=0), source.predict(x, verbose=0))


def test_structure_mismatch_raises_or_warns(tmp_path):
    api.save_weights(mlp(), tmp_path / "m.weights.h5")
    wrong = mlp(units=7)
    before = wrong.get_weights()
    with pytest.raises(ValueError, match=r"layer 'head'.*\(4, 7\).*\(4, 3\)"):
        wrong.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(wrong.get_weights()[0], before[0])  # nothing half-loaded
    with pytest.warns(UserWarning, match="head"):
        wrong.load_weights(tmp_path / "m.weights.h5", skip_mismatch=True)
    np.testing.assert_array_equal(wrong.get_weights()[2], before[2])
    shorter = keras.Sequential([Input(shape=(5,)), Dense(4)])
    with pytest.raises(ValueError, match="no layer of the model matches"):
        shorter.load_weights(tmp_path / "m.weights.h5")


def test_optimizer_vars_written_when_built_and_ignored_by_load_weights(tmp_path):
    x, y = data()
    model = mlp()
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    api.save_weights(model, tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5", "r") as f:
        group = f["optimizer/vars"]
        assert group["0"].dtype == np.int32 and group["0"][()] == 4
        assert len(group) == 2 + 2 * 4  # iteration, learning_rate, (m, v) per weight
        assert group["6"].shape == (4, 3)  # head kernel momentum, in Keras layout
    fresh = mlp()
    fresh.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_zip_members_config_and_round_trip(tmp_path):
    x, y = data()
    model = mlp()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    api.save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert archive.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert set(json.loads(archive.read("metadata.json"))) == {"keras_version", "date_saved"}
        config = json.loads(archive.read("config.json"))
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        assert "optimizer" in weights and "layers" in weights
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    assert config["compile_config"]["loss"] == "mse"
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    loaded = api.load_model(tmp_path / "m.keras", custom_objects={
        "TorchLayoutDense": TorchLayoutDense})
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == 4
    api.save_model(model, tmp_path / "bare.keras", include_optimizer=False)
    bare = api.load_model(tmp_path / "bare.keras",
                          custom_objects={"TorchLayoutDense": TorchLayoutDense})
    assert not bare.compiled


def test_load_weights_from_a_keras_archive(tmp_path):
    model = mlp()
    api.save_model(model, tmp_path / "m.keras")
    fresh = mlp()
    fresh.load_weights(tmp_path / "m.keras")
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_training_resumes_exactly_after_keras_and_h5_round_trips(tmp_path):
    x, y = data()
    torch.manual_seed(0)
    model = mlp()
    model.layers[1].rate = 0.0  # dropout off: the three runs see the same computation
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    api.save_model(model, tmp_path / "m.keras")
    api.save_model(model, tmp_path / "m.h5")
    custom = {"TorchLayoutDense": TorchLayoutDense}
    copies = [api.load_model(tmp_path / "m.keras", custom_objects=custom),
              api.load_model(tmp_path / "m.h5", custom_objects=custom)]
    for copy in copies:
        copy.layers[1].rate = 0.0
    for m in [model, *copies]:
        m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for copy in copies:
        assert copy.optimizer.iterations == model.optimizer.iterations == 8
        for a, b in zip(model.get_weights(), copy.get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-6)


class Net(keras.Model):
    """A subclassed model: its weights are found through its attributes."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.encoder = Dense(units, activation="relu")
        self.decoder = Dense(2)

    def call(self, x):
        return self.decoder(self.encoder(x))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_subclassed_model_round_trip(tmp_path, suffix):
    x, _ = data()
    model = Net(units=4)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, x[:, :2], epochs=1, batch_size=8, verbose=0)
    api.save_model(model, tmp_path / f"net{suffix}")
    loaded = api.load_model(tmp_path / f"net{suffix}", custom_objects={"Net": Net})
    assert isinstance(loaded, Net) and loaded.encoder.units == 4
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == 4
    paths = [path for path, _ in keras3_groups(model)]
    assert paths == ["", "decoder", "encoder"]
