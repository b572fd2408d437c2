"""LSTM: Long Short-Term Memory layer (Hochreiter 1997), fused kernels when possible."""
from __future__ import annotations

from kestrel.layers.layer import register_layer
from kestrel.layers.rnn.cell_base import check_units
from kestrel.layers.rnn.cells import LSTMCell
from kestrel.layers.rnn.rnn import RNN, cell_layer_config, check_use_cudnn, forward_to_cell


@register_layer()
@forward_to_cell(
    "units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "dropout", "recurrent_dropout", "seed")
class LSTM(RNN):
    """Long Short-Term Memory layer.

    Args:
        units: positive int, size of the output and states.
        activation: default `"tanh"`. recurrent_activation: gate activation, default
            `"sigmoid"`. use_bias: default True.
        kernel_initializer / recurrent_initializer / bias_initializer: default
            `"glorot_uniform"` / `"orthogonal"` / `"zeros"`.
        unit_forget_bias: add 1 to the forget-gate bias at initialization (default True).
        kernel_regularizer / recurrent_regularizer / bias_regularizer / activity_regularizer,
            kernel_constraint / recurrent_constraint / bias_constraint: optional.
        dropout / recurrent_dropout: fractions of inputs / state dropped in training.
        seed: int making the dropout masks reproducible.
        return_sequences, return_state, go_backwards, stateful, unroll: as in `RNN`.
        use_cudnn: `"auto"` runs torch's fused kernel when the configuration allows (default
            activations, no recurrent dropout in training, masks with one block of steps per
            sample), True requires it, False always uses the step-by-step loop.

    Input shape: `(batch, timesteps, features)`. Output shape: `(batch, units)`, or
    `(batch, timesteps, units)` with `return_sequences`; with `return_state`,
    `[output, h, c]`. Weights (Keras layout): kernel `(features, 4 * units)`, recurrent_kernel
    `(units, 4 * units)`, bias `(4 * units,)`, gates i, f, c, o.

    Example:
        >>> import torch
        >>> LSTM(4)(torch.ones(2, 5, 3)).shape
        torch.Size([2, 4])
    """

    _supports_fused = True
    _exact_rank = 3
    _cell_class = LSTMCell

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 use_cudnn="auto", **kwargs):
        check_units("LSTM", units)
        check_use_cudnn("LSTM", use_cudnn)
        kwargs.pop("implementation", None)
        cell = self._cell_class(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True), name="lstm_cell")
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)
        self.use_cudnn = use_cudnn

    def get_config(self):
        return cell_layer_config(self)
