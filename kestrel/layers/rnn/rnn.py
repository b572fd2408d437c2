"""RNN: the recurrent layer that loops a cell over the time axis of `(batch, time, ...)` inputs."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from kestrel import regularizers
from kestrel.layers.config_order import keras_order
from kestrel.layers.layer import Layer, clean_config, register_layer
from kestrel.layers.node import flatten, map_structure
from kestrel.layers.rnn import fused
from kestrel.layers.rnn.cell_base import RNNCellBase
from kestrel.layers.rnn.cells import StackedRNNCells
from kestrel.layers.rnn.loop import run_loop
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


@register_layer()
class RNN(Layer):
    """Base class of the recurrent layers: runs `cell` step by step over time.

    Args:
        cell: an RNN cell (`call(inputs_t, states)`, `state_size`), or a list of cells
            (stacked with `StackedRNNCells`).
        return_sequences: return the whole output sequence instead of the last output.
        return_state: return `[output, *final_states]`.
        go_backwards: read the sequence backwards (and return the reversed sequence).
        stateful: the final states of a batch are the initial states of the next one.
        unroll: accepted for Keras compatibility (a torch loop is always "unrolled").
        zero_output_for_mask: masked steps output zeros instead of the previous output.

    Call arguments: `sequences` `(batch, time, features)`, `initial_state` (list of tensors),
    `mask` `(batch, time)` bool, `training`.

    Example:
        >>> from kestrel.layers.rnn import LSTMCell
        >>> RNN(LSTMCell(4), return_sequences=True)(torch.ones(2, 5, 3)).shape
        torch.Size([2, 5, 4])
    """
    _keras_training_default = False  # Keras: `call(..., training=False)`, recorded by its nodes

    _supports_fused = False  # SimpleRNN, LSTM and GRU may use torch's fused kernels
    _exact_rank = None  # inputs of rank >= 3 (a cell may take (batch, time, h, w, c))

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        super().__init__(**kwargs)
        if not hasattr(cell, "call") or getattr(cell, "state_size", None) is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': cell must have a `call` method and a "
                f"`state_size` attribute. Received: cell={cell!r}")
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.unroll = unroll
        self.zero_output_for_mask = zero_output_for_mask
        size = cell.state_size
        self.state_size = list(size) if isinstance(size, (list, tuple)) else [size]
        self.states = None
        self._input_dim = None

    # ------------------------------------------------------------------ shapes
    def _check_shape(self, shape) -> None:
        rank = len(shape)
        rank_ok = rank == 3 or (self._exact_rank is None and rank > 3)
        features_ok = rank != 3 or self._input_dim is None or shape[-1] in (None, self._input_dim)
        if rank_ok and features_ok:
            return
        features = "features" if self._input_dim is None else self._input_dim
        raise ValueError(
            f"{type(self).__name__} '{self.name}' expects inputs of shape "
            f"(batch, timesteps, {features}). Received: input shape={tuple(shape)}")

    def build(self, sequences_shape, initial_state_shape=None):
        self._check_shape(sequences_shape)
        if isinstance(self.cell, Layer) and not self.cell.built:
            self.cell._build_from_shape((sequences_shape[0], *sequences_shape[2:]))
        self._input_dim = sequences_shape[-1]

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        self._check_shape(sequences_shape)
        if self.unroll and sequences_shape[1] is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': cannot unroll a RNN whose time dimension "
                f"is unknown. Received: input shape={tuple(sequences_shape)}")
        batch = sequences_shape[0]
        size = getattr(self.cell, "output_size", None)
        size = self.state_size[0] if size is None else size
        if not isinstance(size, int):  # as Keras: a cell's output is (batch, size)
            raise ValueError(
                f"{type(self).__name__} '{self.name}': output_size must be an integer (the "
                f"cell's `output_size`, else its first state size). Received: {size!r}")
        output = (batch, sequences_shape[1], size) if self.return_sequences else (batch, size)
        if not self.return_state:
            return output
        states = [(batch, s) if isinstance(s, int) else [(batch, d) for d in s]
                  for s in self.state_size]
        return [output, *states]

    _mask_ops_recorded = True  # the mask passes through: `GRU(..)(x, mask=m)` outputs carry m

    def compute_mask(self, inputs, previous_mask=None):
        mask = previous_mask[0] if isinstance(previous_mask, (list, tuple)) else previous_mask
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    # ------------------------------------------------------------------ states
    def _zeros(self, size, batch: int, like: torch.Tensor):
        if isinstance(size, (list, tuple)):
            return [self._zeros(s, batch, like) for s in size]
        return torch.zeros(batch, size, dtype=like.dtype, device=like.device)

    def _zero_states(self, sequences: torch.Tensor) -> list:
        batch = sequences.shape[0]
        custom = getattr(self.cell, "get_initial_state", None)
        if custom is None or isinstance(self.cell, (RNNCellBase, StackedRNNCells)):
            return [self._zeros(s, batch, sequences) for s in self.state_size]
        states = custom(batch_size=batch)
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        return map_structure(lambda s: s.to(sequences.device, sequences.dtype), states)

    def get_initial_state(self, batch_size: int) -> list:
        """Zero states for `batch_size` samples (the cell's own initial states if it has any)."""
        return self._zero_states(torch.empty(batch_size, 0, dtype=self._variable_dtype,
                                             device=self._device()))

    def _initial_states(self, sequences: torch.Tensor, initial_state) -> list:
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) \
                else [initial_state]
            if len(states) != len(self.state_size):
                raise ValueError(
                    f"{type(self).__name__} '{self.name}' expects {len(self.state_size)} "
                    f"initial state tensor(s). Received: {len(states)} initial state tensor(s)")
            return map_structure(lambda s: torch.as_tensor(
                s, dtype=sequences.dtype, device=sequences.device), states)
        if not self.stateful:
            return self._zero_states(sequences)
        if self.states is None:
            self.states = self._zero_states(sequences)
        expected = flatten(self.states)[0].shape[0]
        if sequences.shape[0] != expected:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' is stateful: its states hold {expected} "
                f"samples, so every batch must have {expected} samples. "
                f"Received: input shape={tuple(sequences.shape)}")
        return map_structure(lambda s: s.to(sequences.device, sequences.dtype), self.states)

    def reset_state(self, states=None) -> None:
        """Zero the states of a stateful layer, or set them to `states` (list of arrays)."""
        if states is not None:
            self.states = [torch.as_tensor(s, dtype=self._variable_dtype, device=self._device())
                           for s in (states if isinstance(states, (list, tuple)) else [states])]
        elif self.states is not None:
            self.states = map_structure(torch.zeros_like, self.states)

    reset_states = reset_state

    # ------------------------------------------------------------------ computing
    def call(self, sequences, initial_state=None, mask=None, training=None):
        self._check_shape(tuple(sequences.shape))
        training = self.training if training is None else bool(training)
        # The cell computes in its weights' dtype; as in Keras, an RNN given its own dtype
        # (`RNN(LSTMCell(3), dtype="float64")`) returns outputs and states in that dtype.
        cell_dtype = getattr(self.cell, "_variable_dtype", self._variable_dtype)
        if sequences.dtype != cell_dtype:
            sequences = sequences.to(cell_dtype)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        states = self._initial_states(sequences, initial_state)
        last, outputs, states = self._inner_loop(sequences, states, mask, training)
        if self.stateful:
            self.states = map_structure(lambda s: s.detach(), states)
        output = outputs if self.return_sequences else last
        results = [output, *states] if self.return_state else output
        if cell_dtype is not self._variable_dtype:
            results = map_structure(lambda t: t.to(self._variable_dtype), results)
        return results

    def _fused_policy(self) -> str:
        """"auto", "always" or "never": when torch's fused kernels compute the layer."""
        if not self._supports_fused:
            return "never"
        flag = getattr(self, "use_cudnn", "auto")
        return "always" if flag is True else "never" if flag is False else "auto"

    def _inner_loop(self, sequences, states, mask, training):
        if not training:
            self._draw_unused_masks(sequences, states)
        policy = self._fused_policy()
        if policy != "never" and fused.eligible(self.cell, training):
            result = fused.run(self, sequences, states, mask, training)
            if result is not None:
                return result
        if policy == "always":
            raise ValueError(
                f"{type(self).__name__} '{self.name}': use_cudnn=True was given, but this "
                "configuration has no fused kernel (it needs the default activations, "
                "GRU reset_after=True, no recurrent dropout in training and a mask that keeps "
                "one contiguous block of steps per sample). Pass use_cudnn='auto'.")
        if isinstance(self.cell, RNNCellBase):
            return self._cell_loop(sequences, states, mask, training)

        def step(x, s):
            return self.cell(x, s, training=training)

        self._reset_dropout_masks()  # cells draw them on their first step of each call
        try:  # in the cell's scope, as Keras' cell calls: sublayers it builds nest under it
            with self.cell._open_name_scope() if isinstance(self.cell, Layer) else nullcontext():
                if not self.unroll:  # as Keras' loop: a first, discarded step on the first
                    step(sequences[:, -1 if self.go_backwards else 0], states)  # input
                return run_loop(step, sequences, states, mask, self.go_backwards,
                                self.zero_output_for_mask, self.return_sequences)
        finally:
            self._reset_dropout_masks()

    def _draw_unused_masks(self, sequences, states) -> None:
        """Keras draws a built-in cell's dropout masks on every call, in inference too (then
        unused): draw them alike, so later random numbers stay Keras'."""
        cell = self.cell
        if isinstance(cell, RNNCellBase) and (cell.dropout > 0 or cell.recurrent_dropout > 0):
            cell.draw_dropout_masks(sequences[:, 0], cell.dropout)
            cell.draw_dropout_masks(states[0], cell.recurrent_dropout)

    def _reset_dropout_masks(self) -> None:
        for module in self.cell.modules():
            if isinstance(module, RNNCellBase):
                module.reset_dropout_mask()
                module.reset_recurrent_dropout_mask()

    def _cell_loop(self, sequences, states, mask, training):
        """A built-in cell: all input projections in one matmul, then the recurrence."""
        cell = self.cell
        masks = recurrent = None
        if training:
            masks = cell.draw_dropout_masks(sequences[:, 0], cell.dropout)
            recurrent = cell.draw_dropout_masks(states[0], cell.recurrent_dropout)
        projected = cell.project_inputs(sequences, None if masks is None else masks.unsqueeze(2))
        return run_loop(lambda x, s: cell._step(x, s, recurrent), projected, states, mask,
                        self.go_backwards, self.zero_output_for_mask, self.return_sequences)

    # ------------------------------------------------------------------ config
    def _flags_config(self) -> dict:
        return {
            **super().get_config(),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }

    def get_config(self):
        return {**self._flags_config(), "cell": serialize_keras_object(self.cell, "layers")}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if "cell" in config:
            config["cell"] = deserialize_keras_object(config["cell"], "layers", custom_objects)
        return cls(**clean_config(cls, config))


