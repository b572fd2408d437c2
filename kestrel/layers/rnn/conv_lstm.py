"""ConvLSTM1D/2D/3D: LSTM layers whose input and recurrent transformations are convolutions.

The cell stores its kernels in torch's conv layout `(4 * filters, in, *kernel_size)` (Keras'
layout `(*kernel_size, in, 4 * filters)` through `add_weight`'s `layout` pair). The input
convolution of every time step runs as one batched convolution before the recurrence; gates
are computed channels-first, while inputs, outputs and states keep the layer's data format.
"""
from __future__ import annotations

import torch

from kestrel import activations, initializers
from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.convolutional.base_conv import CONV
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import register_layer
from kestrel.layers.rnn.cell_base import RNNCellBase
from kestrel.layers.rnn.rnn import RNN, cell_layer_config, forward_to_cell


def _owner(cls_name: str, kwargs: dict) -> str:
    name = kwargs.get("name")
    return f"{cls_name} '{name}'" if name else cls_name


def conv_arguments(owner: str, rank: int, filters, kernel_size, strides, padding, data_format,
                   dilation_rate) -> dict:
    """The convolution arguments checked (errors name `owner`) and standardized."""
    if rank not in (1, 2, 3):
        raise ValueError(f"{owner}: rank must be 1, 2 or 3. Received: rank={rank!r}")
    args = {
        "filters": positive_int(filters, "filters", owner),
        "kernel_size": cu.standardize_tuple(kernel_size, rank, "kernel_size", owner),
        "strides": cu.standardize_tuple(strides, rank, "strides", owner),
        "padding": cu.standardize_padding(padding, owner),
        "data_format": cu.standardize_data_format(data_format, owner),
        "dilation_rate": cu.standardize_tuple(dilation_rate, rank, "dilation_rate", owner),
    }
    if max(args["strides"]) > 1 and max(args["dilation_rate"]) > 1:
        raise ValueError(
            f"{owner}: strides > 1 is not supported together with dilation_rate > 1. "
            f"Received: strides={args['strides']}, dilation_rate={args['dilation_rate']}")
    return args


