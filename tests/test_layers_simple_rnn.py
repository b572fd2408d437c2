import json

import numpy as np
import pytest
import torch

from kestrel.layers.rnn import RNN, SimpleRNN, SimpleRNNCell
from tests import rnn_reference as ref
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(5)


def randomize(layer, scale=0.5):
    weights = [RNG.normal(size=w.shape).astype(np.float32) * scale for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


@pytest.mark.parametrize("kwargs, out_shape", [
    ({"units": 3}, (2, 3)),
    ({"units": 3, "return_sequences": True, "activation": "relu"}, (2, 4, 3)),
    ({"units": 3, "return_state": True, "dropout": 0.2, "recurrent_dropout": 0.2}, [(2, 3)] * 2),
])
def test_harness(kwargs, out_shape):
    run_layer_test(SimpleRNN, kwargs, input_shape=(2, 4, 5), expected_output_shape=out_shape,
                   expected_num_trainable_weights=3, expected_num_non_trainable_weights=0)


@pytest.mark.parametrize("activation, np_activation", [
    ("tanh", np.tanh), ("relu", lambda v: np.maximum(v, 0)), ("sigmoid", ref.sigmoid)])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_matches_numpy_equations(activation, np_activation, go_backwards):
    x = RNG.normal(size=(3, 6, 4)).astype(np.float32)
    layer = SimpleRNN(5, activation=activation, return_sequences=True, go_backwards=go_backwards)
    layer(torch.tensor(x))
    kernel, recurrent, bias = randomize(layer)
    expected, _ = ref.run(ref.simple_rnn_step(kernel, recurrent, bias, np_activation), x,
                          [np.zeros((3, 5))], go_backwards=go_backwards)
    np.testing.assert_allclose(layer(torch.tensor(x)).detach().numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("return_sequences, go_backwards", [(False, False), (True, True),
                                                            (True, False), (False, True)])
def test_fused_and_generic_paths_agree_forward_and_backward(activation, return_sequences,
                                                            go_backwards):
    x = torch.randn(4, 7, 3)
    kwargs = {"return_sequences": return_sequences, "go_backwards": go_backwards}
    fast = SimpleRNN(6, activation=activation, **kwargs)
    slow = RNN(SimpleRNNCell(6, activation=activation), **kwargs)
    fast(x), slow(x)
    weights = randomize(fast)
    results = []
    for layer in (fast, slow):
        layer.set_weights(weights)
        inputs = x.clone().requires_grad_()
        out = layer(inputs)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        results.append([out.detach(), inputs.grad] + [w.grad for w in layer.trainable_weights])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_config_round_trip_and_keras_names():
    layer = SimpleRNN(4, activation="relu", dropout=0.1, seed=3, name="rnn_a")
    config = json.loads(json.dumps(layer.get_config()))
    assert config["activation"] == "relu" and config["dropout"] == 0.1 and config["seed"] == 3
    clone = SimpleRNN.from_config(config)
    assert clone.name == "rnn_a" and clone.cell.name == "simple_rnn_cell"
    assert clone.activation is layer.activation


def test_errors():
    with pytest.raises(ValueError, match="SimpleRNN: units must be a positive integer"):
        SimpleRNN(0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        SimpleRNN(2, seed="x")
