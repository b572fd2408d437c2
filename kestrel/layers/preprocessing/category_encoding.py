"""CategoryEncoding: integer indices to one-hot, multi-hot or count vectors."""
from __future__ import annotations

import torch

from kestrel.layers.layer import Layer, register_layer
from kestrel.utils.numerical_utils import encode_categorical

OUTPUT_MODES = ("one_hot", "multi_hot", "count")


def encoded_shape(input_shape, output_mode: str, depth: int) -> tuple:
    """Output shape of `encode_categorical` for `input_shape` (`"int"` keeps the shape)."""
    input_shape = tuple(input_shape)
    if output_mode == "int":
        return input_shape
    if not input_shape:
        return (depth,)
    if output_mode == "one_hot" and (input_shape[-1] != 1 or len(input_shape) == 1):
        return input_shape + (depth,)
    return input_shape[:-1] + (depth,)


@register_layer()
class CategoryEncoding(Layer):
    """Encode integer features in `[0, num_tokens)` as dense one-hot, multi-hot or count rows.

    Args:
        num_tokens: the number of tokens (the output depth).
        output_mode: `"multi_hot"` (default), `"one_hot"` or `"count"` (`"binary"` means
            `"multi_hot"`).
        sparse: accepted for Keras compatibility; outputs are always dense torch tensors.

    Call arguments: `inputs` (int tensor), `count_weights` (same shape; `"count"` mode only).

    Example:
        >>> CategoryEncoding(4, output_mode="one_hot")(torch.tensor([3, 0]))
        tensor([[0., 0., 0., 1.],
                [1., 0., 0., 0.]])
    """

    _outputs_in_variable_dtype = True  # eagerly, as Keras (symbolic: the compute dtype)

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"CategoryEncoding: unknown output_mode, expected one of "
                             f"{OUTPUT_MODES}. Received: output_mode={output_mode}")
        if num_tokens is None:
            raise ValueError("CategoryEncoding: num_tokens must be set to use this layer. If "
                             "the number of tokens is not known beforehand, use the "
                             "IntegerLookup layer instead.")
        if num_tokens < 1:
            raise ValueError(f"CategoryEncoding: `num_tokens` must be >= 1. Received: "
                             f"num_tokens={num_tokens}.")
        self.num_tokens = num_tokens
        self.output_mode = output_mode
        self.sparse = sparse

    def call(self, inputs, count_weights=None):
        inputs = torch.as_tensor(inputs)
        if count_weights is not None:
            if self.output_mode != "count":
                raise ValueError("CategoryEncoding: `count_weights` is not used when "
                                 "`output_mode` is not `'count'`.")
            count_weights = torch.as_tensor(count_weights, dtype=self._variable_dtype)
        if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= self.num_tokens):
            raise ValueError(f"CategoryEncoding: input values must be in the range 0 <= "
                             f"values < num_tokens with num_tokens={self.num_tokens}. "
                             f"Received values in [{int(inputs.min())}, {int(inputs.max())}]")
        return encode_categorical(inputs, self.output_mode, self.num_tokens,
                                  self._variable_dtype, count_weights)

    def compute_output_shape(self, input_shape):
        return encoded_shape(input_shape, self.output_mode, self.num_tokens)

    def compute_output_spec(self, *args, **kwargs):
        from kestrel.layers import shape_inference
        from kestrel.layers.node import shape_of

        shape = self.compute_output_shape(shape_of(args[0]))
        return shape_inference.shapes_to_keras_tensors(shape, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "output_mode": self.output_mode}
