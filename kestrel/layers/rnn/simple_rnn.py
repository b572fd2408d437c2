"""SimpleRNN: the fully-connected recurrent layer, fused kernels when possible."""
from __future__ import annotations

from kestrel.layers.layer import register_layer
from kestrel.layers.rnn.cell_base import check_units
from kestrel.layers.rnn.cells import SimpleRNNCell
from kestrel.layers.rnn.rnn import RNN, cell_layer_config, forward_to_cell


@register_layer()
@forward_to_cell(
    "units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
    "bias_initializer", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
    "recurrent_dropout", "seed")
class SimpleRNN(RNN):
    """Fully-connected RNN: `h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + b)`.

    Args:
        units: positive int, size of the output and state.
        activation: default `"tanh"` (`"tanh"` and `"relu"` use torch's fused kernels).
        use_bias: default True.
        kernel_initializer / recurrent_initializer / bias_initializer: default
            `"glorot_uniform"` / `"orthogonal"` / `"zeros"`.
        kernel_regularizer / recurrent_regularizer / bias_regularizer / activity_regularizer,
            kernel_constraint / recurrent_constraint / bias_constraint: optional.
        dropout / recurrent_dropout: fractions of inputs / state dropped in training.
        seed: int making the dropout masks reproducible.
        return_sequences, return_state, go_backwards, stateful, unroll: as in `RNN`.

    Input shape: `(batch, timesteps, features)`. Output shape: `(batch, units)`, or
    `(batch, timesteps, units)` with `return_sequences`.

    Example:
        >>> import torch
        >>> SimpleRNN(4)(torch.ones(2, 5, 3)).shape
        torch.Size([2, 4])
    """

    _supports_fused = True
    _exact_rank = 3

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None, **kwargs):
        check_units("SimpleRNN", units)
        cell = SimpleRNNCell(
            units, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True), name="simple_rnn_cell")
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)

    def get_config(self):
        return cell_layer_config(self)
