import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from kestrel.layers import Dense
from kestrel.layers.rnn import LSTM, RNN, LSTMCell
from tests import rnn_reference as ref
from tests.layer_harness import run_layer_test

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"
RNG = np.random.default_rng(7)


def randomize(layer, scale=0.5):
    weights = [RNG.normal(size=w.shape).astype(np.float32) * scale for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


@pytest.mark.parametrize("kwargs, out_shape", [
    ({"units": 3}, (2, 3)),
    ({"units": 3, "return_sequences": True, "go_backwards": True}, (2, 4, 3)),
    ({"units": 3, "return_state": True}, [(2, 3), (2, 3), (2, 3)]),
    ({"units": 3, "dropout": 0.3, "recurrent_dropout": 0.2, "seed": 1}, (2, 3)),
    ({"units": 3, "use_bias": False, "unit_forget_bias": False}, (2, 3)),
])
def test_harness(kwargs, out_shape):
    count = 3 if kwargs.get("use_bias", True) else 2
    run_layer_test(LSTM, kwargs, input_shape=(2, 4, 5), expected_output_shape=out_shape,
                   expected_num_trainable_weights=count, expected_num_non_trainable_weights=0)


@pytest.mark.parametrize("use_cudnn", ["auto", False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_matches_numpy_equations(use_cudnn, go_backwards):
    x = RNG.normal(size=(3, 6, 4)).astype(np.float32)
    h0, c0 = (RNG.normal(size=(3, 5)).astype(np.float32) for _ in range(2))
    layer = LSTM(5, return_sequences=True, return_state=True, go_backwards=go_backwards,
                 use_cudnn=use_cudnn)
    layer(torch.tensor(x))
    weights = randomize(layer)
    out, h, c = layer(torch.tensor(x), initial_state=[torch.tensor(h0), torch.tensor(c0)])
    expected, (eh, ec) = ref.run(ref.lstm_step(*weights), x, [h0, c0], go_backwards=go_backwards)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(h.detach().numpy(), eh, atol=1e-5)
    np.testing.assert_allclose(c.detach().numpy(), ec, atol=1e-5)


def grads_of(layer, x, weights, seed=0):
    layer.set_weights(weights)
    x = x.clone().requires_grad_()
    out = layer(x)
    torch.manual_seed(seed)
    (out * torch.randn(out.shape)).sum().backward()
    return out.detach(), [x.grad] + [w.grad for w in layer.trainable_weights]


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_and_generic_paths_agree_forward_and_backward(return_sequences, go_backwards):
    x = torch.randn(4, 7, 3)
    kwargs = {"return_sequences": return_sequences, "go_backwards": go_backwards}
    fast, slow = LSTM(6, **kwargs), RNN(LSTMCell(6), **kwargs)
    fast(x), slow(x)
    weights = randomize(fast)
    out_fast, grads_fast = grads_of(fast, x, weights)
    out_slow, grads_slow = grads_of(slow, x, weights)
    torch.testing.assert_close(out_fast, out_slow, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_real_keras_stacked_lstm_fixture():
    x = torch.tensor(np.load(FIXTURES / "seq_lstm.x.npy"))
    expected = np.load(FIXTURES / "seq_lstm.y.npy")
    config = json.loads((FIXTURES / "seq_lstm.json").read_text())["config"]["layers"]
    first, second = (LSTM.from_config(c["config"]) for c in config[1:3])
    head = Dense(2)
    head(second(first(x)))
    with h5py.File(FIXTURES / "seq_lstm.weights.h5", "r") as f:
        for layer, group in [(first, "lstm/cell"), (second, "lstm_1/cell"), (head, "dense")]:
            variables = f[f"layers/{group}/vars"]
            layer.set_weights([variables[str(i)][()] for i in range(len(variables))])
    assert (first.units, first.return_sequences, second.units) == (16, True, 8)
    np.testing.assert_allclose(head(second(first(x))).detach().numpy(), expected, atol=1e-5)


def test_weights_keras_layout_outside_torch_layout_inside():
    layer = LSTM(4, unit_forget_bias=True)
    layer(torch.zeros(1, 2, 3))
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (3, 16) and recurrent.shape == (4, 16) and bias.shape == (16,)
    np.testing.assert_array_equal(bias, [0] * 4 + [1] * 4 + [0] * 8)
    assert tuple(layer.cell.kernel.shape) == (16, 3)
    np.testing.assert_array_equal(layer.cell.kernel.detach().numpy(), kernel.T)
    assert [n for n, _ in layer.named_parameters()] == [
        "cell.kernel", "cell.recurrent_kernel", "cell.bias"]


def test_dropout_only_in_training_and_seeded():
    x = torch.randn(3, 5, 4)
    plain = LSTM(4)
    plain(x)
    weights = randomize(plain)
    dropped = LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=3)
    dropped(x)
    dropped.set_weights(weights)
    torch.testing.assert_close(dropped(x), plain(x))
    train_a = dropped(x, training=True)
    assert not torch.allclose(train_a, plain(x))
    again = LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=3)
    again(x)
    again(x)  # as Keras, each inference call draws (unused) masks: two, as `dropped` had
    again.set_weights(weights)
    torch.testing.assert_close(again(x, training=True), train_a)


def test_input_dropout_same_on_fused_and_generic_path():
    x = torch.randn(3, 5, 4)
    fast, slow = LSTM(4, dropout=0.4, seed=5), LSTM(4, dropout=0.4, seed=5, use_cudnn=False)
    fast(x), slow(x)
    slow.set_weights(randomize(fast))
    torch.testing.assert_close(fast(x, training=True), slow(x, training=True))


def test_keras_configs_load():
    keras3 = json.loads((FIXTURES / "seq_lstm.json").read_text())["config"]["layers"][1]["config"]
    layer = LSTM.from_config(keras3)
    assert layer.name == "lstm" and layer.units == 16 and layer.unit_forget_bias
    keras2 = {
        "name": "lstm_2", "trainable": True, "dtype": "float32", "return_sequences": False,
        "return_state": False, "go_backwards": False, "stateful": False, "unroll": False,
        "time_major": False, "units": 3, "activation": "tanh",
        "recurrent_activation": "sigmoid", "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "recurrent_initializer": {"class_name": "Orthogonal",
                                  "config": {"gain": 1.0, "seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "unit_forget_bias": True,
        "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
        "activity_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None,
        "bias_constraint": None, "dropout": 0.0, "recurrent_dropout": 0.0, "implementation": 2}
    old = LSTM.from_config(keras2)
    assert old.units == 3 and old(torch.zeros(2, 4, 5)).shape == (2, 3)
    config = json.loads(json.dumps(layer.get_config()))
    assert "cell" not in config and config["units"] == 16 and config["seed"] is None
    assert set(keras3) <= set(config)


def test_errors():
    with pytest.raises(ValueError, match="units must be a positive integer.*units=0"):
        LSTM(0)
    with pytest.raises(ValueError, match="use_cudnn"):
        LSTM(2, use_cudnn="yes")
    layer = LSTM(2, name="my_lstm")
    with pytest.raises(ValueError, match=r"my_lstm.*\(batch, timesteps, features\).*\(4, 3\)"):
        layer(torch.zeros(4, 3))
    layer(torch.zeros(4, 5, 3))
    with pytest.raises(ValueError, match=r"my_lstm.*\(batch, timesteps, 3\).*\(4, 5, 2\)"):
        layer(torch.zeros(4, 5, 2))
    strict = LSTM(2, activation="relu", use_cudnn=True)
    with pytest.raises(ValueError, match="use_cudnn=True"):
        strict(torch.zeros(1, 2, 3))
