"""Highway: Keras 1's densely connected highway layer, which Keras 2.0-2.2 kept with a warning
(`keras.legacy.layers`), with its Keras 1 argument names and weight order."""
from __future__ import annotations

import warnings

import torch

from kestrel import activations, constraints, initializers, regularizers
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer, register_layer


@register_layer()
class Highway(Layer):
    """`t * activation(x @ W + b) + (1 - t) * x`, where the transform gate is
    `t = sigmoid(x @ W_carry + b_carry)` (Srivastava et al., 2015).

    Args:
        init: initializer of `W` and `W_carry` (`b` starts at 0, `b_carry` at 1).
        activation: activation of the transform; None means linear.
        W_regularizer / b_regularizer / activity_regularizer: optional regularizers.
        W_constraint / b_constraint: optional constraints of `W` and `b`.
        bias: whether to add the biases `b` and `b_carry`.
        input_dim: the input size, for a first layer.

    Input and output shape: `(batch, input_dim)`. The weights are `W`, `W_carry`, `b`,
    `b_carry`, in Keras 2's order.
    """

    def __init__(self, init="glorot_uniform", activation=None, W_regularizer=None,  # noqa: N803
                 b_regularizer=None, activity_regularizer=None, W_constraint=None,  # noqa: N803
                 b_constraint=None, bias=True, input_dim=None, **kwargs):
        warnings.warn("The `Highway` layer is deprecated and will be removed after 06/2017.",
                      DeprecationWarning, stacklevel=2)
        if "transform_bias" in kwargs:
            kwargs.pop("transform_bias")
            warnings.warn("`transform_bias` argument is deprecated and has been removed.",
                          DeprecationWarning, stacklevel=2)
        super().__init__(activity_regularizer=activity_regularizer, input_dim=input_dim, **kwargs)
        self.init = initializers.get(init)
        self.activation = activations.get(activation or "linear")
        self.W_regularizer = regularizers.get(W_regularizer)
        self.b_regularizer = regularizers.get(b_regularizer)
        self.W_constraint = constraints.get(W_constraint)
        self.b_constraint = constraints.get(b_constraint)
        self.bias = bias
        self.input_dim = input_dim
        self.input_spec = InputSpec(ndim=2)

    def build(self, input_shape):
        input_dim = input_shape[1]
        self.W = self.add_weight((input_dim, input_dim), self.init, name="W",
                                 regularizer=self.W_regularizer, constraint=self.W_constraint)
        self.W_carry = self.add_weight((input_dim, input_dim), self.init, name="W_carry")
        self.b = self.b_carry = None
        if self.bias:
            self.b = self.add_weight((input_dim,), "zeros", name="b",
                                     regularizer=self.b_regularizer,
                                     constraint=self.b_constraint)
            self.b_carry = self.add_weight((input_dim,), "ones", name="b_carry")
        self.input_spec = InputSpec(ndim=2, axes={-1: input_dim})

    def call(self, x):
        carry, transform = x.matmul(self.W_carry), x.matmul(self.W)
        if self.bias:
            carry, transform = carry + self.b_carry, transform + self.b
        gate = torch.sigmoid(carry)
        return self.activation(transform) * gate + (1 - gate) * x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "init": initializers.serialize(self.init),
            "activation": activations.serialize(self.activation),
            "W_regularizer": regularizers.serialize(self.W_regularizer),
            "b_regularizer": regularizers.serialize(self.b_regularizer),
            "W_constraint": constraints.serialize(self.W_constraint),
            "b_constraint": constraints.serialize(self.b_constraint),
            "bias": self.bias,
            "input_dim": self.input_dim,
        }
