"""AdditiveAttention: Bahdanau-style attention, scores `sum(scale * tanh(query + key))`."""
from __future__ import annotations

import torch

from kestrel.layers.attention.attention import Attention
from kestrel.layers.layer import register_layer


@register_layer()
class AdditiveAttention(Attention):
    """Additive attention: `softmax(sum(scale * tanh(query + key), -1)) @ value`.

    Args:
        use_scale: if True, a learned per-feature vector `scale` (shape `(dim,)`) weights the
            tanh terms; otherwise they are summed unweighted.
        dropout: dropout rate on the attention probabilities (training only).
        seed: int making the dropout reproducible.

    Call arguments, masks and shapes are those of `Attention`.

    Example:
        >>> AdditiveAttention()([torch.randn(2, 3, 4), torch.randn(2, 5, 4)]).shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, use_scale=True, dropout=0.0, seed=None, **kwargs):
        kwargs.pop("score_mode", None)  # always additive
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)

    def build(self, input_shape):
        query_shape, _, key_shape = self._check_inputs(input_shape)
        if query_shape[-1] != key_shape[-1]:
            raise ValueError(
                f"AdditiveAttention '{self.name}': query and key must have the same last "
                f"dimension. Received: input shape={list(input_shape)}")
        self.scale = self.add_weight("scale", (query_shape[-1],), "glorot_uniform") \
            if self.use_scale else None

    def _scores(self, query, key):
        terms = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))
        return (terms if self.scale is None else terms * self.scale).sum(dim=-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
