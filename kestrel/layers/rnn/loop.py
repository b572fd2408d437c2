"""The generic recurrent loop: a step function run over time, with Keras' masking rules.

At a masked step the states keep their previous values and the output repeats the previous
output (zeros before the first unmasked step, or always zeros with `zero_output_for_mask`).
"""
from __future__ import annotations

import torch


def _expand(keep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return keep.reshape(keep.shape[0], *([1] * (like.dim() - 1)))


def _select(keep: torch.Tensor, new, old):
    """`new` where `keep` (one bool per sample) else `old`, leaf by leaf."""
    if isinstance(new, (list, tuple)):
        return [_select(keep, n, o) for n, o in zip(new, old)]
    return torch.where(_expand(keep, new), new, old)


def run_loop(step, inputs: torch.Tensor, states, mask: torch.Tensor | None = None,
             go_backwards: bool = False, zero_output_for_mask: bool = False,
             return_sequences: bool = False):
    """Run `step(inputs_t, states) -> (output_t, new_states)` over axis 1 of `inputs`.

    Args:
        step: one time step.
        inputs: `(batch, time, ...)` per-step inputs.
        states: initial states (a list, possibly nested).
        mask: optional `(batch, time)` mask; False marks steps to skip.
        go_backwards: read the sequence from the end (outputs stay in reading order).
        zero_output_for_mask: masked steps output zeros instead of the previous output.
        return_sequences: also return every output stacked on axis 1.

    Returns:
        `(last_output, outputs or None, final_states)`.
    """
    if go_backwards:
        inputs = inputs.flip(1)
        mask = None if mask is None else mask.flip(1)
    outputs = []
    output = None
    if mask is None:
        for x_t in inputs.unbind(1):
            output, states = step(x_t, states)
            if return_sequences:
                outputs.append(output)
    else:
        previous = zeros = None
        for x_t, keep in zip(inputs.unbind(1), mask.to(torch.bool).unbind(1)):
            output, new_states = step(x_t, states)
            if previous is None:
                previous = zeros = torch.zeros_like(output)
            output = torch.where(_expand(keep, output), output,
                                 zeros if zero_output_for_mask else previous)
            states = _select(keep, new_states, states)
            previous = output
            if return_sequences:
                outputs.append(output)
    sequence = torch.stack(outputs, 1) if return_sequences else None
    return output, sequence, states
