import json

import numpy as np
import pytest
import torch

from kestrel.layers import Input
from kestrel.layers.rnn import GRU, LSTM, RNN, Bidirectional, SimpleRNN, SimpleRNNCell, fused
from tests import rnn_reference as ref
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(9)
MERGE = {"concat": lambda a, b: np.concatenate([a, b], -1), "sum": np.add,
         "mul": np.multiply, "ave": lambda a, b: (a + b) / 2}


def randomize(layer, scale=0.5):
    weights = [RNG.normal(size=w.shape).astype(np.float32) * scale for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


@pytest.mark.parametrize("kwargs, out_shape", [
    ({"layer": LSTM(3)}, (2, 6)),
    ({"layer": GRU(3, return_sequences=True), "merge_mode": "sum"}, (2, 4, 3)),
    ({"layer": SimpleRNN(3), "merge_mode": None}, [(2, 3), (2, 3)]),
    ({"layer": LSTM(3, return_state=True)}, [(2, 6)] + [(2, 3)] * 4),
    ({"layer": RNN(SimpleRNNCell(3), return_sequences=True), "merge_mode": "mul"}, (2, 4, 3)),
])
def test_harness(kwargs, out_shape):
    run_layer_test(Bidirectional, kwargs, input_shape=(2, 4, 5), expected_output_shape=out_shape,
                   expected_num_trainable_weights=6, expected_num_non_trainable_weights=0)


@pytest.mark.parametrize("merge_mode", sorted(MERGE))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("use_cudnn", ["auto", False])
def test_matches_numpy(merge_mode, return_sequences, use_cudnn):
    x = RNG.normal(size=(3, 5, 4)).astype(np.float32)
    layer = Bidirectional(LSTM(2, return_sequences=return_sequences, use_cudnn=use_cudnn),
                          merge_mode=merge_mode)
    layer(torch.tensor(x))
    weights = randomize(layer)
    zeros = [np.zeros((3, 2))] * 2
    forward, _ = ref.run(ref.lstm_step(*weights[:3]), x, zeros)
    backward, _ = ref.run(ref.lstm_step(*weights[3:]), x, zeros, go_backwards=True)
    if return_sequences:
        expected = MERGE[merge_mode](forward, backward[:, ::-1])
    else:
        expected = MERGE[merge_mode](forward[:, -1], backward[:, -1])
    np.testing.assert_allclose(layer(torch.tensor(x)).detach().numpy(), expected, atol=1e-5)


def test_mask_forces_zero_outputs_in_sequences():
    x = RNG.normal(size=(2, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    layer = Bidirectional(GRU(2, return_sequences=True))
    layer(torch.tensor(x))
    weights = randomize(layer)
    zeros = [np.zeros((2, 2))]
    forward, _ = ref.run(ref.gru_step(*weights[:3]), x, zeros, mask, zero_output_for_mask=True)
    backward, _ = ref.run(ref.gru_step(*weights[3:]), x, zeros, mask, go_backwards=True,
                          zero_output_for_mask=True)
    out = layer(torch.tensor(x), mask=torch.tensor(mask))
    expected = np.concatenate([forward, backward[:, ::-1]], -1)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    assert torch.equal(out._keras_mask, torch.tensor(mask))


@pytest.mark.parametrize("make", [lambda: LSTM(3, return_sequences=True, return_state=True),
                                  lambda: GRU(3, return_state=True)])
def test_one_bidirectional_kernel_matches_two_layers(make, monkeypatch):
    modes = []
    original = fused.run_bidirectional
    monkeypatch.setattr(fused, "run_bidirectional",
                        lambda *a: modes.append(1) or original(*a))
    x = torch.randn(3, 6, 4)
    fast, slow = Bidirectional(make()), Bidirectional(make())
    slow.forward_layer.use_cudnn = slow.backward_layer.use_cudnn = False
    fast(x), slow(x)
    weights = randomize(fast)
    results = []
    for layer in (fast, slow):
        layer.set_weights(weights)
        inputs = x.clone().requires_grad_()
        states = [torch.randn(3, 3, generator=torch.Generator().manual_seed(i))
                  for i in range(len(layer.forward_layer.state_size) * 2)]
        outputs = layer(inputs, initial_state=states)
        sum((o * torch.linspace(-1, 1, o.numel()).reshape(o.shape)).sum()
            for o in outputs).backward()
        results.append([o.detach() for o in outputs] + [inputs.grad]
                       + [w.grad for w in layer.trainable_weights])
    assert modes == [1, 1]
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_names_weight_order_and_initial_weights():
    layer = Bidirectional(LSTM(2, name="enc"))
    layer(torch.zeros(1, 3, 4))
    assert (layer.forward_layer.name, layer.backward_layer.name) == ("forward_enc", "backward_enc")
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    names = [n for n, _ in layer.named_parameters()]
    assert names[:3] == ["forward_layer.cell.kernel", "forward_layer.cell.recurrent_kernel",
                         "forward_layer.cell.bias"] and names[3].startswith("backward_layer")
    weights = [np.full(w.shape, i, np.float32) for i, w in enumerate(layer.get_weights())]
    preset = Bidirectional(LSTM(2), weights=weights)
    preset(torch.zeros(1, 3, 4))
    for got, want in zip(preset.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


def test_config_round_trip_and_keras2_config():
    layer = Bidirectional(SimpleRNN(3, return_sequences=True), merge_mode="ave")
    config = json.loads(json.dumps(layer.get_config()))
    clone = Bidirectional.from_config(config)
    assert clone.merge_mode == "ave" and clone.forward_layer.name == layer.forward_layer.name
    assert clone.backward_layer.go_backwards
    keras2 = {"name": "bidirectional", "trainable": True, "dtype": "float32",
              "merge_mode": "concat",
              "layer": {"class_name": "LSTM", "config": {
                  "name": "lstm", "units": 2, "return_sequences": False, "time_major": False,
                  "implementation": 2, "go_backwards": False, "stateful": False}}}
    old = Bidirectional.from_config(keras2)
    assert (old.forward_layer.name, old.backward_layer.name) == ("forward_lstm", "backward_lstm")
    assert old(torch.zeros(2, 3, 4)).shape == (2, 4)


def test_stateful_reset_and_symbolic_shapes():
    layer = Bidirectional(LSTM(2, stateful=True))
    layer(torch.randn(2, 3, 4))
    assert len(layer.states) == 4 and any(torch.count_nonzero(s) for s in layer.states)
    layer.reset_states()
    assert all(torch.count_nonzero(s) == 0 for s in layer.states)
    with pytest.raises(AttributeError, match="not stateful"):
        Bidirectional(LSTM(2)).reset_states()
    out = Bidirectional(GRU(3, return_sequences=True), merge_mode=None)(Input((None, 4)))
    assert [t.shape for t in out] == [(None, None, 3), (None, None, 3)]


def test_errors():
    with pytest.raises(ValueError, match="merge_mode must be one of.*merge_mode='max'"):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="layer must be a Layer instance"):
        Bidirectional("lstm")
    with pytest.raises(ValueError, match="different `go_backwards`"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2))
    with pytest.raises(ValueError, match="the same `return_sequences`"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2, go_backwards=True, return_sequences=True))
