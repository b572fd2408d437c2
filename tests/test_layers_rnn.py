import json

import numpy as np
import pytest
import torch

from kestrel.layers import Input, Layer
from kestrel.layers.rnn import (
    GRU, LSTM, RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells)
from kestrel.registry.object_registry import register_keras_serializable
from tests import rnn_reference as ref
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(3)
MIXED_MASK = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 0, 1]], bool)


def randomize(layer, scale=0.5):
    weights = [RNG.normal(size=w.shape).astype(np.float32) * scale for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


@register_keras_serializable("kestrel_tests")
class MinimalRNNCell(Layer):
    """The custom cell of Keras' RNN documentation: h' = x @ k + h @ r."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units))
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, self.units))

    def call(self, inputs, states):
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_harness_single_and_stacked_cells():
    run_layer_test(RNN, {"cell": LSTMCell(3)}, input_shape=(2, 4, 5),
                   expected_output_shape=(2, 3), expected_num_trainable_weights=3)
    run_layer_test(RNN, {"cell": [SimpleRNNCell(3), LSTMCell(4)], "return_state": True},
                   input_shape=(2, 4, 5), expected_output_shape=[(2, 4), (2, 3), (2, 4), (2, 4)],
                   expected_num_trainable_weights=6)
    run_layer_test(RNN, {"cell": MinimalRNNCell(2), "return_sequences": True},
                   input_shape=(2, 4, 5), expected_output_shape=(2, 4, 2),
                   expected_num_trainable_weights=2)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_mask_keeps_states_and_repeats_outputs(go_backwards, zero_output_for_mask):
    x = RNG.normal(size=(3, 6, 4)).astype(np.float32)
    layer = RNN(GRUCell(5), return_sequences=True, return_state=True, go_backwards=go_backwards,
                zero_output_for_mask=zero_output_for_mask)
    layer(torch.tensor(x))
    weights = randomize(layer)
    out, h = layer(torch.tensor(x), mask=torch.tensor(MIXED_MASK))
    mask = MIXED_MASK[:, ::-1] if go_backwards else MIXED_MASK
    reading = x[:, ::-1] if go_backwards else x
    expected, (eh,) = ref.run(ref.gru_step(*weights), reading, [np.zeros((3, 5))], mask,
                              zero_output_for_mask=zero_output_for_mask)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(h.detach().numpy(), eh, atol=1e-5)


def test_mask_from_keras_mask_attribute_and_propagation():
    x = torch.randn(3, 6, 4)
    x._keras_mask = torch.tensor(MIXED_MASK)
    sequences = LSTM(3, return_sequences=True)
    out = sequences(x)
    assert torch.equal(out._keras_mask, x._keras_mask)
    explicit = sequences(x.clone(), mask=torch.tensor(MIXED_MASK))
    torch.testing.assert_close(out, explicit)
    assert getattr(LSTM(3)(x), "_keras_mask", None) is None


@pytest.mark.parametrize("make", [lambda: LSTM(3, stateful=True),
                                  lambda: RNN(GRUCell(3), stateful=True)])
def test_stateful_carries_states_between_calls(make):
    x = torch.randn(2, 8, 4)
    whole, halves = make(), make()
    whole(x[:, :1]), halves(x[:, :1])
    whole.reset_states(), halves.reset_states()
    halves.set_weights(randomize(whole))
    whole_seq = whole(x)
    halves(x[:, :4])
    torch.testing.assert_close(halves(x[:, 4:]), whole_seq, atol=1e-6, rtol=1e-6)
    halves.reset_states()
    assert all(torch.count_nonzero(s) == 0 for s in halves.states)
    with pytest.raises(ValueError, match=r"stateful.*2 samples.*input shape=\(3, 8, 4\)"):
        halves(torch.randn(3, 8, 4))


def test_initial_state_and_return_state():
    x = torch.randn(2, 5, 3)
    layer = LSTM(4, return_state=True)
    out, h, c = layer(x)
    torch.testing.assert_close(out, h)
    h0, c0 = torch.randn(2, 4), torch.randn(2, 4)
    out2, _, _ = layer(x, initial_state=[h0, c0])
    assert not torch.allclose(out, out2)
    with pytest.raises(ValueError, match="expects 2 initial state tensor"):
        layer(x, initial_state=[h0])


def test_cell_step_matches_numpy_and_caches_dropout_mask():
    cell = LSTMCell(3, dropout=0.5, seed=4)
    x, h, c = torch.randn(2, 4), torch.randn(2, 3), torch.randn(2, 3)
    out, (h1, c1) = cell(x, [h, c])
    kernel, recurrent, bias = cell.get_weights()
    expected, (eh, ec) = ref.lstm_step(kernel, recurrent, bias)(x.numpy(), [h.numpy(), c.numpy()])
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(c1.detach().numpy(), ec, atol=1e-6)
    first = cell(x, [h, c], training=True)[0]
    torch.testing.assert_close(cell(x, [h, c], training=True)[0], first)
    cell.reset_dropout_mask()
    assert not torch.allclose(cell(x, [h, c], training=True)[0], first)


def test_training_follows_module_mode():
    x = torch.randn(3, 5, 4)
    layer = RNN(SimpleRNNCell(4, dropout=0.5))
    inference = layer(x)
    layer.train()
    assert not torch.allclose(layer(x), inference)
    layer.eval()
    torch.testing.assert_close(layer(x), inference)


def test_symbolic_shapes():
    inputs = Input((None, 5))
    assert LSTM(3, return_sequences=True)(inputs).shape == (None, None, 3)
    out, h = GRU(2, return_state=True)(inputs)
    assert out.shape == (None, 2) and h.shape == (None, 2)
    stacked = RNN([LSTMCell(3), GRUCell(2)], return_state=True)(Input((7, 5)))
    out, (h1, c1), h2 = stacked
    assert [t.shape for t in (out, h1, c1, h2)] == [(None, 2), (None, 3), (None, 3), (None, 2)]
    with pytest.raises(ValueError, match="cannot unroll"):
        LSTM(3, unroll=True)(inputs)


def test_config_round_trips_including_keras2():
    layer = RNN([LSTMCell(3), MinimalRNNCell(2)], go_backwards=True, name="stack")
    config = json.loads(json.dumps(layer.get_config()))
    assert config["cell"]["class_name"] == "StackedRNNCells"
    clone = RNN.from_config(config)
    assert isinstance(clone.cell, StackedRNNCells) and clone.go_backwards
    assert [type(c).__name__ for c in clone.cell.cells] == ["LSTMCell", "MinimalRNNCell"]
    keras2 = {"name": "rnn", "trainable": True, "dtype": "float32", "return_sequences": False,
              "return_state": False, "go_backwards": False, "stateful": False,
              "unroll": False, "time_major": False,
              "cell": {"class_name": "LSTMCell", "config": {
                  "name": "lstm_cell", "trainable": True, "dtype": "float32", "units": 3,
                  "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
                  "unit_forget_bias": True, "dropout": 0.0, "recurrent_dropout": 0.0,
                  "implementation": 2}}}
    old = RNN.from_config(keras2)
    assert isinstance(old.cell, LSTMCell) and old(torch.zeros(2, 4, 5)).shape == (2, 3)


def test_errors():
    with pytest.raises(ValueError, match="cell must have a `call` method"):
        RNN(object())
    with pytest.raises(ValueError, match="units must be a positive integer.*units=0"):
        LSTMCell(0)
    layer = RNN(SimpleRNNCell(2), name="plain")
    with pytest.raises(ValueError, match=r"plain.*\(batch, timesteps, features\).*\(3, 4\)"):
        layer(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="every cell needs"):
        StackedRNNCells([SimpleRNNCell(2), object()])
