import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from kestrel.layers import Dense, Input
from kestrel.layers.merging import (
    Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average,
    concatenate, dot, maximum, minimum, multiply, subtract)
from kestrel.models import Model
from tests.layer_harness import run_layer_test

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"

ELEMENTWISE = [(Add, lambda xs: sum(xs)), (Average, lambda xs: sum(xs) / len(xs)),
               (Multiply, lambda xs: np.prod(xs, axis=0)),
               (Maximum, lambda xs: np.max(xs, axis=0)), (Minimum, lambda xs: np.min(xs, axis=0))]


def _arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype("float32") for s in shapes]


@pytest.mark.parametrize("cls", [Add, Subtract, Multiply, Average, Maximum, Minimum])
def test_elementwise_harness(cls):
    run_layer_test(cls, {}, input_shape=[(2, 3), (2, 3)], expected_output_shape=(2, 3),
                   expected_num_trainable_weights=0)


@pytest.mark.parametrize("cls,ref", ELEMENTWISE)
def test_elementwise_numbers_three_inputs(cls, ref):
    xs = _arrays((2, 4, 3), (2, 4, 3), (2, 4, 3))
    out = cls()([torch.as_tensor(x) for x in xs])
    np.testing.assert_allclose(out.numpy(), ref(xs), rtol=1e-6)


def test_subtract_numbers_and_needs_two_inputs():
    a, b = _arrays((2, 3), (2, 3))
    np.testing.assert_allclose(Subtract()([torch.as_tensor(a), torch.as_tensor(b)]).numpy(), a - b)
    with pytest.raises(ValueError, match="Subtract 'sub3' should be called on exactly 2 inputs"):
        Subtract(name="sub3")([Input((3,)), Input((3,)), Input((3,))])


def test_broadcasting_rules():
    a, b = _arrays((2, 3), (2, 4, 3))
    out = Add()([torch.as_tensor(a), torch.as_tensor(b)])  # lower rank: axes added after batch
    np.testing.assert_allclose(out.numpy(), a[:, None, :] + b)
    c, d = _arrays((2, 1, 3), (2, 4, 1))
    np.testing.assert_allclose(Maximum()([torch.as_tensor(c), torch.as_tensor(d)]).numpy(),
                               np.maximum(c, d))
    assert Add()([Input((3,)), Input((4, 3))]).shape == (None, 4, 3)
    assert Add()([Input((1, 3)), Input((4, 1))]).shape == (None, 4, 3)
    assert Add()([Input((None, 3)), Input((5, 3))]).shape == (None, None, 3)


def test_merge_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Add 'plus': inputs have incompatible shapes \(3,\) "
                                         r"and \(4,\)"):
        Add(name="plus")([Input((3,)), Input((4,))])
    with pytest.raises(ValueError, match="should be called on a list"):
        Add()(Input((3,)))
    with pytest.raises(ValueError, match="different batch sizes"):
        Add()([torch.ones(2, 3), torch.ones(3, 3)])


def test_masks_are_or_merged_when_every_input_has_one():
    a, b = torch.ones(2, 3, 4), torch.ones(2, 3, 4)
    a._keras_mask = torch.tensor([[True, False, False]] * 2)
    b._keras_mask = torch.tensor([[False, True, False]] * 2)
    assert Add()([a, b])._keras_mask.tolist() == [[True, True, False]] * 2
    c = torch.ones(2, 3, 4)
    assert not hasattr(Add()([a, c]), "_keras_mask")


