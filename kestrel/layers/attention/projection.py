"""The projections inside MultiHeadAttention: a dense map between multi-axis feature blocks."""
from __future__ import annotations

import math

import torch

from kestrel import initializers
from kestrel.initializers.variance_scaling import with_fan_axes
from kestrel.layers.layer import Layer


class HeadProjection(Layer):
    """Maps the last `len(in_dims)` axes of the input to `out_shape` with one kernel.

    The kernel has Keras' EinsumDense layout `(*in_dims, *out_shape)` and the bias
    `out_shape`: `(dim, heads, key_dim)` / `(heads, key_dim)` for the query, key and value
    projections, `(heads, value_dim, dim)` / `(dim,)` for the output projection. It is
    computed as one matrix product on the flattened blocks.

    Args:
        in_dims: sizes of the contracted trailing input axes.
        out_shape: sizes of the produced trailing axes.
        use_bias: whether to add the bias.
        activation: optional function applied to the result (the gate's sigmoid).
        kernel_initializer ... bias_constraint: as for Dense.
    """

    # MultiHeadAttention's own projections: Keras' MHA strips its inputs' masks before them,
    # so a masked query draws no dropped-mask warning from them
    _warned_mask_dropped = True

    def __init__(self, in_dims, out_shape, use_bias=True, activation=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.in_dims = tuple(in_dims)
        self.out_shape = tuple(out_shape)
        self.activation = activation
        self._in_size = math.prod(self.in_dims)
        self._out_size = math.prod(self.out_shape)
        rank_in = len(self.in_dims)
        kernel_initializer = with_fan_axes(  # fans as Keras' EinsumDense projections
            initializers.get(kernel_initializer), range(rank_in),
            range(rank_in, rank_in + len(self.out_shape)))
        self.kernel = self.add_weight("kernel", self.in_dims + self.out_shape, kernel_initializer,
                                      regularizer=kernel_regularizer, constraint=kernel_constraint)
        self.bias = self.add_weight("bias", self.out_shape, bias_initializer,
                                    regularizer=bias_regularizer,
                                    constraint=bias_constraint) if use_bias else None
        self.built = True

    def call(self, inputs):
        lead = inputs.shape[:inputs.dim() - len(self.in_dims)]
        flat = inputs.reshape(*lead, self._in_size)
        kernel = self.kernel.view(self._in_size, self._out_size)
        if self.bias is not None:
            out = torch.addmm(self.bias.view(-1), flat.reshape(-1, self._in_size), kernel)
            out = out.view(*lead, *self.out_shape)
        else:
            out = flat.matmul(kernel).view(*lead, *self.out_shape)
        return out if self.activation is None else self.activation(out)
