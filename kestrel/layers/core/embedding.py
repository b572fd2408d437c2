"""Embedding: turns integer indices into dense vectors looked up in a table."""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from kestrel import constraints, initializers, ops, regularizers
from kestrel.layers.core.lora import LoraAdaptable
from kestrel.layers.int_args import positive_int
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import KerasTensor
from kestrel.quantizers import int4, int8
from kestrel.quantizers.layer_mixin import Quantizable

_INDEX_DTYPES = (torch.int32, torch.int64)


@register_layer()
class Embedding(LoraAdaptable, Quantizable, Layer):
    """Maps each index in `[0, input_dim)` to a learned vector of size `output_dim`.

    Args:
        input_dim: vocabulary size (positive int).
        output_dim: size of each vector (positive int).
        embeddings_initializer: initializer of the table (`"uniform"`: U(-0.05, 0.05)).
        embeddings_regularizer / embeddings_constraint / activity_regularizer: optional.
        mask_zero: whether index 0 is padding; the output then carries the mask `inputs != 0`.
        weights: optional initial table, `(input_dim, output_dim)` (or a one-element list).
        input_length: Keras 2's sequence length; as there, it gives a first layer its input
            shape `(input_length,)` when no `input_shape` is passed.
        lora_rank / lora_alpha: LoRA of the table, as for Dense (see `enable_lora`); the
            adapters are `lora_embeddings_a` / `lora_embeddings_b`.

    Input shape: `(batch, ...)` of ints (floats are cast). Output shape: `(batch, ..., output_dim)`.
    The table `embeddings` has the Keras (and `nn.Embedding`) layout `(input_dim, output_dim)`.

    Example:
        >>> Embedding(10, 4)(torch.tensor([[1, 2, 0]])).shape
        torch.Size([1, 3, 4])
    """

    _lora_base, _lora_prefix = "embeddings", "lora_embeddings"
    _int8_weight, _int8_rules = "embeddings", (int8.quantize_embedding, int8.embedding_call)
    _int4_rules = (int4.quantize_embedding, int4.embedding_call)

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, input_length=None, activity_regularizer=None,
                 lora_rank=None, lora_alpha=None, quantization_config=None, **kwargs):
        if input_length is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.", stacklevel=2)
            if "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
                # Keras 2 built the layer at once (not a user's input_shape: no warning of that)
                length = tuple(input_length) if isinstance(input_length, (list, tuple)) \
                    else (input_length,)
                kwargs["batch_input_shape"] = (kwargs.get("batch_size"),) + length
        mode = self._pop_quantized_dtype(kwargs, "embedding")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._set_quantization_mode(mode, quantization_config)
        self.input_dim = positive_int(input_dim, "input_dim", f"Embedding '{self.name}'")
        self.output_dim = positive_int(output_dim, "output_dim", f"Embedding '{self.name}'")
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self._init_lora(lora_rank, lora_alpha)
        if weights is not None:
            self._build_from_shape(None)
            self.set_weights(weights if isinstance(weights, (list, tuple)) else [weights])

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            "embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer,
            regularizer=self.embeddings_regularizer, constraint=self.embeddings_constraint)
        if self._quantization_mode:
            self._quantized_build()
        self._build_lora()

    def call(self, inputs):
        return self._call_with(inputs, self.embeddings)

    def _call_with(self, inputs, embeddings):
        """`call` with the table `embeddings` (the layer's own, or LoRA's merged one)."""
        if inputs.dtype not in _INDEX_DTYPES:
            inputs = inputs.long()
        return F.embedding(inputs, embeddings)

    _mask_ops_recorded = True  # a symbolic call records `not_equal`, as Keras

    def compute_mask(self, inputs, previous_mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0) if isinstance(inputs, KerasTensor) else inputs != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_output_spec(self, inputs, *args, **kwargs):
        return KerasTensor(self.compute_output_shape(inputs.shape), self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            **self._quantization_entry(),
            **self._lora_entry(),
        }
