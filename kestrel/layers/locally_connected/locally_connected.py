"""LocallyConnected1D and LocallyConnected2D: convolutions whose weights are not shared.

Keras 2 layers (`keras.layers.local`), with Keras 2's arguments, weight layouts for its three
`implementation` modes, and numbers. Every mode runs the same way: the input is cut into
patches with `Tensor.unfold` and each position's patch meets its own kernel in one batched
matmul (see `kernel_index` for how modes 2 and 3 are read as that local kernel).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kestrel import activations, constraints, initializers, regularizers
from kestrel.layers.convolutional import conv_utils as cu
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.locally_connected import kernel_index as ki


class LocallyConnected(Layer):
    """An N-d locally-connected layer: `activation(sum_k patch_p[k] * W_p[k] + b_p)`.

    Args:
        filters: the number of output channels.
        kernel_size: int or `rank` ints, the window size.
        strides: int or `rank` ints, the window step.
        padding: `"valid"`, or `"same"` (only with `implementation` 2 or 3, as in Keras 2:
            output size `ceil(input / stride)`, windows starting `kernel_size // 2` early).
        data_format: `"channels_last"` (default) or `"channels_first"`.
        activation: applied to the output; None means linear.
        use_bias: whether to add a bias, one per output position and filter.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint: as for `Conv2D`.
        implementation: Keras 2's kernel layout: 1 `(positions, patch_size, filters)`, 2 a
            dense masked kernel, 3 a vector of the connected weights. All give the same
            outputs and run the same code.
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 implementation=1, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        owner = cu.owner_of(self)
        self.filters = positive_int(filters, "filters", owner)
        self.kernel_size = cu.standardize_tuple(kernel_size, self.rank, "kernel_size", owner)
        self.strides = cu.standardize_tuple(strides, self.rank, "strides", owner)
        self.padding = cu.standardize_padding(padding, owner)
        self.data_format = cu.standardize_data_format(data_format, owner)
        if implementation not in (1, 2, 3):
            raise ValueError(f"{owner}: implementation must be 1, 2 or 3. "
                             f"Received: implementation={implementation!r}")
        if self.padding == "same" and implementation == 1:
            raise ValueError(f"{owner}: padding='same' needs implementation 2 or 3 (Keras 2 "
                             "supports only 'valid' with implementation 1). Received: "
                             "padding='same', implementation=1")
        self.implementation = implementation
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(ndim=self.rank + 2)
        self._channels_last = self.data_format == "channels_last"

    def _geometry(self, input_shape) -> tuple:
        """`(spatial, channels)` of `input_shape`, which must be fully known."""
        input_shape = tuple(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{cu.owner_of(self)}: expected inputs of rank {self.rank + 2}. "
                             f"Received: input shape={input_shape}")
        spatial = input_shape[1:-1] if self._channels_last else input_shape[2:]
        channels = input_shape[-1] if self._channels_last else input_shape[1]
        if channels is None or any(n is None for n in spatial):
            raise ValueError(f"{cu.owner_of(self)}: all dimensions but the batch must be "
                             f"known. Received: input shape={input_shape}")
        return tuple(spatial), channels

    def _out_spatial(self, spatial) -> tuple:
        out = tuple(ki.output_length(n, k, s, self.padding)
                    for n, k, s in zip(spatial, self.kernel_size, self.strides))
        if min(out) <= 0:
            raise ValueError(f"{cu.owner_of(self)}: the window does not fit in the input. "
                             f"Received: input size={spatial}, kernel_size={self.kernel_size}")
        return out

    def build(self, input_shape):
        spatial, channels = self._geometry(input_shape)
        self._out = self._out_spatial(spatial)
        self._patch_size = channels * math.prod(self.kernel_size)
        geometry = (spatial, channels, self.kernel_size, self.strides, self.padding,
                    self.filters, self._channels_last)
        self.kernel = self.add_weight(
            "kernel", ki.kernel_shape(self.implementation, *geometry), self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        index = ki.gather_index(self.implementation, *geometry)
        self.register_buffer("_kernel_index", None if index is None else torch.from_numpy(index),
                             persistent=False)
        self.bias = self.add_weight(
            "bias", (*self._out, self.filters), self.bias_initializer,
            regularizer=self.bias_regularizer, constraint=self.bias_constraint,
        ) if self.use_bias else None
        axis = -1 if self._channels_last else 1
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={axis: channels})
        self.built = True

    def _local_kernel(self) -> torch.Tensor:
        """The kernel as `(positions, patch_size, filters)`."""
        if self._kernel_index is None:
            return self.kernel
        flat = torch.cat([self.kernel.reshape(-1), self.kernel.new_zeros(1)])
        return flat[self._kernel_index]

    def call(self, inputs):
        rank, x = self.rank, inputs
        if not self._channels_last:  # windows are cut from a channels-last view
            x = x.movedim(1, -1)
        offsets = ki.window_offset(self.kernel_size, self.padding)
        pads = []
        for d in reversed(range(rank)):
            needed = (self._out[d] - 1) * self.strides[d] + self.kernel_size[d]
            pads += [offsets[d], max(0, needed - offsets[d] - x.shape[1 + d])]
        if any(pads):
            x = F.pad(x, (0, 0, *pads))
        for d in range(rank):
            x = x.unfold(1 + d, self.kernel_size[d], self.strides[d])
        # x: (batch, *out, channels, *kernel); the patch order is the data format's
        if self._channels_last:
            x = x.movedim(1 + rank, -1)
        patches = x.reshape(x.shape[0], -1, self._patch_size)
        outputs = torch.bmm(patches.transpose(0, 1), self._local_kernel()).transpose(0, 1)
        outputs = outputs.reshape(outputs.shape[0], *self._out, self.filters)
        if self._channels_last:
            if self.bias is not None:
                outputs = outputs + self.bias
        else:
            outputs = outputs.movedim(-1, 1)
            if self.bias is not None:  # Keras 2's bias_add reshapes (not transposes) the bias
                outputs = outputs + self.bias.reshape(self.filters, *self._out)
        if self.activation is activations.linear:
            return outputs
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        spatial, _ = self._geometry(input_shape)
        out = self._out_spatial(spatial)
        if self._channels_last:
            return (input_shape[0], *out, self.filters)
        return (input_shape[0], self.filters, *out)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "implementation": self.implementation,
        }


