import json

import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.layers import Dense, Input, InputLayer
from kestrel.models import Model, model_from_json, model_from_yaml


def _two_in_three_out():
    a1, a2 = Input(shape=(4,), name="a1"), Input(shape=(3,), name="a2")
    h1, h2 = Dense(5, name="h1")(a1), Dense(5, name="h2")(a2)
    b1 = Dense(2, name="b1")(h1)
    b2 = Dense(1, name="b2")(h2)
    b3 = Dense(3, name="b3")(h1 + h2)
    return Model(inputs=[a1, a2], outputs=[b1, b2, b3], name="m")


def test_docs_example_single_io():
    a = Input(shape=(32,))
    b = Dense(32)(a)
    model = Model(inputs=a, outputs=b)
    assert isinstance(model, torch.nn.Module)
    assert model.output_shape == (None, 32)
    assert isinstance(model.layers[0], InputLayer)
    out = model(torch.randn(5, 32))
    kernel, bias = model.layers[1].get_weights()
    np.testing.assert_allclose(out.detach().numpy(), np.zeros((5, 32)) + 0, atol=1e9)  # shape run
    x = np.random.rand(5, 32).astype("float32")
    np.testing.assert_allclose(model(torch.from_numpy(x)).detach().numpy(), x @ kernel + bias,
                               rtol=1e-5, atol=1e-6)


def test_multi_input_multi_output_and_dict_inputs():
    model = _two_in_three_out()
    x1, x2 = torch.randn(6, 4), torch.randn(6, 3)
    outs = model([x1, x2])
    assert [tuple(o.shape) for o in outs] == [(6, 2), (6, 1), (6, 3)]
    by_name = model({"a1": x1, "a2": x2})
    for a, b in zip(outs, by_name):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match='Missing data for input "a2"'):
        model({"a1": x1, "zz": x2})


def test_shared_layer_shares_weights():
    shared = Dense(4, name="shared")
    a, b = Input(shape=(3,)), Input(shape=(3,))
    model = Model([a, b], [shared(a), shared(b)])
    assert len(model.trainable_weights) == 2
    x = torch.randn(2, 3)
    o1, o2 = model([x, x])
    assert torch.equal(o1, o2)


def test_nested_model_as_layer():
    inner_in = Input(shape=(4,))
    inner = Model(inner_in, Dense(3, name="inner_dense")(inner_in), name="inner")
    x = Input(shape=(4,))
    outer = Model(x, Dense(2, name="outer_dense")(inner(x)), name="outer")
    assert outer.output_shape == (None, 2)
    assert outer.count_params() == (4 * 3 + 3) + (3 * 2 + 2)
    clone = Model.from_config(json.loads(json.dumps(outer.get_config())))
    clone.set_weights(outer.get_weights())
    data = torch.randn(3, 4)
    torch.testing.assert_close(clone(data), outer(data))


def test_config_json_yaml_round_trips_give_identical_predictions():
    model = _two_in_three_out()
    data = [torch.randn(4, 4), torch.randn(4, 3)]
    expected = model(data)
    for clone in (Model.from_config(model.get_config()), model_from_json(model.to_json()),
                  model_from_yaml(model.to_yaml())):
        clone.set_weights(model.get_weights())
        for a, b in zip(clone(data), expected):
            torch.testing.assert_close(a, b)


def test_disconnected_graph_is_a_clear_error():
    a, b = Input(shape=(3,)), Input(shape=(3,))
    out = Dense(2)(a + b)
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(inputs=a, outputs=out)


def test_duplicate_layer_names_rejected():
    a = Input(shape=(3,))
    x = Dense(2, name="same")(a)
    with pytest.raises(ValueError, match="used 2 times"):
        Model(a, Dense(2, name="same")(x))


def test_wrong_feature_size_names_layer():
    a = Input(shape=(64,))
    model = Model(a, Dense(2, name="hidden")(a))
    with pytest.raises(ValueError, match="expected last dimension .*64, got 60"):
        model(torch.randn(2, 60))


def test_get_layer_and_weights_errors():
    model = _two_in_three_out()
    assert model.get_layer("h1").name == "h1"
    assert model.get_layer(index=0).name == "a1"
    with pytest.raises(ValueError, match="No such layer"):
        model.get_layer("nope")
    weights = model.get_weights()
    weights[2] = np.zeros((7, 7), "float32")
    with pytest.raises(ValueError, match="'h2'.*\\(3, 5\\).*\\(7, 7\\)"):
        model.set_weights(weights)


def test_yaml_with_python_tag_is_refused():
    with pytest.raises(ValueError, match="safe_load"):
        model_from_yaml("!!python/object/apply:os.system ['echo hi']")


def test_unknown_class_in_config_names_it():
    config = {"class_name": "NotALayer", "config": {}}
    with pytest.raises(ValueError, match="NotALayer.*custom_objects"):
        keras.models.model_from_config(config)


def test_torch_hooks_on_inner_layers_fire_on_every_call():
    inputs = Input(shape=(4,))
    hidden = Dense(3, activation="relu", name="hidden")
    model = Model(inputs, Dense(2)(hidden(inputs)))
    seen = []
    hidden.register_forward_pre_hook(lambda module, args: seen.append("pre"))
    hidden.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    model(torch.ones(5, 4))
    model.predict(np.ones((3, 4), "float32"))
    assert seen == ["pre", (5, 3), "pre", (3, 3)]


def test_global_module_hooks_see_every_layer_call():
    model = keras.Sequential([Input(shape=(4,)), Dense(3, name="d1"), Dense(2, name="d2")])
    seen = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: seen.append(getattr(module, "name", None)))
    try:
        model(torch.ones(2, 4))
    finally:
        handle.remove()
    assert seen[:2] == ["d1", "d2"]


def test_models_and_merging_layers_keep_hooks_and_masks_on_the_lean_call():
    a, b = Input(shape=(3,), name="a"), Input(shape=(3,), name="b")
    merge = keras.layers.Concatenate(name="merge")
    model = Model([a, b], Dense(2, name="out")(merge([a, b])))
    seen = []
    merge.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    xa, xb = torch.ones(4, 3), torch.zeros(4, 3)
    plain = model([xa, xb])
    torch.testing.assert_close(model({"a": xa, "b": xb}), plain)
    assert seen == [(4, 6), (4, 6)]
    assert getattr(plain, "_keras_mask", None) is None
    xa._keras_mask = torch.tensor([True, False, True, False])
    xb._keras_mask = torch.tensor([True, False, False, True])
    masked = model([xa, xb])
    torch.testing.assert_close(masked, plain)
    assert masked._keras_mask.tolist() == [True, False, True, True]