def test_maximum_and_multiply_mask_semantics():
    xs = _arrays((2, 3, 2), (2, 3, 2), seed=5)
    masks = [np.array([[True, False, True]] * 2), np.array([[False, False, True]] * 2)]
    tensors = []
    for x, m in zip(xs, masks):
        t = torch.as_tensor(x)
        t._keras_mask = torch.as_tensor(m)
        tensors.append(t)
    m0, m1 = (m[..., None] for m in masks)
    # Maximum: a masked-out entry takes the other operand's value.
    x1 = np.where(m1, xs[1], xs[0])
    x0 = np.where(m0, xs[0], x1)
    np.testing.assert_allclose(Maximum()(tensors).numpy(), np.maximum(x0, x1))
    # Multiply: masked-out entries count as 1, and entries masked everywhere become 0.
    prod = np.where(m0, xs[0], 1) * np.where(m1, xs[1], 1)
    out = Multiply()(tensors)
    np.testing.assert_allclose(out.numpy(), np.where(m0 | m1, prod, 0))
    assert out._keras_mask.tolist() == (masks[0] | masks[1]).tolist()


def test_concatenate_harness_numbers_and_axis():
    run_layer_test(Concatenate, {}, input_shape=[(2, 3), (2, 4)], expected_output_shape=(2, 7))
    run_layer_test(Concatenate, {"axis": 1}, input_shape=[(2, 3, 4), (2, 5, 4)],
                   expected_output_shape=(2, 8, 4))
    a, b = _arrays((2, 3, 4), (2, 5, 4))
    out = Concatenate(axis=1)([torch.as_tensor(a), torch.as_tensor(b)])
    np.testing.assert_array_equal(out.numpy(), np.concatenate([a, b], axis=1))
    assert Concatenate(axis=1).get_config()["axis"] == 1
    assert Concatenate()([Input((3,)), Input((None,))]).shape == (None, None)


def test_concatenate_shape_error_names_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Concatenate 'cat' requires inputs with matching "
                                         r"shapes except for the concatenation axis -1\. "
                                         r"Received: input_shape=\[\(None, 3, 4\), "
                                         r"\(None, 5, 2\)\]"):
        Concatenate(name="cat")([Input((3, 4)), Input((5, 2))])
    with pytest.raises(ValueError, match="matching shapes"):
        Concatenate()([Input((3, 4)), Input((3,))])
    with pytest.raises(ValueError, match="axis must be an integer"):
        Concatenate(axis="last")


def test_concatenate_masks():
    a, b = torch.ones(2, 3, 2), torch.ones(2, 3, 4)
    a._keras_mask = torch.tensor([[True, False, False], [False, False, False]])
    out = Concatenate()([a, b])
    assert out._keras_mask.tolist() == [[True, True, True]] * 2  # b unmasked: all True
    c, d = torch.ones(2, 2, 3), torch.ones(2, 3, 3)
    c._keras_mask = torch.tensor([[True, False]] * 2)
    d._keras_mask = torch.tensor([[False, True, True]] * 2)
    assert Concatenate(axis=1)([c, d])._keras_mask.tolist() == [[True, False, False, True,
                                                                   True]] * 2


def test_dot_harness_and_numbers():
    run_layer_test(Dot, {"axes": 1}, input_shape=[(2, 3), (2, 3)], expected_output_shape=(2, 1))
    run_layer_test(Dot, {"axes": [2, 2]}, input_shape=[(2, 5, 3), (2, 4, 3)],
                   expected_output_shape=(2, 5, 4))
    a, b = _arrays((2, 3), (2, 3))
    np.testing.assert_allclose(Dot(axes=1)([torch.as_tensor(a), torch.as_tensor(b)]).numpy(),
                               (a * b).sum(1, keepdims=True), rtol=1e-6)
    x, y = _arrays((2, 3, 5), (2, 4, 3))
    out = Dot(axes=(1, 2))([torch.as_tensor(x), torch.as_tensor(y)])
    np.testing.assert_allclose(out.numpy(), np.einsum("bdn,bmd->bnm", x, y), rtol=1e-5)
    v, w = _arrays((2, 3), (2, 3, 4))
    np.testing.assert_allclose(Dot(axes=1)([torch.as_tensor(v), torch.as_tensor(w)]).numpy(),
                               np.einsum("bd,bdm->bm", v, w), rtol=1e-5)
    assert Dot(axes=(1, 2))([Input((3, 5)), Input((4, 3))]).shape == (None, 5, 4)