@register_layer()
class LocallyConnected1D(LocallyConnected):
    """Locally-connected layer over `(batch, steps, channels)` inputs (Keras 2).

    Args: as `LocallyConnected`, for one spatial dimension.

    Input shape: `(batch, steps, channels)` (channels-last) or `(batch, channels, steps)`.
    Output shape: `(batch, new_steps, filters)` or `(batch, filters, new_steps)`.
    Kernel (implementation 1): `(new_steps, kernel_size * channels, filters)`; bias
    `(new_steps, filters)`.

    Example:
        >>> LocallyConnected1D(4, 3)(torch.ones(2, 10, 5)).shape
        torch.Size([2, 8, 4])
    """

    rank = 1


@register_layer()
class LocallyConnected2D(LocallyConnected):
    """Locally-connected layer over `(batch, rows, cols, channels)` inputs (Keras 2).

    Args: as `LocallyConnected`, for two spatial dimensions.

    Input shape: `(batch, rows, cols, channels)` or `(batch, channels, rows, cols)`.
    Output shape: `(batch, new_rows, new_cols, filters)` or channels-first.
    Kernel (implementation 1): `(new_rows * new_cols, kh * kw * channels, filters)`; bias
    `(new_rows, new_cols, filters)`.

    Example:
        >>> LocallyConnected2D(8, (3, 3))(torch.ones(2, 6, 6, 3)).shape
        torch.Size([2, 4, 4, 8])
    """

    rank = 2
