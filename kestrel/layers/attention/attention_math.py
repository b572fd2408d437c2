"""Masked scaled dot-product attention on `(batch, heads, time, dim)` tensors: torch's fused
kernel where it computes the same numbers, an explicit path where scores are needed."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kestrel.layers.naming import unique_name
from kestrel.layers.regularization import seeding


def causal_mask(q_len: int, k_len: int, device) -> torch.Tensor:
    """`(1, T, S)` lower-triangular mask: query `i` sees keys `j <= i`."""
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril().unsqueeze(0)


def band_mask(q_len: int, k_len: int, window: int, device) -> torch.Tensor:
    """`(1, T, S)` mask of keys within `window - 1` positions of the query."""
    rows = torch.arange(q_len, device=device).unsqueeze(1)
    cols = torch.arange(k_len, device=device).unsqueeze(0)
    return ((rows - cols).abs() < window).unsqueeze(0)


def combine_masks(q_len: int, k_len: int, device, query_mask=None, value_mask=None,
                  key_mask=None, attention_mask=None, causal=False, window=None):
    """AND of every mask source, broadcastable to `(B, T, S)` (None when there is none).

    Keras masks `(B, T)` of the query and `(B, S)` of the value and key, an explicit
    `attention_mask`, the causal mask and the sliding-window band.
    """
    parts = [] if attention_mask is None else [attention_mask.bool()]
    if query_mask is not None:
        parts.append(query_mask.bool().unsqueeze(-1))
    parts += [m.bool().unsqueeze(-2) for m in (value_mask, key_mask) if m is not None]
    if causal:
        parts.append(causal_mask(q_len, k_len, device))
    if window is not None:
        parts.append(band_mask(q_len, k_len, window, device))
    mask = None
    for part in parts:
        mask = part if mask is None else mask & part
    return mask


def heads_layout(mask, lead, q_attn, k_attn) -> torch.Tensor:
    """A mask broadcastable to Keras' scores `(*lead, heads, *q_attn, *k_attn)` (leading axes
    may be missing) in `attend`'s layout `(prod(lead), 1 or heads, prod(q_attn), prod(k_attn))`."""
    while mask.dim() < len(lead) + 1 + 2 * len(q_attn):
        mask = mask.unsqueeze(-2 * len(q_attn) - 1)
    if len(lead) == 1 and len(q_attn) == 1:
        return mask  # already (B, heads, T, S), up to broadcasting
    heads = mask.shape[len(lead)]
    mask = mask.expand(*lead, heads, *q_attn, *k_attn)
    return mask.reshape(-1, heads, math.prod(q_attn), math.prod(k_attn))


def attend(query, key, value, mask=None, is_causal=False, scale=1.0, dropout=0.0,
           generator=None, fused=True, return_scores=False, uniform_empty_rows=False):
    """Softmax attention of `query` `(N, H, T, dk)` over `key` `(N, H, S, dk)` and `value`
    `(N, H, S, dv)`.

    `mask` is boolean, broadcastable to `(N, H, T, S)`, True where a query may see a key; a query
    that sees no key outputs zeros, or with `uniform_empty_rows` the mean of the values (every
    key alike, as Keras' `dot_product_attention` path). `dropout` (already 0 outside training)
    drops attention probabilities. Returns `(output (N, H, T, dv), probabilities or None)`; the
    probabilities (before dropout) come only with `return_scores`, which, like a seeded
    `generator`, needs the explicit path.
    """
    if is_causal and mask is not None:
        mask = mask & causal_mask(query.shape[-2], key.shape[-2], query.device).unsqueeze(0)
        is_causal = False
    if fused and not return_scores and (generator is None or dropout == 0):
        return _fused(query, key, value, mask, is_causal, scale, dropout,
                      uniform_empty_rows), None
    if is_causal:
        mask = causal_mask(query.shape[-2], key.shape[-2], query.device).unsqueeze(0)
    scores = torch.matmul(query * scale, key.transpose(-1, -2))
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)  # uniform on rows that see no key
    if mask is not None and not uniform_empty_rows:
        probs = probs.masked_fill(~mask, 0.0)
    dropped = seeding.dropout(probs, dropout, generator) if dropout > 0 else probs
    return torch.matmul(dropped, value), (probs if return_scores else None)


def _fused(query, key, value, mask, is_causal, scale, dropout, uniform_empty_rows):
    if mask is None:
        return F.scaled_dot_product_attention(query, key, value, dropout_p=dropout,
                                              is_causal=is_causal, scale=scale)
    seen = mask.any(dim=-1, keepdim=True)  # rows with no visible key: zeros or mean, not NaN
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask | ~seen,
                                         dropout_p=dropout, scale=scale)
    if uniform_empty_rows:
        return torch.where(seen, out, value.mean(dim=-2, keepdim=True))
    return out * seen


def mask_or_keras_mask(mask, tensor):
    """The mask given explicitly, else the one the tensor carries (`_keras_mask`)."""
    return mask if mask is not None else getattr(tensor, "_keras_mask", None)


def reserve_sublayers(layer, rate: float) -> None:
    """Take what Keras' attention build takes for its inner Softmax and Dropout: the automatic
    names `softmax` and `dropout`, and (when `rate` > 0) the Dropout's `SeedGenerator` seed.

    Keras builds them between the value and output projections; doing the same here keeps the
    user's later `Dropout()`/`Softmax()` names and the initializers' seeds as under Keras.
    """
    unique_name("softmax")
    unique_name("dropout")
    if rate > 0:
        seeding.attach_seed_generator(layer, layer.seed)
