"""Keras 2 HDF5 layouts: `save_weights(".h5")`, legacy whole-model `.h5`, by-name loading."""
import json
import warnings

import h5py
import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.layers import Dense, Input, Layer
from kestrel.layers.regularization import Dropout
from kestrel.saving import api, hdf5_legacy
from kestrel.saving.keras_weights import optimizer_state, restore_optimizer_state
from kestrel.saving.training_config import restore_compile
from kestrel.saving.weight_paths import legacy_weight_names


def mlp(name="mlp", hidden="hidden", head="head", head_units=3):
    return keras.Sequential([Input(shape=(5,)), Dense(4, activation="relu", name=hidden),
                             Dropout(0.5, name=f"{name}_drop"), Dense(head_units, name=head)],
                            name=name)


def two_input(name="two"):
    a, b = Input(shape=(3,), name="a"), Input(shape=(2,), name="b")
    outputs = [Dense(1, name="out")(Dense(4, name="da")(a)), Dense(2, name="db")(b)]
    return keras.Model([a, b], outputs, name=name)


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(32, 5)).astype("float32"), rng.normal(size=(32, 3)).astype("float32")


def test_save_weights_writes_keras2_layout(tmp_path):
    model = mlp()
    path = tmp_path / "w.h5"
    api.save_weights(model, path)
    with h5py.File(path, "r") as f:
        assert hdf5_legacy.read_names(f, "layer_names") == ["hidden", "mlp_drop", "head"]
        assert f.attrs["backend"] == "torch" and f.attrs["keras_version"]
        assert hdf5_legacy.read_names(f["hidden"], "weight_names") == ["hidden/kernel:0",
                                                                       "hidden/bias:0"]
        assert hdf5_legacy.read_names(f["mlp_drop"], "weight_names") == []
        np.testing.assert_array_equal(f["hidden/hidden/kernel:0"][()], model.get_weights()[0])
        assert "top_level_model_weights" in f


def test_functional_layer_names_include_inputs(tmp_path):
    model = two_input()
    api.save_weights(model, tmp_path / "w.hdf5")
    with h5py.File(tmp_path / "w.hdf5", "r") as f:
        assert set(hdf5_legacy.read_names(f, "layer_names")) == {"a", "b", "da", "db", "out"}
        assert hdf5_legacy.read_names(f["a"], "weight_names") == []


def test_round_trip_by_topology_ignores_names(tmp_path):
    source, target = mlp(), mlp(name="other", hidden="h2", head="h3")
    api.save_weights(source, tmp_path / "w.h5")
    target.load_weights(tmp_path / "w.h5")
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, _ = data()
    np.testing.assert_allclose(source.predict(x, verbose=0), target.predict(x, verbose=0))


def _write_keras2_file(path, hidden_kernel, hidden_bias, as_bytes=True, chunk=False):
    """A file as Keras 2 writes it: `:0` names, bytes attributes, datasets by path."""
    enc = (lambda s: s.encode()) if as_bytes else (lambda s: s)
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = enc("tensorflow")
        f.attrs["keras_version"] = enc("2.21.0")
        names = [enc("dense_1"), enc("dropout"), enc("dense_2")]
        if chunk:
            f.attrs["layer_names0"], f.attrs["layer_names1"] = names[:2], names[2:]
        else:
            f.attrs["layer_names"] = names
        f.create_group("dropout").attrs["weight_names"] = np.zeros((0,))
        g = f.create_group("dense_1")
        g.attrs["weight_names"] = [enc("dense_1/kernel:0"), enc("dense_1/bias:0")]
        g["dense_1/kernel:0"], g["dense_1/bias:0"] = hidden_kernel, hidden_bias
        g = f.create_group("dense_2")
        g.attrs["weight_names"] = [enc("dense_2/kernel:0"), enc("dense_2/bias:0")]
        g["dense_2/kernel:0"] = np.ones((4, 3), "float32")
        g["dense_2/bias:0"] = np.full((3,), 2.0, "float32")
        f.create_group("top_level_model_weights").attrs["weight_names"] = np.zeros((0,))


@pytest.mark.parametrize("as_bytes,chunk", [(True, False), (False, True)])
def test_reads_keras2_names_bytes_and_chunked_attributes(tmp_path, as_bytes, chunk):
    kernel = np.arange(20, dtype="float32").reshape(5, 4)
    _write_keras2_file(tmp_path / "k2.h5", kernel, np.ones(4, "float32"), as_bytes, chunk)
    model = mlp()
    model.load_weights(tmp_path / "k2.h5")
    got = model.get_weights()
    np.testing.assert_array_equal(got[0], kernel)
    np.testing.assert_array_equal(got[3], np.full((3,), 2.0))


