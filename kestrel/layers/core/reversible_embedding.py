"""ReversibleEmbedding: an Embedding that can also map vectors back to vocabulary logits."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.layers.core.embedding import Embedding
from kestrel.layers.layer import register_layer
from kestrel.layers.masks import set_mask
from kestrel.layers.node import KerasTensor


@register_layer()
class ReversibleEmbedding(Embedding):
    """An Embedding whose `call(inputs, reverse=True)` computes logits `inputs @ table.T`.

    Args:
        input_dim, output_dim, embeddings_initializer, embeddings_regularizer,
            embeddings_constraint, mask_zero: as for Embedding.
        tie_weights: reuse `embeddings` for the reverse projection; if False, a separate
            `reverse_embeddings` weight `(output_dim, input_dim)` is created.
        reverse_dtype: optional dtype the reverse matmul runs in.
        logit_soft_cap: optional float `c`: logits become `tanh(logits / c) * c`.

    Example:
        >>> layer = ReversibleEmbedding(10, 4)
        >>> hidden = layer(torch.tensor([[1, 2, 3]]))
        >>> layer(hidden, reverse=True).shape
        torch.Size([1, 3, 10])
    """

    def __init__(self, input_dim, output_dim, tie_weights=True, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 reverse_dtype=None, logit_soft_cap=None, **kwargs):
        super().__init__(input_dim, output_dim, embeddings_initializer=embeddings_initializer,
                         embeddings_regularizer=embeddings_regularizer,
                         embeddings_constraint=embeddings_constraint, mask_zero=mask_zero,
                         **kwargs)
        self.tie_weights = tie_weights
        self.reverse_dtype = reverse_dtype
        self.logit_soft_cap = logit_soft_cap

    def build(self, input_shape=None):
        super().build(input_shape)
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight(
                "reverse_embeddings", (self.output_dim, self.input_dim),
                self.embeddings_initializer)

    def call(self, inputs, reverse=False):
        return self._call_with(inputs, self.embeddings, reverse)

    def _call_with(self, inputs, embeddings, reverse=False):
        """`call` with the table `embeddings` (the layer's own, or LoRA's merged one, which a
        tied reverse projection also uses, as Keras). A forward call's output carries the
        `mask_zero` mask itself, as Keras sets it in `call`."""
        if not reverse:
            outputs = super()._call_with(inputs, embeddings)
            mask = super().compute_mask(inputs)
            if mask is not None:
                set_mask(outputs, mask)
            return outputs
        kernel = embeddings.T if self.tie_weights else self.reverse_embeddings
        if self.reverse_dtype is not None:
            dtype = config.to_torch_dtype(self.reverse_dtype)
            inputs, kernel = inputs.to(dtype), kernel.to(dtype)
        logits = torch.matmul(inputs, kernel)
        if self.logit_soft_cap is not None:
            logits = torch.tanh(logits / self.logit_soft_cap) * self.logit_soft_cap
        return logits

    _mask_ops_recorded = True  # records nothing: symbolic outputs carry no mask, as Keras'

    def compute_mask(self, inputs, previous_mask=None):
        """None, as Keras: the forward call sets its output's mask (see `_call_with`)."""
        return None

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return (*input_shape[:-1], self.input_dim)
        return (*input_shape, self.output_dim)

    def compute_output_spec(self, inputs, reverse=False, **kwargs):
        dtype = self.reverse_dtype if reverse and self.reverse_dtype else self.dtype
        return KerasTensor(self.compute_output_shape(inputs.shape, reverse), dtype)

    def get_config(self):
        return {**super().get_config(), "tie_weights": self.tie_weights,
                "reverse_dtype": self.reverse_dtype, "logit_soft_cap": self.logit_soft_cap}
