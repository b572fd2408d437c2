"""The recurrent cells: one time step of SimpleRNN, LSTM and GRU, and a stack of cells.

A cell maps `(inputs_t, states)` to `(output_t, new_states)`; `RNN(cell)` loops it over time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel import activations, initializers
from kestrel.layers.config_order import keras_order
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.rnn.cell_base import RNNCellBase, gate_linear, transposed
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

_TANH = (activations.tanh, torch.tanh, F.tanh)
_SIGMOID = (activations.sigmoid, torch.sigmoid, F.sigmoid)
_RELU = (activations.relu, torch.relu, F.relu)


def swap_first_gates(weight: torch.Tensor) -> torch.Tensor:
    """Swap the first two of three gate blocks on the last axis (Keras z,r,h <-> torch r,z,n)."""
    first, second, third = weight.chunk(3, -1)
    return torch.cat([second, first, third], -1)


def _gru_kernel_to_torch(kernel: torch.Tensor) -> torch.Tensor:
    return swap_first_gates(kernel).t().contiguous()


def _gru_kernel_to_keras(weight: torch.Tensor) -> torch.Tensor:
    return swap_first_gates(weight.t())


gru_kernel_layout = (_gru_kernel_to_torch, _gru_kernel_to_keras)  # Keras z,r,h <-> torch's


# Keras' key order of the cell configs (each cell writes a subset).
CELL_CONFIG_ORDER = (
    "units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "dropout", "recurrent_dropout", "reset_after", "seed")


@register_layer()
class SimpleRNNCell(RNNCellBase):
    """Cell of SimpleRNN: `h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)`.

    Args:
        units: positive int, size of the output and state.
        activation: default `"tanh"`. use_bias: default True.
        kernel_initializer / recurrent_initializer / bias_initializer: initializers.
        kernel_regularizer / recurrent_regularizer / bias_regularizer: regularizers.
        kernel_constraint / recurrent_constraint / bias_constraint: constraints.
        dropout / recurrent_dropout: fractions of the inputs / state dropped in training.
        seed: int making the dropout masks reproducible.

    Example:
        >>> SimpleRNNCell(4)(torch.ones(2, 3), [torch.zeros(2, 4)])[0].shape
        torch.Size([2, 4])
    """

    seed_generator_first = True

    def build(self, input_shape):
        self._build_weights(input_shape[-1], (transposed, transposed), (self.units,),
                            self.bias_initializer, None)

    def fused_mode(self):
        if self.activation in _TANH:
            return "rnn_tanh"
        return "rnn_relu" if self.activation in _RELU else None

    def _step(self, projected, states, recurrent_masks):
        h = self.activation(projected + gate_linear(states[0], recurrent_masks,
                                                    self.recurrent_kernel))
        return h, [h]


@register_layer()
class LSTMCell(RNNCellBase):
    """Cell of LSTM (gates i, f, c, o in one kernel, as in Keras and torch).

    Args:
        units, activation, use_bias, initializers, regularizers, constraints, dropout,
            recurrent_dropout, seed: as in SimpleRNNCell.
        recurrent_activation: gate activation, default `"sigmoid"`.
        unit_forget_bias: add 1 to the forget-gate bias at initialization (default True).

    States: `[h, c]`, each `(batch, units)`.
    """

    gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, **kwargs):
        super().__init__(units, activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias
        self.state_size = [units, units]

    def build(self, input_shape):
        init = self.bias_initializer
        if self.unit_forget_bias:
            ones = initializers.get("ones")

            def init(shape, dtype=None):
                units = self.units
                return torch.cat([self.bias_initializer((units,), dtype=dtype),
                                  ones((units,), dtype=dtype),
                                  self.bias_initializer((2 * units,), dtype=dtype)])
        self._build_weights(input_shape[-1], (transposed, transposed), (4 * self.units,),
                            init, None)

    def fused_mode(self):
        ok = self.activation in _TANH and self.recurrent_activation in _SIGMOID
        return "lstm" if ok else None

    def _step_recurrent_bias(self):
        """The bias of the recurrent product in a step (None: Keras' LSTM has one bias)."""
        return None

    def _step(self, projected, states, recurrent_masks):
        h, c = states
        z = projected + gate_linear(h, recurrent_masks, self.recurrent_kernel,
                                    self._step_recurrent_bias())
        i, f, g, o = z.chunk(4, -1)
        gate = self.recurrent_activation
        c = gate(f) * c + gate(i) * self.activation(g)
        h = gate(o) * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return keras_order({
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias}, CELL_CONFIG_ORDER)


@register_layer()
class GRUCell(RNNCellBase):
    """Cell of GRU (Keras gates z, r, h; stored in torch's r, z, n order).

    Args:
        units, activation, use_bias, initializers, regularizers, constraints, dropout,
            recurrent_dropout, seed: as in SimpleRNNCell.
        recurrent_activation: gate activation, default `"sigmoid"`.
        reset_after: apply the reset gate after the recurrent matmul (default True, the
            cuDNN/torch formula; the bias then has shape `(2, 3 * units)`: input, recurrent).
    """

    gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", reset_after=True, **kwargs):
        super().__init__(units, activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = reset_after

    def build(self, input_shape):
        bias_shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        self._build_weights(input_shape[-1], gru_kernel_layout,
                            bias_shape, self.bias_initializer,
                            (swap_first_gates, swap_first_gates))

    def _input_bias(self):
        return None if self.bias is None else (self.bias[0] if self.reset_after else self.bias)

    def _recurrent_bias(self):
        return self.bias[1]

    def draw_dropout_masks(self, like, rate):
        """Per-gate masks drawn in Keras' z, r, h order, handed back in torch's r, z, n."""
        masks = super().draw_dropout_masks(like, rate)
        return masks[[1, 0, 2]] if masks is not None and len(masks) == 3 else masks

    def fused_mode(self):
        ok = self.reset_after and self.activation in _TANH \
            and self.recurrent_activation in _SIGMOID
        return "gru" if ok else None

    def _step(self, projected, states, recurrent_masks):
        h = states[0]
        x_r, x_z, x_n = projected.chunk(3, -1)
        units = self.units
        if self.reset_after:
            bias = self._recurrent_bias() if self.use_bias else None
            h_r, h_z, h_n = gate_linear(h, recurrent_masks, self.recurrent_kernel,
                                        bias).chunk(3, -1)
            r = self.recurrent_activation(x_r + h_r)
            z = self.recurrent_activation(x_z + h_z)
            n = self.activation(x_n + r * h_n)
        else:
            rz_masks = None if recurrent_masks is None else recurrent_masks[:2]
            h_r, h_z = gate_linear(h, rz_masks, self.recurrent_kernel[:2 * units]).chunk(2, -1)
            r = self.recurrent_activation(x_r + h_r)
            z = self.recurrent_activation(x_z + h_z)
            h_in = h if recurrent_masks is None else h * recurrent_masks[2]
            n = self.activation(x_n + F.linear(r * h_in, self.recurrent_kernel[2 * units:]))
        h = z * h + (1 - z) * n
        return h, [h]

    def get_config(self):
        return keras_order({
            **super().get_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after}, CELL_CONFIG_ORDER)


@register_layer()
class StackedRNNCells(Layer):
    """Several cells run as one: the output of each cell is the input of the next.

    Args:
        cells: list of cells (objects with `call(inputs, states)` and `state_size`).
    """

    _keras_training_default = False  # Keras' `call(..., training=False)`

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        for cell in cells:
            if not hasattr(cell, "call") or not hasattr(cell, "state_size"):
                raise ValueError(
                    f"StackedRNNCells '{self.name}': every cell needs a `call` method and a "
                    f"`state_size` attribute. Received: cell={cell!r}")
        self.cells = list(cells)

    @property
    def state_size(self):
        return [cell.state_size for cell in self.cells]

    @property
    def output_size(self):
        last = self.cells[-1]
        size = getattr(last, "output_size", None) or last.state_size
        return size[0] if isinstance(size, (list, tuple)) else size

    def build(self, input_shape):
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                cell._build_from_shape(tuple(input_shape))
            size = getattr(cell, "output_size", None) or cell.state_size
            size = size[0] if isinstance(size, (list, tuple)) else size
            input_shape = (input_shape[0], size)

    def call(self, inputs, states, training=None):
        new_states = []
        for cell, cell_states in zip(self.cells, states):
            nested = isinstance(cell_states, (list, tuple))
            inputs, cell_states = cell(inputs, list(cell_states) if nested else [cell_states],
                                       training=training)
            if not nested and isinstance(cell_states, (list, tuple)) and len(cell_states) == 1:
                cell_states = cell_states[0]
            new_states.append(cell_states)
        return inputs, new_states

    def get_initial_state(self, batch_size=None):
        return [cell.get_initial_state(batch_size=batch_size) for cell in self.cells]

    def reset_dropout_mask(self) -> None:
        for cell in self.cells:
            if hasattr(cell, "reset_dropout_mask"):
                cell.reset_dropout_mask()

    def reset_recurrent_dropout_mask(self) -> None:
        for cell in self.cells:
            if hasattr(cell, "reset_recurrent_dropout_mask"):
                cell.reset_recurrent_dropout_mask()

    def get_config(self):
        return {**super().get_config(),
                "cells": [serialize_keras_object(cell, "layers") for cell in self.cells]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cells = [deserialize_keras_object(c, "layers", custom_objects)
                 for c in config.pop("cells")]
        return cls(cells, **config)