def test_long_name_lists_are_chunked_and_read_back(tmp_path):
    names = [f"layer_{'x' * 200}_{i}" for i in range(400)]  # ~80 kB > the header limit
    with h5py.File(tmp_path / "a.h5", "w") as f:
        hdf5_legacy.write_names(f, "layer_names", names)
        assert "layer_names" not in f.attrs and "layer_names0" in f.attrs
        assert hdf5_legacy.read_names(f, "layer_names") == names


def test_by_name_skip_mismatch_warns_with_layer_and_shapes(tmp_path):
    source = mlp()
    api.save_weights(source, tmp_path / "w.h5")
    target = keras.Sequential([Input(shape=(5,)), Dense(4, name="hidden"),
                               Dense(6, name="extra"), Dense(2, name="head")])
    before = target.get_weights()
    with pytest.warns(UserWarning, match=r"named head.*\(6, 2\).*\(4, 3\)"):
        target.load_weights(tmp_path / "w.h5", by_name=True, skip_mismatch=True)
    after = target.get_weights()
    np.testing.assert_array_equal(after[0], source.get_weights()[0])  # hidden loaded
    for index in (2, 3, 4, 5):  # extra and head kept their values
        np.testing.assert_array_equal(after[index], before[index])
    with pytest.raises(ValueError, match=r"named head.*\(6, 2\).*\(4, 3\)"):
        target.load_weights(tmp_path / "w.h5", by_name=True)


def test_topology_mismatches_raise_clear_errors(tmp_path):
    api.save_weights(mlp(), tmp_path / "w.h5")
    bigger = keras.Sequential([Input(shape=(5,)), Dense(4), Dense(4), Dense(3)])
    with pytest.raises(ValueError, match="Layer count mismatch.*3 layers.*2"):
        bigger.load_weights(tmp_path / "w.h5")
    wrong = mlp(head_units=7)
    before = wrong.get_weights()
    with pytest.raises(ValueError, match=r"named head.*\(4, 7\).*\(4, 3\)"):
        wrong.load_weights(tmp_path / "w.h5")
    np.testing.assert_array_equal(wrong.get_weights()[0], before[0])  # nothing half-loaded
    with pytest.warns(UserWarning, match="head"):
        wrong.load_weights(tmp_path / "w.h5", skip_mismatch=True)
    np.testing.assert_array_equal(wrong.get_weights()[2], before[2])


