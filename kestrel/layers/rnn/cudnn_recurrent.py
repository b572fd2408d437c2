"""Keras 2's `CuDNNLSTM` and `CuDNNGRU`: cuDNN's two bias vectors, fixed activations.

Keras 2 ran them only on a GPU through cuDNN; here they run wherever torch's fused kernels
run (CPU included), which have the same two biases. Weights (Keras 2's layout): kernel
`(features, gates * units)`, recurrent_kernel `(units, gates * units)`, one flat bias
`(2 * gates * units,)`: the input biases then the recurrent ones, gates i, f, c, o (LSTM) or
z, r, h (GRU, computed as `GRU(reset_after=True)`).
"""
from __future__ import annotations

import torch

from kestrel import initializers
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.rnn.cell_base import transposed
from kestrel.layers.rnn.cells import GRUCell, LSTMCell, gru_kernel_layout, swap_first_gates
from kestrel.layers.rnn.gru import GRU
from kestrel.layers.rnn.lstm import LSTM

_ARGUMENTS = ("units", "kernel_initializer", "recurrent_initializer", "bias_initializer",
              "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer",
              "bias_regularizer", "activity_regularizer", "kernel_constraint",
              "recurrent_constraint", "bias_constraint")
_FLAGS = ("return_sequences", "return_state", "go_backwards", "stateful")


def _keras2_config(layer, base) -> dict:
    """Keras 2's config of a cuDNN layer: the layer's keys, the RNN flags, then the cell's
    arguments (no activations, dropout or use_bias); `base` is LSTM or GRU."""
    flags, own = layer._flags_config(), base.get_config(layer)
    return {**Layer.get_config(layer), **{key: flags[key] for key in _FLAGS},
            **{key: own[key] for key in _ARGUMENTS if key in own}}


@register_layer()
class CuDNNLSTMCell(LSTMCell):
    """LSTMCell with a bias `(8 * units,)`: the input product's, then the recurrent one's.
    `unit_forget_bias` sets the recurrent forget-gate bias to 1, as Keras 2's CuDNNLSTM."""

    def build(self, input_shape):
        units = self.units

        def init(shape, dtype=None):
            if not self.unit_forget_bias:
                return self.bias_initializer(shape, dtype=dtype)
            return torch.cat([self.bias_initializer((5 * units,), dtype=dtype),
                              initializers.get("ones")((units,), dtype=dtype),
                              self.bias_initializer((2 * units,), dtype=dtype)])
        self._build_weights(input_shape[-1], (transposed, transposed), (8 * units,), init,
                            None)

    def _input_bias(self):
        return self.bias[:4 * self.units]

    def _recurrent_bias(self):
        return self.bias[4 * self.units:]

    def _step_recurrent_bias(self):
        return self._recurrent_bias()


@register_layer()
class CuDNNGRUCell(GRUCell):
    """GRUCell (reset gate after the recurrent product) with one flat bias `(6 * units,)`."""

    def build(self, input_shape):
        self._build_weights(input_shape[-1], gru_kernel_layout, (6 * self.units,),
                            self.bias_initializer, (_flat_to_torch, _flat_to_keras))


def _flat_to_torch(bias: torch.Tensor) -> torch.Tensor:
    return swap_first_gates(bias.reshape(2, -1))


def _flat_to_keras(bias: torch.Tensor) -> torch.Tensor:
    return swap_first_gates(bias).reshape(-1)


@register_layer()
class CuDNNLSTM(LSTM):
    """Keras 2's CuDNNLSTM: `LSTM` with tanh and sigmoid, no dropout, and two biases.

    Args:
        units: positive int, size of the output and states.
        kernel_initializer / recurrent_initializer / bias_initializer: default
            `"glorot_uniform"` / `"orthogonal"` / `"zeros"`.
        unit_forget_bias: the recurrent forget-gate bias starts at 1 (default True).
        kernel_regularizer / recurrent_regularizer / bias_regularizer / activity_regularizer,
            kernel_constraint / recurrent_constraint / bias_constraint: optional.
        return_sequences, return_state, go_backwards, stateful: as in `RNN`.

    Example:
        >>> import torch
        >>> CuDNNLSTM(4)(torch.ones(2, 5, 3)).shape
        torch.Size([2, 4])
    """

    _cell_class = CuDNNLSTMCell

    def __init__(self, units, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, **kwargs):
        super().__init__(
            units, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            return_sequences=return_sequences, return_state=return_state,
            go_backwards=go_backwards, stateful=stateful, **kwargs)

    def get_config(self):
        return _keras2_config(self, LSTM)


@register_layer()
class CuDNNGRU(GRU):
    """Keras 2's CuDNNGRU: `GRU(reset_after=True)` with tanh and sigmoid, no dropout, and one
    flat bias `(6 * units,)` (input biases, then recurrent ones).

    Args:
        units, initializers, regularizers, constraints, return_sequences, return_state,
            go_backwards, stateful: as in `CuDNNLSTM` (no `unit_forget_bias`).

    Example:
        >>> import torch
        >>> CuDNNGRU(4)(torch.ones(2, 5, 3)).shape
        torch.Size([2, 4])
    """

    _cell_class = CuDNNGRUCell

    def __init__(self, units, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, **kwargs):
        super().__init__(
            units, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            reset_after=True, **kwargs)

    def get_config(self):
        return _keras2_config(self, GRU)
