"""What the built-in recurrent cells share: arguments, weights in torch layout, dropout masks.

Each cell stores its weights in the layout of torch's fused RNN kernels (`weight_ih` `(k*units,
in)`, `weight_hh` `(k*units, units)`, gate blocks in torch's order) so that the fused path uses
the parameters as they are. `get_weights()`, `set_weights()` and saved files still speak Keras'
layout (`kernel` `(in, k*units)`, `recurrent_kernel` `(units, k*units)`, Keras' gate order)
through the `layout` pair given to `add_weight`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel import activations, constraints, initializers, regularizers
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import Layer
from kestrel.layers.regularization.seeding import (attach_seed_generator, check_seed,
                                                   generator_for)


def transposed(weight: torch.Tensor) -> torch.Tensor:
    """Keras `(in, out)` <-> torch `(out, in)`; its own inverse."""
    return weight.t().contiguous()


def check_units(owner: str, units) -> int:
    """`units` as a positive Python int (NumPy's accepted), or a ValueError naming `owner`."""
    return positive_int(units, "units", owner)


def gate_linear(x: torch.Tensor, masks, weight: torch.Tensor, bias=None) -> torch.Tensor:
    """`x @ weight.T + bias` where gate block g sees `x * masks[g]` (masks may be None)."""
    if masks is None:
        return F.linear(x, weight, bias)
    if len(masks) == 1:
        return F.linear(x * masks[0], weight, bias)
    parts = [F.linear(x * m, w) for m, w in zip(masks, weight.chunk(len(masks)))]
    out = torch.cat(parts, -1)
    return out if bias is None else out + bias


class RNNCellBase(Layer):
    """Base class of SimpleRNNCell, LSTMCell and GRUCell (one step of the recurrence).

    Subclasses set `gates` and implement `_step(projected_inputs, states, recurrent_masks)`.
    """

    _keras_training_default = False  # Keras' `call(..., training=False)`

    gates = 1
    # Keras' SimpleRNN and ConvLSTM cells make their SeedGenerator before their initializers,
    # LSTM and GRU cells after: the order decides which seeds from Python's `random` each takes.
    seed_generator_first = False

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        kwargs.pop("implementation", None)  # Keras' kernel choice; the numbers are the same
        super().__init__(**kwargs)
        units = check_units(f"{type(self).__name__} '{self.name}'", units)
        check_seed(self, seed)
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        if self.seed_generator_first:
            attach_seed_generator(self, seed)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        if not self.seed_generator_first:
            attach_seed_generator(self, seed)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = min(1.0, max(0.0, float(dropout)))
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        self.seed = seed
        self.state_size = units
        self.output_size = units
        self._dropout_mask = None
        self._recurrent_dropout_mask = None

    # ------------------------------------------------------------------ weights
    def _build_weights(self, input_dim: int, kernel_layout, bias_shape, bias_initializer,
                       bias_layout) -> None:
        size = self.gates * self.units
        self.kernel = self.add_weight(
            "kernel", (input_dim, size), self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
            layout=kernel_layout)
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (self.units, size), self.recurrent_initializer,
            regularizer=self.recurrent_regularizer, constraint=self.recurrent_constraint,
            layout=kernel_layout)
        self.bias = self.add_weight(
            "bias", bias_shape, bias_initializer, regularizer=self.bias_regularizer,
            constraint=self.bias_constraint, layout=bias_layout) if self.use_bias else None

    def _input_bias(self):
        return self.bias

    def _recurrent_bias(self):
        """The bias of the recurrent product in torch's kernels (zeros: Keras has none)."""
        return torch.zeros_like(self.bias)

    def fused_weights(self) -> list[torch.Tensor]:
        """`[weight_ih, weight_hh(, bias_ih, bias_hh)]` for torch's fused kernels."""
        weights = [self.kernel, self.recurrent_kernel]
        if self.use_bias:
            weights += [self._input_bias(), self._recurrent_bias()]
        return weights

    def fused_mode(self) -> str | None:
        """Name of the `torch._VF` kernel computing this cell, or None when there is none."""
        return None

    # ------------------------------------------------------------------ computing
    def project_inputs(self, inputs: torch.Tensor, masks=None) -> torch.Tensor:
        """Input contribution of every gate, bias included: `(..., gates * units)`."""
        return gate_linear(inputs, masks, self.kernel, self._input_bias())

    def _step(self, projected, states, recurrent_masks):
        raise NotImplementedError

    def call(self, inputs, states, training=None):
        training = self.training if training is None else training
        nested = isinstance(states, (list, tuple))
        states = list(states) if nested else [states]
        masks = recurrent = None
        if training:
            masks = self.get_dropout_mask(inputs)
            recurrent = self.get_recurrent_dropout_mask(states[0])
        output, new_states = self._step(self.project_inputs(inputs, masks), states, recurrent)
        return output, (new_states if nested or len(new_states) > 1 else new_states[0])

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        return [torch.zeros(batch_size, size, dtype=self._variable_dtype, device=self._device())
                for size in sizes]

    # ------------------------------------------------------------------ dropout
    def _mask_count(self) -> int:
        """Keras draws one mask per gate when recurrent dropout is on, else one shared mask."""
        return self.gates if self.recurrent_dropout > 0 else 1

    def draw_dropout_masks(self, like: torch.Tensor, rate: float):
        """Fresh inverted-dropout masks `(count, *like.shape)`, or None when `rate` is off."""
        if not 0.0 < rate < 1.0:
            return None
        shape = (self._mask_count(), *like.shape)
        keep = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(
            1.0 - rate, generator=generator_for(self, like.device))
        return keep.div_(1.0 - rate)

    def get_dropout_mask(self, step_input):
        """The input dropout mask(s) of the current sequence, drawn on first use."""
        if self._dropout_mask is None:
            self._dropout_mask = self.draw_dropout_masks(step_input, self.dropout)
        return self._dropout_mask

    def get_recurrent_dropout_mask(self, step_state):
        """The recurrent dropout mask(s) of the current sequence, drawn on first use."""
        if self._recurrent_dropout_mask is None:
            self._recurrent_dropout_mask = self.draw_dropout_masks(
                step_state, self.recurrent_dropout)
        return self._recurrent_dropout_mask

    def reset_dropout_mask(self) -> None:
        self._dropout_mask = None

    def reset_recurrent_dropout_mask(self) -> None:
        self._recurrent_dropout_mask = None

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
