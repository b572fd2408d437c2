"""Attention: dot-product (Luong-style) attention of a query sequence over a value sequence."""
from __future__ import annotations

import torch

from kestrel import ops
from kestrel.layers.attention.attention_math import causal_mask
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import KerasTensor, shape_of
from kestrel.layers.regularization import seeding


@register_layer()
class Attention(Layer):
    """Dot-product attention: `softmax(scores(query, key)) @ value`.

    Args:
        use_scale: if True, a learned scalar multiplies the scores.
        score_mode: `"dot"` (`query @ key^T`) or `"concat"` (`sum(tanh(query + key))`).
        dropout: dropout rate on the attention probabilities (training only).
        seed: int making the dropout reproducible.

    Call arguments: `inputs = [query (B, Tq, dim), value (B, Tv, dim_v)]` or with a third
    `key (B, Tv, dim)`; `mask = [query_mask (B, Tq), value_mask (B, Tv)]` (taken from the
    inputs' Keras masks by default): masked values get no weight, masked queries output zeros;
    `use_causal_mask`; `return_attention_scores` (also returns the `(B, Tq, Tv)` weights);
    `training`.

    Output shape: `(B, Tq, dim_v)`.

    Example:
        >>> Attention()([torch.randn(2, 3, 4), torch.randn(2, 5, 4)]).shape
        torch.Size([2, 3, 4])
    """
    _keras_training_default = False  # Keras: `call(..., training=False)`, recorded by its nodes

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{type(self).__name__} '{self.name}': score_mode must be one of "
                             f"'dot', 'concat'. Received: score_mode={score_mode!r}")
        seeding.check_rate(self, dropout, "dropout")
        seeding.check_seed(self, seed)
        self.use_scale = use_scale
        self.score_mode = score_mode
        self.dropout = dropout
        self.seed = seed
        self.supports_masking = True
        self.input_spec = [InputSpec(min_ndim=3)] * 3

    def build(self, input_shape):
        query_shape, _, key_shape = self._check_inputs(input_shape)
        if query_shape[-1] != key_shape[-1]:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': query and key must have the same last "
                f"dimension. Received: input shape={list(input_shape)}")
        self.scale = self.add_weight("scale", (), "ones") if self.use_scale else None
        self.concat_score_weight = self.add_weight("concat_score_weight", (), "ones") \
            if self.score_mode == "concat" else None

    def _check_inputs(self, inputs, mask=None):
        """(query, value, key) from a list of 2 or 3 inputs (shapes or tensors)."""
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3 \
                or not isinstance(inputs[0], (list, tuple, torch.Tensor, KerasTensor)):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' must be called on a list of inputs "
                f"[query, value] or [query, value, key]. Received: inputs={inputs!r}")
        if mask is not None and (not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': mask must be a list [query_mask, "
                f"value_mask]. Received: mask={mask!r}")
        return inputs[0], inputs[1], inputs[2] if len(inputs) == 3 else inputs[1]

    def _scores(self, query, key):
        """`(B, Tq, Tv)` scores."""
        if self.score_mode == "dot":
            scores = torch.matmul(query, key.transpose(-1, -2))
            return scores if self.scale is None else scores * self.scale
        summed = query.unsqueeze(-2) + key.unsqueeze(-3)
        if self.scale is not None:
            summed = summed * self.scale
        return self.concat_score_weight * torch.tanh(summed).sum(dim=-1)

    def call(self, inputs, mask=None, training=None, return_attention_scores=False,
             use_causal_mask=False):
        training = self.training if training is None else training
        query, value, key = self._check_inputs(inputs, mask)
        query_mask, value_mask = (mask[0], mask[1]) if mask else (None, None)
        scores = self._scores(query, key)
        visible = None if value_mask is None else value_mask.bool().unsqueeze(-2)
        if use_causal_mask:
            causal = causal_mask(scores.shape[-2], scores.shape[-1], scores.device)
            visible = causal if visible is None else visible & causal
        if visible is not None:  # Keras' bias: masked scores drop by a large constant
            big = 65504.0 if scores.dtype == torch.float16 else 1.0e9
            scores = torch.where(visible, scores, scores - big)
        weights = torch.softmax(scores, dim=-1)
        if training and self.dropout > 0:
            weights = seeding.dropout(weights, self.dropout,
                                          seeding.generator_for(self, weights.device))
        if not value.is_floating_point():  # int values: promoted as Keras' matmul does
            value = value.to(weights.dtype)
        outputs = torch.matmul(weights, value)
        if query_mask is not None:
            outputs = torch.where(query_mask.bool().unsqueeze(-1), outputs, 0.0)
        return (outputs, weights) if return_attention_scores else outputs

    _mask_ops_recorded = True  # a symbolic call records `convert_to_tensor`, as Keras

    def compute_mask(self, inputs, previous_mask=None):
        """The query's mask; symbolically through `ops.convert_to_tensor`, as Keras (a mask
        without graph history, from a placeholder run, passes as it is)."""
        query_mask = previous_mask[0] if previous_mask else None
        if isinstance(query_mask, KerasTensor) and query_mask._keras_history is not None:
            # every argument given, so the op's config lists them as Keras' op class does
            return ops.convert_to_tensor(query_mask, dtype=None, sparse=None, ragged=None)
        return query_mask

    def compute_output_spec(self, inputs, mask=None, training=None,
                            return_attention_scores=False, use_causal_mask=False):
        query, value, key = (shape_of(t) for t in self._check_inputs(inputs, mask))
        dtype = self._symbolic_input_dtype(inputs[0].dtype)
        outputs = KerasTensor((*query[:-1], value[-1]), dtype)
        if not return_attention_scores:
            return outputs
        return outputs, KerasTensor((*query[:-1], key[-2]), dtype)

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}
