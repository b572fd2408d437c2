"""The fused path (torch's kernels) against the step-by-step loop: masks, states, gradients."""
import numpy as np
import pytest
import torch

from kestrel.layers.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell, fused

MASKS = {
    "right_padded": [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
    "left_padded": [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]],
    "block_and_empty": [[0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]],
    "all_kept": [[1] * 6] * 3,
}
PAIRS = {
    "lstm": (lambda **kw: LSTM(4, **kw), lambda **kw: RNN(LSTMCell(4), **kw)),
    "gru": (lambda **kw: GRU(4, **kw), lambda **kw: RNN(GRUCell(4), **kw)),
    "simple_rnn": (lambda **kw: SimpleRNN(4, **kw), lambda **kw: RNN(SimpleRNNCell(4), **kw)),
}


@pytest.fixture
def kernel_calls(monkeypatch):
    calls = []
    original = fused._kernel

    def spy(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)
    monkeypatch.setattr(fused, "_kernel", spy)
    return calls


def run_both(kind, mask, seed=0, **kwargs):
    """Outputs and gradients of the fused layer and of the generic RNN with equal weights."""
    torch.manual_seed(seed)
    x = torch.randn(3, 6, 2)
    states = [torch.randn(3, 4) for _ in range(2 if kind == "lstm" else 1)]
    results = []
    for make in PAIRS[kind]:
        layer = make(return_state=True, **kwargs)
        layer(x, mask=torch.tensor(mask, dtype=torch.bool))
        if results:
            layer.set_weights(weights)
        weights = layer.get_weights()
        inputs = x.clone().requires_grad_()
        outputs = layer(inputs, initial_state=states, mask=torch.tensor(mask, dtype=torch.bool))
        loss = sum((o * torch.linspace(-1, 1, o.numel()).reshape(o.shape)).sum()
                   for o in outputs)
        loss.backward()
        results.append([o.detach() for o in outputs] + [inputs.grad]
                       + [w.grad for w in layer.trainable_weights])
    return results


@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("options", [
    {"return_sequences": True}, {"return_sequences": True, "go_backwards": True},
    {"return_sequences": True, "zero_output_for_mask": True}, {"go_backwards": True}])
def test_masked_fused_path_matches_generic(kind, mask_name, options, kernel_calls):
    fast, slow = run_both(kind, MASKS[mask_name], **options)
    assert kernel_calls, "the fused kernel was not used"
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_scattered_mask_falls_back_to_the_loop(kernel_calls):
    scattered = [[1, 0, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 0, 1]]
    fast, slow = run_both("lstm", scattered, return_sequences=True)
    assert kernel_calls == []
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fully_masked_sample_keeps_initial_state_and_outputs_zeros():
    layer = LSTM(3, return_sequences=True, return_state=True)
    h0, c0 = torch.randn(2, 3), torch.randn(2, 3)
    mask = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    out, h, c = layer(torch.randn(2, 4, 5), initial_state=[h0, c0], mask=mask)
    torch.testing.assert_close(h[0], h0[0])
    torch.testing.assert_close(c[0], c0[0])
    assert torch.count_nonzero(out[0]) == 0
    torch.testing.assert_close(out[1, 2:], h[1].expand(2, 3))


def test_recurrent_dropout_uses_the_loop_only_in_training(kernel_calls):
    layer = GRU(3, recurrent_dropout=0.5)
    x = torch.randn(2, 4, 5)
    layer(x)
    assert kernel_calls == ["gru"]
    layer(x, training=True)
    assert kernel_calls == ["gru"]


def test_non_default_activation_uses_the_loop(kernel_calls):
    LSTM(3, recurrent_activation="hard_sigmoid")(torch.randn(2, 4, 5))
    SimpleRNN(3, activation="relu")(torch.randn(2, 4, 5))
    assert kernel_calls == ["rnn_relu"]


def test_double_precision_and_no_bias():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    fast = LSTM(4, use_bias=False, dtype="float64", return_sequences=True)
    slow = LSTM(4, use_bias=False, dtype="float64", return_sequences=True, use_cudnn=False)
    fast(x), slow(x)
    slow.set_weights(fast.get_weights())
    out = fast(x)
    assert out.dtype == torch.float64 and len(fast.get_weights()) == 2
    np.testing.assert_allclose(out.detach().numpy(), slow(x).detach().numpy(), atol=1e-12)
