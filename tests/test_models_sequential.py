import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.layers import Dense, Input
from kestrel.models import Model, Sequential


def test_build_from_input_and_input_shape_argument():
    a = Sequential([Input(shape=(8,)), Dense(4), Dense(2)])
    b = Sequential([Dense(4, input_shape=(8,)), Dense(2)])
    for model in (a, b):
        assert model.built and model.output_shape == (None, 2)
        assert model.count_params() == 8 * 4 + 4 + 4 * 2 + 2
        assert len(model.layers) == 2


def test_deferred_build_on_first_call_and_add_pop():
    model = Sequential()
    model.add(Dense(4))
    model.add(Dense(3))
    assert not model.built
    out = model(torch.randn(2, 5))
    assert out.shape == (2, 3) and model.built
    popped = model.pop()
    assert popped.units == 3 and len(model.layers) == 1
    assert model(torch.randn(2, 5)).shape == (2, 4)


def test_from_config_round_trip():
    model = Sequential([Input(shape=(6,)), Dense(5, activation="relu"), Dense(1)])
    clone = Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = torch.randn(3, 6)
    torch.testing.assert_close(clone(x), model(x))
    assert isinstance(Model.from_config(_functional_config()), Model)


def _functional_config():
    a = Input(shape=(2,))
    return Model(a, Dense(1)(a)).get_config()


def test_duplicate_names_and_non_layers_rejected():
    model = Sequential([Dense(2, name="d")])
    with pytest.raises(ValueError, match="unique names"):
        model.add(Dense(2, name="d"))
    with pytest.raises(ValueError, match="Only instances"):
        model.add("dense")


def test_sequential_is_a_torch_module():
    model = Sequential([Input(shape=(3,)), Dense(2)])
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == 2
    assert set(model.state_dict()) == set(names)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.randn(4, 3)).pow(2).mean()
    loss.backward()
    opt.step()


def test_calling_a_model_on_numpy_arrays():
    model = Sequential([Dense(2)])
    x = np.random.rand(3, 4)  # float64, as NumPy makes it: cast to float32 like Keras
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 2) and out.dtype == torch.float32
