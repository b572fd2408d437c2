"""GRU: Gated Recurrent Unit layer (Cho et al. 2014), fused kernels when possible."""
from __future__ import annotations

from kestrel.layers.layer import register_layer
from kestrel.layers.rnn.cell_base import check_units
from kestrel.layers.rnn.cells import GRUCell
from kestrel.layers.rnn.rnn import RNN, cell_layer_config, check_use_cudnn, forward_to_cell


@register_layer()
@forward_to_cell(
    "units", "activation", "recurrent_activation", "use_bias", "reset_after",
    "kernel_initializer", "recurrent_initializer", "bias_initializer", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "dropout", "recurrent_dropout", "seed")
class GRU(RNN):
    """Gated Recurrent Unit layer.

    Args:
        units: positive int, size of the output and state.
        activation: default `"tanh"`. recurrent_activation: gate activation, default
            `"sigmoid"`. use_bias: default True.
        kernel_initializer / recurrent_initializer / bias_initializer: default
            `"glorot_uniform"` / `"orthogonal"` / `"zeros"`.
        kernel_regularizer / recurrent_regularizer / bias_regularizer / activity_regularizer,
            kernel_constraint / recurrent_constraint / bias_constraint: optional.
        dropout / recurrent_dropout: fractions of inputs / state dropped in training.
        seed: int making the dropout masks reproducible.
        return_sequences, return_state, go_backwards, stateful, unroll: as in `RNN`.
        reset_after: apply the reset gate after the recurrent matmul (default True; False has
            no fused kernel and always runs step by step).
        use_cudnn: `"auto"`, True or False, as in `LSTM`.

    Input shape: `(batch, timesteps, features)`. Output shape: `(batch, units)`, or
    `(batch, timesteps, units)` with `return_sequences`. Weights (Keras layout): kernel
    `(features, 3 * units)`, recurrent_kernel `(units, 3 * units)`, bias `(2, 3 * units)`
    (`(3 * units,)` when `reset_after=False`), gates z, r, h.

    Example:
        >>> import torch
        >>> GRU(4, return_sequences=True)(torch.ones(2, 5, 3)).shape
        torch.Size([2, 5, 4])
    """

    _cell_class = GRUCell
    _supports_fused = True
    _exact_rank = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True,
                 use_cudnn="auto", **kwargs):
        check_units("GRU", units)
        check_use_cudnn("GRU", use_cudnn)
        kwargs.pop("implementation", None)
        cell = self._cell_class(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout, reset_after=reset_after,
            seed=seed, dtype=kwargs.get("dtype"), trainable=kwargs.get("trainable", True),
            name="gru_cell")
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)
        self.use_cudnn = use_cudnn

    def get_config(self):
        return cell_layer_config(self)