def test_dot_normalize_is_cosine_similarity():
    a, b = _arrays((4, 6), (4, 6))
    out = Dot(axes=-1, normalize=True)([torch.as_tensor(a), torch.as_tensor(b)]).numpy()
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(out[:, 0], cos, rtol=1e-5)
    assert Dot(axes=[1, 1], normalize=True).get_config()["axes"] == [1, 1]


def test_dot_errors():
    with pytest.raises(ValueError, match="axes must be an int or a list of two ints"):
        Dot(axes=(1, 2, 3))
    with pytest.raises(ValueError, match=r"Dot 'd': incompatible sizes 3 .* and 4"):
        Dot(axes=1, name="d")([Input((3,)), Input((4,))])
    with pytest.raises(ValueError, match="batch axis 0"):
        Dot(axes=0)([Input((3,)), Input((3,))])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        Dot(axes=1)([Input((3,))] * 3)


def test_functional_forms_in_a_model():
    a, b = Input((4,), name="a"), Input((4,), name="b")
    outputs = [add([a, b]), subtract([a, b]), multiply([a, b]), average([a, b]),
               maximum([a, b]), minimum([a, b]), concatenate([a, b]), dot([a, b], axes=1)]
    model = Model([a, b], outputs)
    x, y = _arrays((3, 4), (3, 4))
    got = [o.detach().numpy() for o in model([torch.as_tensor(x), torch.as_tensor(y)])]
    expected = [x + y, x - y, x * y, (x + y) / 2, np.maximum(x, y), np.minimum(x, y),
                np.concatenate([x, y], 1), (x * y).sum(1, keepdims=True)]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-6)
    assert [o.shape for o in model.outputs][-2:] == [(None, 8), (None, 1)]


def test_concatenate_model_matches_keras_fixture():
    config = json.loads((FIXTURES / "func_multi_io.json").read_text())["config"]
    layer_configs = {l["config"]["name"]: l for l in config["layers"]}
    groups = {"dense_a": "dense", "dense_b": "dense_1", "trunk": "dense_2",
              "out_reg": "dense_3", "out_cls": "dense_4"}
    dense = {name: Dense.from_config(layer_configs[name]["config"]) for name in groups}
    concat = Concatenate.from_config(layer_configs["concat"]["config"])
    a, b = Input((8,), name="a"), Input((4,), name="b")
    trunk = dense["trunk"](concat([dense["dense_a"](a), dense["dense_b"](b)]))
    model = Model([a, b], [dense["out_reg"](trunk), dense["out_cls"](trunk)])
    with h5py.File(FIXTURES / "func_multi_io.weights.h5", "r") as f:
        for name, group in groups.items():
            dense[name].set_weights([f[f"layers/{group}/vars/{i}"][()] for i in range(2)])
    x, y = np.load(FIXTURES / "func_multi_io.x.npz"), np.load(FIXTURES / "func_multi_io.y.npz")
    reg, cls = model([torch.as_tensor(x["a"]), torch.as_tensor(x["b"])])
    np.testing.assert_allclose(reg.detach().numpy(), y["out_reg"], atol=1e-5)
    np.testing.assert_allclose(cls.detach().numpy(), y["out_cls"], atol=1e-6)


def test_a_subclass_computing_its_own_mask_gets_it_on_unmasked_inputs():
    class MarkedConcatenate(Concatenate):
        def compute_mask(self, inputs, previous_mask=None):
            return inputs[0][:, 0] > 0  # a mask even when no input has one

    layer = MarkedConcatenate()
    a = torch.tensor([[1.0], [-1.0]])
    out = layer([a, a])  # builds
    out = layer([a, a])  # built: the lean call must not skip compute_mask here
    assert out._keras_mask.tolist() == [True, False]
    assert not MarkedConcatenate._unmasked_in_unmasked_out
    assert Concatenate._unmasked_in_unmasked_out
