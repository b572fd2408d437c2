"""EinsumDense: a dense layer whose contraction is an einsum equation."""
from __future__ import annotations

import re

from kestrel import activations, constraints, initializers, ops, regularizers
from kestrel.initializers.variance_scaling import with_fan_axes
from kestrel.layers.core.lora import LoraAdaptable
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer, register_layer
from kestrel.quantizers import int4, int8
from kestrel.quantizers.layer_mixin import Quantizable

_FORMS = (  # (pattern on the equation with "..." written as "0", ellipsis side)
    (r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", None),
    (r"0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)", "left"),
    (r"([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0", "right"),
)


def analyze_equation(equation: str, bias_axes: str | None, input_shape, output_shape):
    """Shapes that `equation` implies for an input of `input_shape`.

    Returns `(kernel_shape, bias_shape or None, full_output_shape, input_axes, output_axes)`;
    `input_axes` / `output_axes` are the kernel axes contracted with the input / kept in the
    output (the fans of the kernel initializer).

    Example:
        >>> analyze_equation("ab,bc->ac", "c", (None, 3), (4,))[:3]
        ([3, 4], [4], [None, 4])
    """
    marked = equation.replace("...", "0")
    for pattern, ellipsis in _FORMS:
        found = re.fullmatch(pattern, marked)
        if found:
            break
    else:
        raise ValueError(
            f"EinsumDense: equation must have the form [X],[Y]->[Z], ...[X],[Y]->...[Z] or "
            f"[X]...,[Y]->[Z].... Received: equation={equation!r}")
    in_spec, w_spec, out_spec = found.groups()
    input_shape = list(input_shape)
    elided = len(input_shape) - len(in_spec)
    given = [output_shape] if isinstance(output_shape, int) else list(output_shape)
    if ellipsis == "left":
        full = [input_shape[0], *input_shape[1:max(elided, 1)], *given]
        in_dims = {c: input_shape[elided + i] for i, c in enumerate(in_spec)}
        out_index = {c: elided + i for i, c in enumerate(out_spec)}
    else:
        full = [input_shape[0], *given, *input_shape[len(input_shape) - max(elided, 0):]]
        in_dims = {c: input_shape[i] for i, c in enumerate(in_spec)}
        out_index = {c: i for i, c in enumerate(out_spec)}
    if len(full) != len(out_spec) + max(elided, 0):
        raise ValueError(
            f"EinsumDense: output_shape does not fit the output spec {out_spec!r} for inputs of "
            f"rank {len(input_shape)}. Received: output_shape={tuple(given)}")
    out_dims = {c: full[out_index[c]] for c in out_spec}
    for c in in_spec:
        if c in out_dims and out_dims[c] is not None and out_dims[c] != in_dims[c]:
            raise ValueError(
                f"EinsumDense: input and output shapes differ at shared dimension {c!r}. "
                f"Received: input dim={in_dims[c]}, output dim={out_dims[c]}")
        if c in out_dims and out_dims[c] is None:  # unknown output axis: the input's size
            out_dims[c] = full[out_index[c]] = in_dims[c]
    for c in out_spec:
        if c not in in_spec and c not in w_spec:
            raise ValueError(
                f"EinsumDense: output dimension {c!r} is in neither the input spec {in_spec!r} "
                f"nor the weight spec {w_spec!r}. Received: equation={equation!r}")
    kernel_shape, input_axes, output_axes = [], [], []
    for i, c in enumerate(w_spec):
        if c in out_dims:
            kernel_shape.append(out_dims[c])
            output_axes.append(i)
        elif c in in_dims:
            kernel_shape.append(in_dims[c])
            input_axes.append(i)
        else:
            raise ValueError(
                f"EinsumDense: weight dimension {c!r} is in neither the input spec "
                f"{in_spec!r} nor the output spec {out_spec!r}. Received: equation={equation!r}")
    bias_shape = None
    if bias_axes is not None:
        for c in bias_axes:
            if c not in out_spec:
                raise ValueError(
                    f"EinsumDense: bias dimension {c!r} is not in the output spec "
                    f"{out_spec!r}. Received: bias_axes={bias_axes!r}")
        first = min(out_spec.index(c) for c in bias_axes)
        bias_shape = [out_dims[c] if c in bias_axes else 1 for c in out_spec[first:]]
        if ellipsis != "left":
            bias_shape += [1] * max(elided, 0)
    return kernel_shape, bias_shape, full, input_axes, output_axes


@register_layer()
class EinsumDense(LoraAdaptable, Quantizable, Layer):
    """A dense layer computing `activation(einsum(equation, inputs, kernel) + bias)`.

    Args:
        equation: `"ab,bc->ac"`, `"...ab,bc->...ac"` or `"ab...,bc->ac..."` style einsum.
        output_shape: output shape without the batch and elided axes (int or tuple; None
            entries are taken from the input).
        activation: activation name or function; None means linear.
        bias_axes: output axis letters that get a bias (None: no bias).
        kernel_initializer ... bias_constraint: as for Dense.
        lora_rank / lora_alpha: LoRA, as for Dense; the adapters are `lora_kernel_a`
            (`kernel.shape[:-1] + (rank,)`) and `lora_kernel_b` (`(rank, kernel.shape[-1])`).

    The kernel and bias have the shapes Keras derives from the equation, so weights move
    between Kestrel and Keras unchanged.

    Example:
        >>> layer = EinsumDense("abc,cde->abde", output_shape=(None, 2, 4), bias_axes="de")
        >>> layer(torch.ones(2, 5, 3)).shape
        torch.Size([2, 5, 2, 4])
    """

    _lora_build_keeps_alpha = True
    _int8_weight, _int8_rules = "kernel", (int8.quantize_einsum, int8.einsum_call)
    _quantizes_inputs = True
    _int4_rules = (int4.quantize_einsum, int4.einsum_call)

    def __init__(self, equation, output_shape, activation=None, bias_axes=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, activity_regularizer=None, lora_rank=None,
                 lora_alpha=None, quantization_config=None, **kwargs):
        mode = self._pop_quantized_dtype(kwargs, "einsum_dense")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._set_quantization_mode(mode, quantization_config)
        if not isinstance(equation, str):
            raise TypeError(f"EinsumDense '{self.name}': equation must be a string. "
                            f"Received: equation type={type(equation).__name__}")
        self.equation = equation
        self.partial_output_shape = (output_shape,) if isinstance(output_shape, int) \
            else tuple(output_shape)
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self._init_lora(lora_rank, lora_alpha)

    def build(self, input_shape):
        kernel_shape, bias_shape, _, in_axes, out_axes = analyze_equation(
            self.equation, self.bias_axes, input_shape, self.partial_output_shape)
        self.input_spec = InputSpec(ndim=len(input_shape))
        init = with_fan_axes(self.kernel_initializer, in_axes, out_axes)
        self.kernel = self.add_weight("kernel", tuple(kernel_shape), init,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = None if bias_shape is None else self.add_weight(
            "bias", tuple(bias_shape), self.bias_initializer,
            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        if self._quantization_mode:
            self._quantized_build()
        self._build_lora()

    def call(self, inputs):
        return self._call_with(inputs, self.kernel)

    def _call_with(self, inputs, kernel):
        """`call` with `kernel` (the layer's own, or LoRA's merged one)."""
        x = ops.einsum(self.equation, inputs, kernel)
        if self.bias is not None:
            x = x + self.bias
        return x if self.activation is None else self.activation(x)

    @staticmethod
    def _float8_contract(layer, x, kernel):
        return ops.einsum(layer.equation, x, kernel)

    def compute_output_shape(self, input_shape):
        return tuple(analyze_equation(self.equation, self.bias_axes, input_shape,
                                      self.partial_output_shape)[2])

    def get_config(self):
        return {
            **super().get_config(),
            "output_shape": list(self.partial_output_shape),
            "equation": self.equation,
            "activation": activations.serialize(self.activation),
            "bias_axes": self.bias_axes,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            **self._quantization_entry(),
            **self._lora_entry(),
        }
