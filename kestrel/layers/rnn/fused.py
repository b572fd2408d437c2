"""The fast path: torch's fused recurrent kernels (`torch._VF.lstm`/`gru`/`rnn_tanh`/`rnn_relu`,
cuDNN on GPU) run directly on the cells' parameters, so gradients reach them as usual.

The cells store their weights in torch's layout (see `cell_base.py`), so nothing is converted per
call except LSTM/SimpleRNN's `bias_hh`, which is zeros (Keras has a single bias).

A mask is handled when every sample keeps one contiguous block of steps (right- or left-padded
sequences): the block is moved to the front, packed with `pack_padded_sequence` and the results
are moved back, reproducing Keras' rules for masked steps. Finding the blocks costs one small
device-to-host copy (torch needs the lengths on the host); other masks use the generic loop.
"""
from __future__ import annotations

import functools

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


def eligible(cell, training: bool) -> bool:
    """Whether the fused kernels compute `cell` exactly (recurrent dropout has no kernel)."""
    mode = getattr(cell, "fused_mode", None)
    if mode is None or mode() is None:
        return False
    return not (training and 0.0 < cell.recurrent_dropout < 1.0)


def _kernel(mode: str, inputs, hx: list, weights: list, has_biases: bool, batch_sizes=None,
            bidirectional: bool = False):
    """One `torch._VF` call; returns `(outputs, [h_n(, c_n)])`, finals `(dirs, batch, units)`.

    Under torch.compile the call stays outside the graph: AOTAutograd cannot trace the CPU
    kernel (`mkldnn_rnn_layer`), and the fused kernel is what makes recurrent layers fast.
    """
    run = _outside_graph() if torch.compiler.is_compiling() and \
        not torch.compiler.is_exporting() else _call_vf
    return run(mode, inputs, hx, weights, has_biases, batch_sizes, bidirectional)


def _call_vf(mode, inputs, hx, weights, has_biases, batch_sizes, bidirectional):
    if mode == "lstm" and _cpu_half_autocast(inputs):
        return _lstm_in_half(inputs, hx, weights, has_biases, batch_sizes, bidirectional)
    fn = getattr(torch._VF, mode)
    state = tuple(hx) if mode == "lstm" else hx[0]
    train = torch.is_grad_enabled()
    if batch_sizes is None:
        result = fn(inputs, state, weights, has_biases, 1, 0.0, train, bidirectional, True)
    else:
        result = fn(inputs, batch_sizes, state, weights, has_biases, 1, 0.0, train,
                    bidirectional)
    return result[0], list(result[1:])


def _cpu_half_autocast(inputs) -> bool:
    """Whether `inputs` are on the CPU under torch's float16 autocast (a mixed_float16 policy),
    where oneDNN has no LSTM kernel for the float16 operands autocast hands it."""
    return inputs.device.type == "cpu" and torch.is_autocast_enabled("cpu") and \
        torch.get_autocast_dtype("cpu") == torch.float16


def _lstm_in_half(inputs, hx, weights, has_biases, batch_sizes, bidirectional):
    """The LSTM kernel with autocast off and every operand cast to float16 by hand: torch's
    CPU kernel takes float16 this way, so the recurrence runs in the compute dtype as Keras'."""
    def half(t):
        return t.to(torch.float16)

    with torch.autocast("cpu", enabled=False):
        return _call_vf("lstm", half(inputs), [half(h) for h in hx], [half(w) for w in weights],
                        has_biases, batch_sizes, bidirectional)


@functools.cache
def _outside_graph():
    """`_call_vf` hidden from torch.compile (made on first use: it imports torch._dynamo)."""
    return torch.compiler.disable(_call_vf)