class Block(Layer):
    """A layer with a sublayer, to check nested Keras 2 weight names."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.proj = Dense(2, name="proj")

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (2,), "ones")

    def call(self, x):
        return self.proj(x) * self.scale


def test_legacy_names_of_sublayers_and_nested_models():
    block = Block(name="block")
    block(torch.ones(1, 3))
    assert [n for n, _, _ in legacy_weight_names(block)] == [
        "block/scale:0", "block/proj/kernel:0", "block/proj/bias:0"]
    inner = keras.Sequential([Input(shape=(3,)), Dense(2, name="sub_dense")], name="sub_model")
    assert [n for n, _, _ in legacy_weight_names(inner)] == ["sub_dense/kernel:0",
                                                             "sub_dense/bias:0"]


def test_legacy_model_file_round_trip_with_optimizer(tmp_path):
    x, y = data()
    model = mlp()
    model.compile(optimizer=keras.optimizers.Adam(0.01, name="adam"), loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    api.save_model(model, tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Sequential" and "module" not in config
        assert all("module" not in layer for layer in config["config"]["layers"])
        training = json.loads(f.attrs["training_config"])
        assert training["loss"] == "mean_squared_error"
        assert training["optimizer_config"]["class_name"] == "Adam"
        names = hdf5_legacy.read_names(f["optimizer_weights"], "weight_names")
        assert names[:4] == ["adam/iteration", "adam/learning_rate",
                             "adam/mlp_hidden_kernel_momentum", "adam/mlp_hidden_kernel_velocity"]
        assert f[f"optimizer_weights/{names[0]}"][()] == 4
    loaded = api.load_model(tmp_path / "m.h5")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == 4
    assert loaded.optimizer.learning_rate == pytest.approx(0.01)
    assert not api.load_model(tmp_path / "m.h5", compile=False).compiled


def test_keras2_optimizer_state_without_learning_rate_variable():
    x, y = data()
    model = mlp()
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    values = [value for name, value in optimizer_state(model) if "learning_rate" not in name]
    fresh = mlp()
    fresh.set_weights(model.get_weights())
    fresh.compile(optimizer="adam", loss="mse")
    assert restore_optimizer_state(fresh, values)
    for a, b in zip(model.optimizer.get_weights(), fresh.optimizer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_restore_compile_accepts_keras2_and_keras3_forms():
    keras2 = {"loss": "mse", "metrics": [{"class_name": "MeanMetricWrapper",
                                          "config": {"name": "mae", "fn": "mean_absolute_error"}}],
              "weighted_metrics": None, "loss_weights": None,
              "optimizer_config": {"class_name": "Custom>Adam", "config": {
                  "name": "Adam", "learning_rate": 0.02, "decay": 0.0, "is_legacy_optimizer": False,
                  "jit_compile": True, "beta_1": 0.8, "use_ema": False}}}
    model = mlp()
    restore_compile(model, keras2)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.optimizer.learning_rate == pytest.approx(0.02) and model.optimizer.beta_1 == 0.8
    keras3 = {"optimizer": {"module": "keras.src.backend.torch.optimizers.torch_adam",
                            "class_name": "Adam", "registered_name": "Adam", "config": {
                                "name": "adam", "learning_rate": 0.001, "ema_momentum": 0.99,
                                "loss_scale_factor": None, "gradient_accumulation_steps": None,
                                "amsgrad": False}},
              "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
              "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}
    restore_compile(model, keras3)
    assert model.optimizer.name == "adam" and model.compiled
    with pytest.raises(ValueError, match="Unknown optimizer 'Mystery'.*custom_objects"):
        restore_compile(model, {"optimizer": {"class_name": "Mystery", "config": {}}})


def _keras2_dense(name, units, activation):
    return {"class_name": "Dense", "config": {
        "name": name, "trainable": True, "dtype": "float32", "units": units,
        "activation": activation, "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
        "bias_constraint": None}}


def test_keras2_whole_model_file_with_optimizer_state(tmp_path):
    """A legacy `.h5` as Keras 2 writes it: Keras 2 JSON, `:0` names, no learning_rate var."""
    rng = np.random.default_rng(1)
    k1, b1 = rng.normal(size=(5, 4)).astype("float32"), rng.normal(size=4).astype("float32")
    k2, b2 = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 5],
                                                "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "input_1"}},
        _keras2_dense("dense", 4, "relu"), _keras2_dense("dense_1", 3, "softmax")]},
        "keras_version": "2.21.0", "backend": "tensorflow"}
    training = {"loss": "sparse_categorical_crossentropy", "metrics": [["accuracy"]],
                "weighted_metrics": None, "loss_weights": None, "optimizer_config": {
                    "class_name": "Custom>Adam", "config": {
                        "name": "Adam", "weight_decay": None, "clipnorm": None,
                        "global_clipnorm": None, "clipvalue": None, "use_ema": False,
                        "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                        "jit_compile": True, "is_legacy_optimizer": False,
                        "learning_rate": 0.005, "beta_1": 0.9, "beta_2": 0.999,
                        "epsilon": 1e-07, "amsgrad": False}}}
    slots = {f"Adam/{s}/{layer}/{w}:0": rng.normal(size=shape).astype("float32")
             for layer, ws in (("dense", {"kernel": (5, 4), "bias": (4,)}),
                               ("dense_1", {"kernel": (4, 3), "bias": (3,)}))
             for w, shape in ws.items() for s in ("m", "v")}
    with h5py.File(tmp_path / "k2.h5", "w") as f:
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.21.0"
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps(training).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [b"dense", b"dense_1"]
        for layer, (k, b) in (("dense", (k1, b1)), ("dense_1", (k2, b2))):
            g = group.create_group(layer)
            g.attrs["weight_names"] = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
            g[f"{layer}/kernel:0"], g[f"{layer}/bias:0"] = k, b
        opt = f.create_group("optimizer_weights")
        order = ["Adam/m/dense/kernel:0", "Adam/v/dense/kernel:0", "Adam/m/dense/bias:0",
                 "Adam/v/dense/bias:0", "Adam/m/dense_1/kernel:0", "Adam/v/dense_1/kernel:0",
                 "Adam/m/dense_1/bias:0", "Adam/v/dense_1/bias:0"]
        opt.attrs["weight_names"] = [n.encode() for n in ["iteration:0"] + order]
        opt["iteration:0"] = np.int64(12)
        for name in order:
            opt[name] = slots[name]
    model = api.load_model(tmp_path / "k2.h5")
    x = rng.normal(size=(6, 5)).astype("float32")
    expected = np.maximum(x @ k1 + b1, 0) @ k2 + b2
    expected = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert model.optimizer.iterations == 12
    assert model.optimizer.learning_rate == pytest.approx(0.005)
    state = dict(optimizer_state(model))
    np.testing.assert_array_equal(state["Adam/sequential_dense_1_kernel_velocity"],
                                  slots["Adam/v/dense_1/kernel:0"])
