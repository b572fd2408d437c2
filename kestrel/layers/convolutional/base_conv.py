"""Base classes of the convolution layers.

`ConvLayerBase` holds what every convolution shares (kernel size, strides, padding, data
format, dilation, bias, activation) and the channels-last <-> channels-first plumbing around
torch's fused kernels; `BaseConv` is the regular N-d convolution behind Conv1D/2D/3D.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from kestrel import activations, constraints, initializers, regularizers
from kestrel.activations.activations import is_builtin
from kestrel.layers.config_order import keras_order
from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.convolutional.padded_conv import conv_with_pads
from kestrel.layers.input_spec import InputSpec, check_input_shapes
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import Layer

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


# Keras' key order of every convolution's own arguments (each class writes a subset).
CONV_CONFIG_ORDER = (
    "depth_multiplier", "filters", "kernel_size", "strides", "padding", "output_padding",
    "data_format", "dilation_rate", "groups", "activation", "use_bias", "kernel_initializer",
    "depthwise_initializer", "pointwise_initializer", "bias_initializer", "kernel_regularizer",
    "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer", "activity_regularizer",
    "kernel_constraint", "depthwise_constraint", "pointwise_constraint", "bias_constraint")


class ConvLayerBase(Layer):
    """What every convolution shares; subclasses set `rank` and create the kernels.

    Args:
        kernel_size: int or `rank` ints, the size of the convolution window.
        strides: int or `rank` ints; `strides > 1` excludes `dilation_rate > 1`.
        padding: `"valid"` (none) or `"same"` (output size `ceil(input / stride)`, padded
            evenly with any extra element at the end, as Keras/TF do).
        data_format: `"channels_last"` (default) or `"channels_first"`.
        dilation_rate: int or `rank` ints, the dilation of the window.
        activation: applied to the output; None means linear.
        use_bias: whether to add a bias vector.
        bias_initializer / bias_regularizer / bias_constraint: for the bias.
    """

    rank = 2
    paddings = ("valid", "same")

    @property
    def _output_is_fresh(self) -> bool:
        return self.activation is None or is_builtin(self.activation)

    def __init__(self, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, bias_initializer="zeros",
                 bias_regularizer=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        owner, rank = cu.owner_of(self), self.rank
        self.kernel_size = cu.standardize_tuple(kernel_size, rank, "kernel_size", owner)
        self.strides = cu.standardize_tuple(strides, rank, "strides", owner)
        self.dilation_rate = cu.standardize_tuple(dilation_rate, rank, "dilation_rate", owner)
        self.padding = cu.standardize_padding(padding, owner, self.paddings)
        self.data_format = cu.standardize_data_format(data_format, owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{owner}: strides > 1 is not supported together with dilation_rate > 1. "
                f"Received: strides={self.strides}, dilation_rate={self.dilation_rate}")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(ndim=rank + 2)
        self._channels_last = self.data_format == "channels_last"
        self._to_channels_first, self._to_channels_last = cu.channel_permutations(rank)

    # ------------------------------------------------------------------ build helpers
    def _input_channels(self, input_shape) -> int:
        """The channel count of `input_shape`, which must be known; also fixes `input_spec`."""
        axis = -1 if self._channels_last else 1
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                f"{cu.owner_of(self)}: the channel dimension of the inputs must be known. "
                f"Received: input shape={tuple(input_shape)}")
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={axis: channels})
        return channels

    def _add_bias(self, size: int):
        if not self.use_bias:
            return None
        return self.add_weight("bias", (size,), self.bias_initializer,
                               regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    # ------------------------------------------------------------------ call helpers
    def _channels_first(self, inputs: torch.Tensor) -> torch.Tensor:
        """`inputs` (rank checked) as a channels-first view for torch's ops."""
        if inputs.ndim != self.rank + 2:
            check_input_shapes(self, self.input_spec, tuple(inputs.shape))
        return cu.permuted(inputs, self._to_channels_first) if self._channels_last else inputs

    def _convolve(self, x: torch.Tensor, weight, bias, groups: int, pads=None):
        """torch's convolution of channels-first `x` with this layer's padding, after `pads`
        ((before, after) zeros per spatial dim, from a `ZeroPadding` the model fused into this
        layer: `_call_padded_in_graph`), without building a padded copy of `x` (`padded_conv`)."""
        conv = CONV[self.rank]
        if self.padding == "causal":
            x = F.pad(x, (self.dilation_rate[0] * (self.kernel_size[0] - 1), 0))
        elif self.padding == "same":
            spatial = tuple(x.shape[2:]) if pads is None else tuple(
                n + sum(pair) for n, pair in zip(x.shape[2:], pads))
            same = cu.same_padding(spatial, self.kernel_size, self.strides, self.dilation_rate)
            pads = same if pads is None else tuple(
                (b + sb, a + sa) for (b, a), (sb, sa) in zip(pads, same))
        if pads is None:
            return conv(x, weight, bias, self.strides, 0, self.dilation_rate, groups)
        return conv_with_pads(conv, x, weight, bias, self.strides, pads, self.dilation_rate,
                              groups)

    def _fusable_padding(self) -> bool:
        """Whether a model may hand this layer a `ZeroPadding`'s input and its padding
        (`_call_padded_in_graph`) instead of the padded tensor: true for the classes whose
        `call` is `_padded_call(inputs, None)`, unless a subclass overrides it."""
        return False

    def _takes_padding(self, padding_layer) -> bool:
        return padding_layer.rank == self.rank and \
            padding_layer.data_format == self.data_format and self._fusable_padding()

    def _call_padded_in_graph(self, x: torch.Tensor, pads: tuple):
        """`self(pad(x, pads))` for a model that fused the `ZeroPadding` before this layer."""
        if self._runs_plain(x):
            return self._call_plain(functools.partial(self._padded_call, pads=pads), x)
        first = 1 if self._channels_last else 2
        return self._call_in_graph(cu.pad(x, pads, first))

    def _output_weights(self) -> tuple:
        """(kernel, bias) of the layer's last convolution, kernel in torch's layout, which
        `_padded_call(..., weights)` may replace."""
        return self.kernel, self.bias

    def _finish(self, outputs: torch.Tensor) -> torch.Tensor:
        """Back to the layer's data format, then the activation."""
        if self._channels_last:
            outputs = outputs.permute(self._to_channels_last)
        if self.activation is activations.linear:
            return outputs
        return self.activation(outputs)

    # ------------------------------------------------------------------ shapes and config
    def _output_channels(self, input_shape):
        raise NotImplementedError

    def _output_length(self, length, dim: int):
        return cu.conv_output_length(length, self.kernel_size[dim], self.strides[dim],
                                     self.dilation_rate[dim], self.padding)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        spatial = input_shape[1:-1] if self._channels_last else input_shape[2:]
        out = tuple(self._output_length(n, i) for i, n in enumerate(spatial))
        if any(n is not None and n <= 0 for n in out):
            raise ValueError(
                f"{cu.owner_of(self)}: computed output size would be zero or negative. "
                f"Received: input shape={input_shape}, kernel_size={self.kernel_size}, "
                f"strides={self.strides}, dilation_rate={self.dilation_rate}, "
                f"padding={self.padding!r}")
        channels = self._output_channels(input_shape)
        if self._channels_last:
            return (input_shape[0], *out, channels)
        return (input_shape[0], channels, *out)

    def _in_keras_order(self, config: dict) -> dict:
        return keras_order(config, CONV_CONFIG_ORDER)

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": tuple(self.kernel_size),
            "strides": tuple(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": tuple(self.dilation_rate),
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }


class BaseConv(ConvLayerBase):
    """N-d convolution: `activation(conv(inputs, kernel) + bias)`.

    Args:
        filters: number of output channels (positive int, divisible by `groups`).
        kernel_size, strides, padding, data_format, dilation_rate: see `ConvLayerBase`.
        groups: split the input channels into `groups` convolved separately.
        activation, use_bias: see `ConvLayerBase`.
        kernel_initializer / bias_initializer: `"glorot_uniform"` / `"zeros"` by default.
        kernel_regularizer / bias_regularizer / activity_regularizer: optional regularizers.
        kernel_constraint / bias_constraint: optional constraints.

    The kernel has Keras' layout `(*kernel_size, in_channels // groups, filters)`.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, bias_constraint,
                         activity_regularizer=activity_regularizer, **kwargs)
        owner = cu.owner_of(self)
        self.filters = positive_int(filters, "filters", owner)
        self.groups = positive_int(groups, "groups", owner)
        if filters % groups:
            raise ValueError(
                f"{owner}: filters must be divisible by groups. "
                f"Received: filters={filters}, groups={groups}")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        if channels % self.groups:
            raise ValueError(
                f"{cu.owner_of(self)}: the number of input channels must be divisible by "
                f"groups={self.groups}. Received: input shape={tuple(input_shape)}")
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight(
            "kernel", (*self.kernel_size, channels // self.groups, self.filters),
            self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint, layout=cu.kernel_layout(self.rank))
        self.bias = self._add_bias(self.filters)
        self.built = True

    def call(self, inputs):
        if type(self).convolution_op is not BaseConv.convolution_op:
            return self._call_overridden_op(inputs)
        return self._padded_call(inputs, None)

    def _padded_call(self, inputs, pads, weights=None):
        """`call` after `pads` zeros, with `weights` (kernel, bias) in place of the layer's
        own where given (`batch_norm_folding`)."""
        kernel, bias = weights or self._output_weights()
        x = self._channels_first(inputs)
        return self._finish(self._convolve(x, kernel, bias, self.groups, pads))

    def _fusable_padding(self) -> bool:
        return type(self).call is BaseConv.call and self.padding != "causal" and \
            type(self).convolution_op is BaseConv.convolution_op

    def convolution_op(self, inputs, kernel):
        """The bare convolution of `inputs` with a `kernel` in Keras' layout (no bias, no
        activation). Subclasses override it to transform the kernel, as in Keras.

        >>> class Standardized(keras.layers.Conv2D):
        ...     def convolution_op(self, inputs, kernel):
        ...         mean, var = keras.ops.moments(kernel, axes=[0, 1, 2], keepdims=True)
        ...         return super().convolution_op(inputs, (kernel - mean) / keras.ops.sqrt(var))
        """
        outputs = self._convolve(self._channels_first(inputs),
                                 cu.kernel_to_torch(kernel, self.rank), None, self.groups)
        return outputs.permute(self._to_channels_last) if self._channels_last else outputs

    def _call_overridden_op(self, inputs):
        """`call` around a subclass' `convolution_op`: Keras-layout kernel in, bias added."""
        outputs = self.convolution_op(inputs, cu.kernel_to_keras(self.kernel, self.rank))
        if self.bias is not None:
            shape = (-1,) if self._channels_last else (-1,) + (1,) * self.rank
            outputs = outputs + self.bias.reshape(shape)
        return outputs if self.activation is activations.linear else self.activation(outputs)

    def _output_channels(self, input_shape):
        return self.filters

    def get_config(self):
        return self._in_keras_order({
            **super().get_config(),
            "filters": self.filters,
            "groups": self.groups,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
        })