# Keras' key order of the cell arguments in SimpleRNN, LSTM, GRU and ConvLSTM configs.
LAYER_CONFIG_ORDER = (
    "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "units",
    "activation", "recurrent_activation", "use_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
    "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "reset_after",
    "seed")


def cell_layer_config(layer: RNN) -> dict:
    """Config of SimpleRNN/LSTM/GRU: the RNN flags plus the cell's arguments (no `cell`)."""
    config = layer._flags_config()
    cell_config = layer.cell.get_config()
    for key in ("name", "trainable", "dtype"):
        cell_config.pop(key, None)
    return keras_order({**config, **cell_config, "activity_regularizer":
                        regularizers.serialize(layer.activity_regularizer)}, LAYER_CONFIG_ORDER)


def forward_to_cell(*names: str):
    """Class decorator: read-only properties `layer.<name>` that return `layer.cell.<name>`."""
    def decorate(cls):
        for name in names:
            setattr(cls, name, property(lambda self, n=name: getattr(self.cell, n),
                                        doc=f"The cell's `{name}`."))
        return cls
    return decorate


def check_use_cudnn(owner: str, use_cudnn) -> None:
    if use_cudnn not in ("auto", True, False):
        raise ValueError(
            f"{owner}: use_cudnn must be 'auto', True or False. Received: use_cudnn={use_cudnn!r}")