def _gather_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _run_masked(mode, x, hx, weights, has_biases, mask, zero_output_for_mask):
    """Run over the unmasked block of each sample; None when a sample has several blocks.

    Packing needs the lengths on the host, so traced code (torch.compile, torch.export) takes
    the generic loop instead (None).
    """
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return None
    keep = mask.to(torch.bool)
    steps_count = x.shape[1]
    steps = torch.arange(steps_count, device=keep.device)
    lengths = keep.sum(1)
    first = torch.where(keep, steps, steps_count).amin(1)
    last = torch.where(keep, steps, -1).amax(1)
    host_lengths, host_first, host_last = torch.stack([lengths, first, last]).cpu()
    if not bool(((host_last - host_first + 1 == host_lengths) | (host_lengths == 0)).all()):
        return None
    if bool((host_lengths == steps_count).all()):
        return _kernel(mode, x, hx, weights, has_biases)
    empty = lengths == 0
    shift = torch.where(empty, 0, first)
    shifted = bool((host_first[host_lengths > 0] > 0).any())
    if shifted:
        x = _gather_steps(x, (steps + shift[:, None]).clamp(max=steps_count - 1))
    packed = pack_padded_sequence(x, host_lengths.clamp(min=1), batch_first=True,
                                  enforce_sorted=False)
    sorted_hx = [h.index_select(1, packed.sorted_indices) for h in hx]
    data, finals = _kernel(mode, packed.data, sorted_hx, weights, has_biases,
                           packed.batch_sizes)
    outputs, _ = pad_packed_sequence(
        PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
        batch_first=True, total_length=steps_count)
    finals = [torch.where(empty[None, :, None], h0, h.index_select(1, packed.unsorted_indices))
              for h0, h in zip(hx, finals)]
    if shifted:
        outputs = _gather_steps(outputs, (steps - shift[:, None]).clamp(min=0))
    zeros = outputs.new_zeros(())
    fill = zeros
    if not zero_output_for_mask:  # after its block, a sample repeats its last output
        carried = torch.where(empty[:, None], zeros, finals[0][0]).unsqueeze(1)
        fill = torch.where((steps > last[:, None]).unsqueeze(-1), carried, zeros)
    return torch.where(keep.unsqueeze(-1), outputs, fill), finals


def run(layer, sequences, states, mask, training):
    """`(last_output, outputs or None, final_states)` of SimpleRNN/LSTM/GRU `layer`, or None
    when `mask` is not one block of steps per sample."""
    cell = layer.cell
    mode = cell.fused_mode()
    if training:
        masks = cell.draw_dropout_masks(sequences[:, 0], cell.dropout)
        if masks is not None:
            sequences = sequences * masks[0].unsqueeze(1)
    if layer.go_backwards:
        sequences = sequences.flip(1)
        mask = None if mask is None else mask.flip(1)
    hx = [s.unsqueeze(0) for s in states]
    if mask is None:
        result = _kernel(mode, sequences, hx, cell.fused_weights(), cell.use_bias)
    else:
        result = _run_masked(mode, sequences, hx, cell.fused_weights(), cell.use_bias, mask,
                             layer.zero_output_for_mask)
        if result is None:
            return None
    outputs, finals = result
    return outputs[:, -1], outputs if layer.return_sequences else None, [h[0] for h in finals]


def bidirectional_eligible(forward, backward, training: bool) -> bool:
    """Whether one bidirectional kernel call computes both layers exactly."""
    cells = forward.cell, backward.cell
    return (
        type(forward) is type(backward)
        and forward.activity_regularizer is None and backward.activity_regularizer is None
        and all(layer._fused_policy() != "never" for layer in (forward, backward))
        and not forward.go_backwards and backward.go_backwards
        and all(eligible(cell, training) for cell in cells)
        and cells[0].fused_mode() == cells[1].fused_mode()
        and cells[0].units == cells[1].units and cells[0].use_bias == cells[1].use_bias
        and not (training and any(0.0 < cell.dropout < 1.0 for cell in cells))
    )


def run_bidirectional(forward, backward, sequences, forward_states, backward_states):
    """Both directions in one call: `(y, y_reversed, forward_finals, backward_finals)`.

    `y_reversed` is in the original time order, as Bidirectional merges it.
    """
    cell = forward.cell
    weights = cell.fused_weights() + backward.cell.fused_weights()
    hx = [torch.stack([f, b]) for f, b in zip(forward_states, backward_states)]
    outputs, finals = _kernel(cell.fused_mode(), sequences, hx, weights, cell.use_bias,
                              bidirectional=True)
    units = cell.units
    if forward.return_sequences:
        y, y_reversed = outputs[..., :units], outputs[..., units:]
    else:
        y, y_reversed = outputs[:, -1, :units], outputs[:, 0, units:]
    return y, y_reversed, [h[0] for h in finals], [h[1] for h in finals]
