"""Configs in Keras 2's JSON form (tf-keras `to_json`) load into Kestrel models."""
import json

import numpy as np
import torch

from kestrel.models import Sequential, model_from_json


def _dense(name, units, activation="linear"):
    return {"class_name": "Dense", "config": {
        "name": name, "trainable": True, "dtype": "float32", "units": units,
        "activation": activation, "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
        "kernel_constraint": None, "bias_constraint": None}}


def test_keras2_sequential_json():
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 5], "dtype": "float32",
                                                "sparse": False, "ragged": False,
                                                "name": "input_1"}},
        _dense("hidden", 3, "relu"), _dense("head", 2)]},
        "keras_version": "2.13.1", "backend": "tensorflow"}
    model = model_from_json(json.dumps(config))
    assert isinstance(model, Sequential)
    assert [l.name for l in model.layers] == ["hidden", "head"]
    assert model.output_shape == (None, 2)


def test_keras2_functional_json_with_nested_sequential_node_index_1():
    sub = {"class_name": "Sequential", "config": {"name": "sub_model", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4],
                                                "dtype": "float32", "name": "sub_in"}},
        _dense("sub_dense_1", 3)]}, "name": "sub_model",
        "inbound_nodes": [[["input_1", 0, 0, {}]]]}
    out = {**_dense("out", 2), "name": "out", "inbound_nodes": [[["sub_model", 1, 0, {}]]]}
    config = {"class_name": "Functional", "config": {
        "name": "outer", "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4],
                                                    "dtype": "float32", "name": "input_1"},
             "name": "input_1", "inbound_nodes": []}, sub, out],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["out", 0, 0]]},
        "keras_version": "2.13.1", "backend": "tensorflow"}
    model = model_from_json(json.dumps(config))
    assert [l.name for l in model.layers] == ["input_1", "sub_model", "out"]
    x = np.random.rand(3, 4).astype("float32")
    kernel1, bias1, kernel2, bias2 = model.get_weights()
    expected = (x @ kernel1 + bias1) @ kernel2 + bias2
    np.testing.assert_allclose(model(torch.from_numpy(x)).detach().numpy(), expected,
                               rtol=1e-5, atol=1e-6)
