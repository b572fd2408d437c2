"""`kestrel.models.clone_model` against Keras 3's `keras.models.clone_model`."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402
from kestrel.models import clone_model  # noqa: E402


def _sequential(k):
    return k.Sequential([k.Input((4,), name="x"), k.layers.Dense(3, name="d1"),
                         k.layers.Dropout(0.1, name="drop"), k.layers.Dense(2, name="d2")],
                        name="seq")


def _functional(k):
    a, b = k.Input((4,), name="a"), k.Input((2,), name="b")
    shared = k.layers.Dense(3, name="shared")
    h = k.layers.Concatenate(name="cat")([shared(a), k.layers.Dense(3, name="side")(b)])
    return k.Model({"a": a, "b": b}, [k.layers.Dense(1, name="out")(h), shared(a)], name="fn")


def _summary(model):
    return [(type(layer).__name__, layer.name) for layer in model.layers]


@pytest.mark.parametrize("build", [_sequential, _functional])
def test_same_architecture_new_weights(build):
    ours, theirs = build(kestrel), build(keras)
    calls_ours, calls_theirs = [], []
    clone = clone_model(ours, clone_function=lambda l: calls_ours.append(l.name) or
                        l.__class__.from_config(l.get_config()))
    reference = keras.models.clone_model(
        theirs, clone_function=lambda l: calls_theirs.append(l.name) or
        l.__class__.from_config(l.get_config()))
    assert _summary(clone) == _summary(reference)
    assert calls_ours == calls_theirs and clone.name == reference.name
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in ours.get_weights()]
    for new, old in zip(clone.weights, ours.weights):
        assert new is not old
        if old.ndim == 2:  # kernels are re-drawn, not copied
            assert not np.allclose(new.detach().numpy(), old.detach().numpy())
    assert len(clone.weights) == len(ours.weights)  # a shared layer stays shared


def test_functional_outputs_agree_after_copying_weights():
    model = _functional(kestrel)
    clone = clone_model(model)
    clone.set_weights(model.get_weights())
    data = {"a": np.ones((2, 4), "float32"), "b": np.ones((2, 2), "float32")}
    for x, y in zip(model(data), clone(data)):
        np.testing.assert_allclose(x.detach().numpy(), y.detach().numpy())
    with torch.no_grad():
        clone.layers[2].kernel.add_(1.0)
    assert not np.allclose(model.get_weights()[0], clone.get_weights()[0])


def test_input_tensors_and_call_function():
    model = _functional(kestrel)
    inputs = {"a": kestrel.Input((4,), name="a2"), "b": kestrel.Input((2,), name="b2")}
    seen = []

    def call(layer, *args, **kwargs):
        seen.append(layer.name)
        return layer(*args, **kwargs)

    clone = clone_model(model, input_tensors=inputs, call_function=call)
    assert clone.inputs[0] is inputs["a"] and clone.inputs[1] is inputs["b"]
    assert sorted(set(seen)) == ["cat", "out", "shared", "side"] and seen.count("shared") == 2
    with pytest.raises(ValueError, match="call_function"):
        clone_model(_sequential(kestrel), call_function=call)


def test_sequential_input_tensors_and_compile():
    model = _sequential(kestrel)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    clone = clone_model(model, input_tensors=[kestrel.Input((4,))])
    assert clone.compiled and clone.layers[0].name == "d1"
    assert clone(np.ones((1, 4), "float32")).shape == (1, 2)
    with pytest.raises(ValueError, match="single tensor"):
        clone_model(model, input_tensors=[kestrel.Input((4,)), kestrel.Input((4,))])


def test_recursive_clones_nested_layers():
    inner = kestrel.Sequential([kestrel.Input((4,)), kestrel.layers.Dense(3, name="in_d")],
                               name="inner")
    x = kestrel.Input((4,))
    model = kestrel.Model(x, kestrel.layers.Dense(1, name="head")(inner(x)))
    seen = []

    def record(layer):
        seen.append(layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone_model(model, clone_function=record, recursive=True)
    assert seen == ["in_d", "head"]
    seen.clear()
    clone_model(model, clone_function=record)
    assert seen == ["inner", "head"]
