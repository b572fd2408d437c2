"""Attention layers: MultiHeadAttention, Attention (dot-product) and AdditiveAttention."""
from kestrel.layers.attention.additive_attention import AdditiveAttention
from kestrel.layers.attention.attention import Attention
from kestrel.layers.attention.multi_head_attention import MultiHeadAttention

__all__ = ["AdditiveAttention", "Attention", "MultiHeadAttention"]