@register_layer()
class ConvLSTMCell(RNNCellBase):
    """One step of a ConvLSTM: LSTM gates i, f, c, o computed by convolutions.

    Args:
        rank: 1, 2 or 3, the number of spatial dimensions.
        filters: positive int, the number of output channels (and state channels).
        kernel_size, strides, padding, data_format, dilation_rate: of the input convolution,
            as in `Conv2D`; the recurrent convolution uses stride 1 and `"same"` padding.
        activation: default `"tanh"`. recurrent_activation: default `"sigmoid"`.
        use_bias, initializers, regularizers, constraints, dropout, recurrent_dropout, seed:
            as in `LSTMCell`. unit_forget_bias: add 1 to the forget-gate bias at init.

    States: `[h, c]`, each `(batch, *new_spatial, filters)` (channels-last).
    """

    gates = 4
    seed_generator_first = True

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, **kwargs):
        args = conv_arguments(_owner(type(self).__name__, kwargs), rank, filters, kernel_size,
                              strides, padding, data_format, dilation_rate)
        super().__init__(filters, activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, **kwargs)
        self.rank = rank
        self.filters = filters
        self.kernel_size, self.strides = args["kernel_size"], args["strides"]
        self.padding, self.data_format = args["padding"], args["data_format"]
        self.dilation_rate = args["dilation_rate"]
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias
        self.state_size = [filters, filters]
        self._channels_last = self.data_format == "channels_last"
        self._to_first, self._to_last = cu.channel_permutations(rank)
        self._step_shape = None

    # ------------------------------------------------------------------ shapes and weights
    def state_shape(self, step_shape) -> tuple:
        """Shape of `h` and `c` for one step's input shape `(batch, *spatial, channels)`."""
        spatial = step_shape[1:-1] if self._channels_last else step_shape[2:]
        out = tuple(cu.conv_output_length(n, k, s, d, self.padding) for n, k, s, d in
                    zip(spatial, self.kernel_size, self.strides, self.dilation_rate))
        if any(n is not None and n <= 0 for n in out):
            raise ValueError(
                f"{cu.owner_of(self)}: computed output size would be zero or negative. "
                f"Received: input shape={tuple(step_shape)}, kernel_size={self.kernel_size}, "
                f"padding={self.padding!r}")
        if self._channels_last:
            return (step_shape[0], *out, self.filters)
        return (step_shape[0], self.filters, *out)

    def build(self, input_shape):
        channels = input_shape[-1 if self._channels_last else 1]
        if channels is None:
            raise ValueError(
                f"{cu.owner_of(self)}: the channel dimension of the inputs must be known. "
                f"Received: input shape={tuple(input_shape)}")
        self.state_shape(input_shape)
        self._step_shape = tuple(input_shape)
        size, layout = 4 * self.filters, cu.kernel_layout(self.rank)
        self.kernel = self.add_weight(
            "kernel", (*self.kernel_size, channels, size), self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
            layout=layout)
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (*self.kernel_size, self.filters, size),
            self.recurrent_initializer, regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint, layout=layout)
        self.bias = self.add_weight(
            "bias", (size,), self._bias_init(), regularizer=self.bias_regularizer,
            constraint=self.bias_constraint) if self.use_bias else None

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        ones, filters = initializers.get("ones"), self.filters

        def init(shape, dtype=None):
            return torch.cat([self.bias_initializer((filters,), dtype=dtype),
                              ones((filters,), dtype=dtype),
                              self.bias_initializer((2 * filters,), dtype=dtype)])
        return init

    # ------------------------------------------------------------------ computing
    def _conv(self, x, weight, bias, strides, dilation, same: bool):
        """Convolve `x` (layer's data format, one leading batch dim): channels-first output."""
        if self._channels_last:
            x = x.permute(self._to_first)
        padding = 0
        if same:
            pads = cu.same_padding(tuple(x.shape[2:]), self.kernel_size, strides, dilation)
            x, padding = cu.pad_for_torch(x, pads)
        return CONV[self.rank](x, weight, bias, strides, padding, dilation)

    def project_inputs(self, inputs, masks=None):
        """Input convolution of every gate for `(*lead, *spatial, channels)` inputs.

        Returns `(*lead, 4 * filters, *new_spatial)` (channels-first, bias included).
        """
        lead = inputs.shape[:inputs.dim() - self.rank - 1]
        step = inputs.shape[len(lead):]
        args = (self.strides, self.dilation_rate, self.padding == "same")
        if masks is None:
            z = self._conv(inputs.reshape(-1, *step), self.kernel, self.bias, *args)
        else:
            biases = [None] * 4 if self.bias is None else self.bias.chunk(4)
            z = torch.cat([self._conv((inputs * m).reshape(-1, *step), w, b, *args)
                           for m, w, b in zip(masks, self.kernel.chunk(4), biases)], 1)
        return z.reshape(*lead, *z.shape[1:])

    def _step(self, projected, states, recurrent_masks):
        h, c = states
        ones = (1,) * self.rank
        if recurrent_masks is None:
            r = self._conv(h, self.recurrent_kernel, None, ones, ones, True)
        else:
            r = torch.cat([self._conv(h * m, w, None, ones, ones, True) for m, w in
                           zip(recurrent_masks, self.recurrent_kernel.chunk(4))], 1)
        i, f, g, o = (projected + r).chunk(4, 1)
        if self._channels_last:
            c = c.permute(self._to_first)
        gate = self.recurrent_activation
        c = gate(f) * c + gate(i) * self.activation(g)
        h = gate(o) * self.activation(c)
        if self._channels_last:
            h, c = h.permute(self._to_last), c.permute(self._to_last)
        return h, [h, c]

    def _mask_count(self) -> int:
        return 4  # Keras draws one dropout mask per gate for ConvLSTM

    def get_initial_state(self, batch_size=None):
        if self._step_shape is None or None in self._step_shape[1:]:
            raise ValueError(
                f"{cu.owner_of(self)}: the initial state needs a built cell with known "
                f"spatial dimensions. Received: input shape={self._step_shape}")
        shape = self.state_shape((batch_size, *self._step_shape[1:]))
        return [torch.zeros(shape, dtype=self._variable_dtype, device=self._device())
                for _ in range(2)]

    def get_config(self):
        config = super().get_config()
        config.pop("units")
        return {**config, "rank": self.rank, "filters": self.filters,
                "kernel_size": tuple(self.kernel_size), "strides": tuple(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": tuple(self.dilation_rate),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


@forward_to_cell(
    "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
    "activation", "recurrent_activation", "use_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "dropout", "recurrent_dropout", "seed")
class ConvLSTM(RNN):
    """N-d convolutional LSTM (base of ConvLSTM1D/2D/3D; subclasses set `rank`).

    Args:
        filters: positive int, the number of output channels.
        kernel_size, strides, padding, data_format, dilation_rate: of the input convolution.
        activation / recurrent_activation: default `"tanh"` / `"sigmoid"`. use_bias: True.
        kernel_initializer / recurrent_initializer / bias_initializer: default
            `"glorot_uniform"` / `"orthogonal"` / `"zeros"`.
        unit_forget_bias: add 1 to the forget-gate bias at initialization (default True).
        kernel_regularizer / recurrent_regularizer / bias_regularizer / activity_regularizer,
            kernel_constraint / recurrent_constraint / bias_constraint: optional.
        dropout / recurrent_dropout: fractions of inputs / state dropped in training.
        seed: int making the dropout masks reproducible.
        return_sequences, return_state, go_backwards, stateful: as in `RNN`.

    Input shape: `(batch, time, *spatial, channels)` (channels-last) or
    `(batch, time, channels, *spatial)`. Output: `(batch, *new_spatial, filters)`, with
    `return_sequences` `(batch, time, *new_spatial, filters)`; `return_state` adds `h`, `c`.
    Weights (Keras layout): kernel `(*kernel_size, channels, 4 * filters)`, recurrent_kernel
    `(*kernel_size, filters, 4 * filters)`, bias `(4 * filters,)`, gates i, f, c, o.
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, **kwargs):
        args = conv_arguments(_owner(type(self).__name__, kwargs), self.rank, filters,
                              kernel_size, strides, padding, data_format, dilation_rate)
        cell = ConvLSTMCell(
            self.rank, **args, activation=activation,
            recurrent_activation=recurrent_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed,
            dtype=kwargs.get("dtype"), trainable=kwargs.get("trainable", True),
            name="conv_lstm_cell")
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful,
                         activity_regularizer=activity_regularizer, **kwargs)

    def _check_shape(self, shape) -> None:
        if len(shape) == self.rank + 3:
            return
        dims = {1: "steps", 2: "rows, cols", 3: "depth, rows, cols"}[self.rank]
        layout = f"{dims}, channels" if self.cell._channels_last else f"channels, {dims}"
        raise ValueError(
            f"{cu.owner_of(self)} expects inputs of shape (batch, time, {layout}). "
            f"Received: input shape={tuple(shape)}")

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        self._check_shape(sequences_shape)
        batch, steps = sequences_shape[:2]
        state = self.cell.state_shape((batch, *sequences_shape[2:]))
        output = (batch, steps, *state[1:]) if self.return_sequences else state
        return [output, state, state] if self.return_state else output

    def _zero_states(self, sequences):
        shape = self.cell.state_shape((sequences.shape[0], *sequences.shape[2:]))
        return [sequences.new_zeros(shape) for _ in range(2)]

    def get_initial_state(self, batch_size: int) -> list:
        return self.cell.get_initial_state(batch_size)

    def get_config(self):
        config = cell_layer_config(self)
        config.pop("rank")
        return config


@register_layer()
class ConvLSTM1D(ConvLSTM):
    """1D convolutional LSTM: inputs `(batch, time, steps, channels)`; see `ConvLSTM`."""

    rank = 1


@register_layer()
class ConvLSTM2D(ConvLSTM):
    """2D convolutional LSTM: inputs `(batch, time, rows, cols, channels)`; see `ConvLSTM`.

    Example:
        >>> ConvLSTM2D(4, 3, padding="same")(torch.ones(2, 5, 8, 8, 3)).shape
        torch.Size([2, 8, 8, 4])
    """

    rank = 2


@register_layer()
class ConvLSTM3D(ConvLSTM):
    """3D convolutional LSTM: inputs `(batch, time, depth, rows, cols, channels)`."""

    rank = 3
