"""Keras' overridable MultiHeadAttention internals, for subclasses written against Keras.

Keras code customizes attention by subclassing `MultiHeadAttention` and overriding
`_compute_attention(query, key, value, attention_mask, training, return_attention_scores)`,
which receives the projected heads in Keras' layout `(B, ..., heads, dim)` and uses the
private helpers `_dot_product_equation`, `_combine_equation`, `_masked_softmax`,
`_dropout_layer`, `_inverse_sqrt_key_dim` and the `_key_dim`-style attributes. This mixin
provides them; `MultiHeadAttention.call` takes this path only when a subclass overrides
`_compute_attention` (its own path stays on the fused kernel).
"""
from __future__ import annotations

import string

import torch

from kestrel.ops.numpy_array import einsum


def attention_equations(rank: int, axes: tuple) -> tuple[str, str, int]:
    """Keras' einsum equations for projected tensors of `rank` (`(B, ..., heads, dim)`)
    attending over `axes`: `(key, query -> scores, scores, value -> output, scores rank)`.

    The scores are laid out `(*other batch axes, heads, *query axes, *key axes)`.
    """
    query = string.ascii_lowercase[:rank]
    fresh = iter(string.ascii_lowercase[rank:])
    key = "".join(next(fresh) if i in axes else letter for i, letter in enumerate(query))
    batch = "".join(query[i] for i in range(rank - 2) if i not in axes)
    scores = (batch + query[rank - 2] + "".join(query[i] for i in axes)
              + "".join(key[i] for i in axes))
    return f"{key},{query}->{scores}", f"{scores},{key}->{query}", len(scores)


class KerasAttentionInternals:
    """Keras' private MultiHeadAttention API (attributes, equations, softmax, dropout)."""

    _num_heads = property(lambda self: self.num_heads)
    _key_dim = property(lambda self: self.key_dim)
    _value_dim = property(lambda self: self.value_dim)
    _dropout = property(lambda self: self.dropout)
    _use_bias = property(lambda self: self.use_bias)
    _inverse_sqrt_key_dim = property(lambda self: self._scale)
    _query_dense = property(lambda self: self.query_dense)
    _key_dense = property(lambda self: self.key_dense)
    _value_dense = property(lambda self: self.value_dense)
    _output_dense = property(lambda self: self.output_dense)

    def _overrides_compute_attention(self) -> bool:
        return type(self)._compute_attention is not KerasAttentionInternals._compute_attention

    def _equations(self) -> tuple[str, str, int]:
        if not self.built:
            raise ValueError(f"{type(self).__name__} '{self.name}': the attention equations "
                             "exist once the layer is built (called on inputs).")
        return attention_equations(len(self._perm), self._axes)

    @property
    def _dot_product_equation(self) -> str:
        return self._equations()[0]

    @property
    def _combine_equation(self) -> str:
        return self._equations()[1]

    @property
    def _softmax(self):
        """A Softmax over the key axes of the scores (Keras' `self._softmax`)."""
        layer = self.__dict__.get("_softmax_layer")
        if layer is None:
            from kestrel.layers.activations.softmax import Softmax

            rank = self._equations()[2]
            axes = tuple(range(rank - len(self._axes), rank))
            layer = Softmax(axis=axes, dtype=self.dtype_policy, name="softmax")
            self.__dict__["_softmax_layer"] = layer
        return layer

    @property
    def _dropout_layer(self):
        """A Dropout of the attention rate drawing from this layer's seed generator (Keras'
        `self._dropout_layer`); made on first use without taking a new seed."""
        layer = self.__dict__.get("_dropout_sublayer")
        if layer is None:
            from kestrel.layers.regularization.dropout import Dropout

            layer = Dropout(self.dropout, seed=0, dtype=self.dtype_policy, name="dropout")
            layer.seed = self.seed
            layer.__dict__["seed_generator"] = self.__dict__.get("seed_generator")
            self.__dict__["_dropout_sublayer"] = layer
        return layer

    def _masked_softmax(self, attention_scores, attention_mask=None):
        """Softmax over the key axes; a `(B, T, S)`-style mask gains the heads axis."""
        if attention_mask is not None:
            attention_mask = torch.as_tensor(attention_mask, device=attention_scores.device)
            while attention_mask.dim() < attention_scores.dim():
                attention_mask = attention_mask.unsqueeze(-2 * len(self._axes) - 1)
        return self._softmax(attention_scores, mask=attention_mask)

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False):
        """Keras' dot-product attention on projected heads: `(output, scores)`."""
        query = query * self._inverse_sqrt_key_dim
        scores = einsum(self._dot_product_equation, key, query)
        scores = self._masked_softmax(scores, attention_mask)
        dropped = self._dropout_layer(scores, training=training) if self.dropout else scores
        return einsum(self._combine_equation, dropped, value), scores
