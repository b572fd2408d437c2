"""Dense: the densely-connected layer `activation(inputs @ kernel + bias)`."""
from __future__ import annotations

import torch

from kestrel import activations, constraints, initializers, regularizers
from kestrel.activations.activations import activate_fresh, is_builtin
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.core.lora import LoraAdaptable
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import Layer, register_layer
from kestrel.quantizers import int4, int8
from kestrel.quantizers.layer_mixin import Quantizable


@register_layer()
class Dense(LoraAdaptable, Quantizable, Layer):
    """Just your regular densely-connected layer.

    Args:
        units: dimensionality of the output space (positive int).
        activation: activation name or function; None means linear.
        use_bias: whether to add a bias vector.
        kernel_initializer / bias_initializer: initializers (`"glorot_uniform"` / `"zeros"`).
        kernel_regularizer / bias_regularizer / activity_regularizer: optional regularizers.
        kernel_constraint / bias_constraint: optional constraints.
        quantization_config: a `keras.quantizers.QuantizationConfig` (or its dict) that a
            quantized `dtype` runs with.
        lora_rank: if set, the layer is built with LoRA of this rank (see `enable_lora`).
        lora_alpha: LoRA's scale numerator (default `lora_rank`; Keras resets it to the rank
            when the layer builds with `lora_rank`).

    Input shape: `(batch, ..., input_dim)`. Output shape: `(batch, ..., units)`.
    The kernel has Keras' layout `(input_dim, units)`.

    Example:
        >>> Dense(4)(torch.ones(2, 3)).shape
        torch.Size([2, 4])
    """

    _int8_weight, _int8_rules = "kernel", (int8.quantize_dense, int8.dense_call)
    _quantizes_inputs = True
    _int4_rules = (int4.quantize_dense, int4.dense_call)

    @property
    def _output_is_fresh(self) -> bool:
        return self.activation is None or is_builtin(self.activation)

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None,
                 lora_alpha=None, quantization_config=None, **kwargs):
        mode = self._pop_quantized_dtype(kwargs, "dense")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._set_quantization_mode(mode, quantization_config)
        self.units = positive_int(units, "units", f"Dense '{self.name}'")
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(min_ndim=2)
        self.supports_masking = True
        self._init_lora(lora_rank, lora_alpha)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight("kernel", (input_dim, self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_dim})
        if self._quantization_mode:
            self._quantized_build()
        self._build_lora()

    def call(self, inputs):
        return self._call_with(inputs, self.kernel)

    def _call_with(self, inputs, kernel):
        """`call` with `kernel` (the layer's own, or LoRA's merged one)."""
        if not inputs.is_floating_point():  # int/bool data: promoted as Keras' matmul does
            inputs = inputs.to(kernel.dtype)
        if self.bias is not None and inputs.dim() == 2:
            outputs = torch.addmm(self.bias, inputs, kernel)
        else:
            outputs = inputs.matmul(kernel)
            if self.bias is not None:
                outputs = outputs + self.bias
        return activate_fresh(self.activation, outputs) \
            if self.activation is not None else outputs

    @staticmethod
    def _float8_contract(layer, x, kernel):
        return torch.matmul(x, kernel)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            **self._quantization_entry(),
            **self._lora_entry(),
        }
