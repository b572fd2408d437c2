"""MultiHeadAttention: Keras' multi-head attention, on torch's fused attention kernel."""
from __future__ import annotations

import math

import torch

from kestrel import constraints, initializers, regularizers
from kestrel.layers.attention import attention_math
from kestrel.layers.attention.keras_internals import KerasAttentionInternals
from kestrel.layers.attention.projection import HeadProjection
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import KerasTensor, shape_of
from kestrel.layers.regularization.seeding import check_rate, check_seed, generator_for


@register_layer()
class MultiHeadAttention(KerasAttentionInternals, Layer):
    """Multi-head attention ("Attention is all you need"): self-attention when `query` and
    `value` are the same tensor.

    The inputs are projected to `num_heads` heads (query and key to `key_dim`, value to
    `value_dim`), the scaled query-key dot products are softmaxed over the keys, the values
    are averaged with these weights, and the heads are projected back to `output_shape`.
    Weights (Keras' layout and order): query, key, value kernels `(dim, heads, key_dim)` and
    biases `(heads, key_dim)`, then the output kernel `(heads, value_dim, dim)` and bias.

    Args:
        num_heads: number of heads (positive int).
        key_dim: size of each head for query and key (positive int).
        value_dim: size of each head for value; defaults to `key_dim`.
        dropout: dropout rate on the attention probabilities (training only).
        use_bias: whether the projections have biases.
        output_shape: trailing output shape (int or tuple); defaults to the query's last axis.
        attention_axes: input axes attended over; default all but batch and features.
        sliding_window: if set, a query sees only keys within `sliding_window - 1` positions.
        flash_attention: None: torch's fused kernel whenever it gives the same result; True:
            always fused (attention scores and dropout are then refused); False: never fused.
        kernel_initializer ... bias_constraint: for the projections (activity_regularizer
            applies to each projection's output, as in Keras).
        use_gate: if True, a sigmoid gate projected from the query multiplies each head's output.
        seed: int making the attention dropout reproducible.

    Call arguments: `query (B, T, dim)`, `value (B, S, dim)`, optional `key (B, S, dim)`;
    `attention_mask` boolean `(B, T, S)`, True where a query may attend; `use_causal_mask`;
    `return_attention_scores` (also returns the `(B, heads, T, S)` probabilities); `training`.
    Keras masks on `query`/`value`/`key` (or `query_mask`/`value_mask`/`key_mask`) are combined
    with these; the output carries the query's mask. A subclass may override Keras'
    `_compute_attention` (see `keras_internals`).

    Example:
        >>> mha = MultiHeadAttention(num_heads=2, key_dim=4)
        >>> mha(torch.randn(3, 5, 8), torch.randn(3, 7, 8)).shape
        torch.Size([3, 5, 8])
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, sliding_window=None,
                 flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 use_gate=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        _check_positive(self, "num_heads", num_heads)
        _check_positive(self, "key_dim", key_dim)
        _check_positive(self, "value_dim", value_dim, allow_none=True)
        _check_positive(self, "sliding_window", sliding_window, allow_none=True)
        check_rate(self, dropout, "dropout")
        if flash_attention and dropout > 0:
            raise ValueError(f"MultiHeadAttention '{self.name}': dropout is not supported with "
                             f"flash_attention=True. Received: dropout={dropout}")
        check_seed(self, seed)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self._output_shape = _as_shape(self, output_shape, "output_shape")
        self._attention_axes = _as_shape(self, attention_axes, "attention_axes", positive=False)
        self.sliding_window = sliding_window
        self.flash_attention = flash_attention
        self.use_gate = use_gate
        self.seed = seed
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.projection_activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.supports_masking = True
        self._scale = 1.0 / math.sqrt(key_dim)
        self._shapes = None
        self._axes = None

    @property
    def attention_axes(self):
        """The attended input axes: normalized once built, else as given."""
        return self._axes or self._attention_axes

    # ------------------------------------------------------------------ building
    def __call__(self, *args, **kwargs):
        if not self.built:
            given = {**dict(zip(("query", "value", "key"), args)), **kwargs}
            query, value, key = given.get("query"), given.get("value"), given.get("key")
            if query is None or value is None:
                raise ValueError(f"MultiHeadAttention '{self.name}' must be called as "
                                 f"layer(query, value[, key]). Received: value=None")
            self._build_all(shape_of(query), shape_of(value),
                            None if key is None else shape_of(key))
            if isinstance(query, torch.Tensor) and query.device.type != "meta" \
                    and query.device != self.query_dense.kernel.device:
                self.to(query.device)
        return super().__call__(*args, **kwargs)

    def _build_all(self, query_shape, value_shape, key_shape=None) -> None:
        self.build(query_shape, value_shape, key_shape)
        self._shapes = {"query_shape": list(query_shape), "value_shape": list(value_shape)}
        if key_shape is not None:
            self._shapes["key_shape"] = list(key_shape)
        self.built = True

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = tuple(query_shape if value_shape is None else value_shape)
        key_shape = tuple(value_shape if key_shape is None else key_shape)
        query_shape, rank = tuple(query_shape), len(query_shape)
        if rank < 3 or len(value_shape) != rank or len(key_shape) != rank:
            raise ValueError(
                f"MultiHeadAttention '{self.name}' expected query, value and key of one rank "
                f">= 3 (batch, ..., features). Received: query_shape={query_shape}, "
                f"value_shape={value_shape}, key_shape={key_shape}")
        if None in (query_shape[-1], value_shape[-1], key_shape[-1]):
            raise ValueError(
                f"MultiHeadAttention '{self.name}': the last (feature) dimension of query, value "
                f"and key must be known. Received: query_shape={query_shape}, "
                f"value_shape={value_shape}, key_shape={key_shape}")
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(
                f"MultiHeadAttention '{self.name}': all dimensions of value and key except the "
                f"last must be equal. Received: value_shape={value_shape}, "
                f"key_shape={key_shape}")
        axes = self._attention_axes or tuple(range(1, rank - 1))
        axes = tuple(a + rank if a < 0 else a for a in axes)
        if len(set(axes)) != len(axes) or not all(1 <= a <= rank - 2 for a in axes):
            raise ValueError(
                f"MultiHeadAttention '{self.name}': attention_axes must be distinct axes "
                f"between 1 and {rank - 2} (or -{rank - 1} and -2) for inputs of rank {rank}. "
                f"Received: attention_axes={self._attention_axes}")
        self._axes = axes
        self._batch_axes = tuple(i for i in range(rank - 1) if i not in axes)
        perm = self._batch_axes + (rank - 1,) + tuple(a for a in axes) + (rank,)
        self._perm = perm  # (B, ..., heads, d) -> (batch axes, heads, attention axes, d)
        self._unperm = tuple(perm.index(i) for i in range(rank + 1))
        heads = self.num_heads
        self.query_dense = HeadProjection((query_shape[-1],), (heads, self.key_dim),
                                          name="query", **self._sublayer_kwargs())
        self.key_dense = HeadProjection((key_shape[-1],), (heads, self.key_dim),
                                        name="key", **self._sublayer_kwargs())
        if self.use_gate:
            self._gate_dense = HeadProjection((query_shape[-1],), (heads, self.value_dim),
                                              activation=torch.sigmoid, name="gate",
                                              **self._sublayer_kwargs())
        self.value_dense = HeadProjection((value_shape[-1],), (heads, self.value_dim),
                                          name="value", **self._sublayer_kwargs())
        attention_math.reserve_sublayers(self, self.dropout)
        self.output_dense = HeadProjection((heads, self.value_dim),
                                           self._output_shape or (query_shape[-1],),
                                           name="attention_output",
                                           **self._sublayer_kwargs())

    def _sublayer_kwargs(self) -> dict:
        """Arguments of one projection; as Keras, each gets fresh copies of the initializers
        (an unseeded copy takes a new seed, so projections of one shape differ)."""
        return {"use_bias": self.use_bias, "kernel_initializer": _copy(self.kernel_initializer),
                "bias_initializer": _copy(self.bias_initializer),
                "kernel_regularizer": self.kernel_regularizer,
                "bias_regularizer": self.bias_regularizer,
                "kernel_constraint": self.kernel_constraint,
                "bias_constraint": self.bias_constraint,
                "activity_regularizer": self.projection_activity_regularizer,
                "dtype": self.dtype_policy}

    def get_build_config(self):
        return None if self._shapes is None else {"shapes_dict": self._shapes}

    def build_from_config(self, build_config):
        """Build from Keras' `{"shapes_dict": {"query_shape": ..., "value_shape": ...}}`."""
        shapes = (build_config or {}).get("shapes_dict")
        if shapes and not self.built:
            key = shapes.get("key_shape")
            self._build_all(tuple(shapes["query_shape"]), tuple(shapes["value_shape"]),
                            None if key is None else tuple(key))

    # ------------------------------------------------------------------ computing
    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
             attention_mask=None, return_attention_scores=False, training=None,
             use_causal_mask=False):
        training = self.training if training is None else training
        if return_attention_scores and self.flash_attention:
            raise ValueError(
                f"MultiHeadAttention '{self.name}': attention scores cannot be returned with "
                "flash_attention=True. Received: return_attention_scores=True")
        query_mask = attention_math.mask_or_keras_mask(query_mask, query)
        value_mask = attention_math.mask_or_keras_mask(value_mask, value)
        if key is None:
            key = value
        else:
            key_mask = attention_math.mask_or_keras_mask(key_mask, key)
        masks = [m for m in (query_mask, value_mask, key_mask, attention_mask) if m is not None]
        causal_only = (use_causal_mask and not masks and self.sliding_window is None
                       and query.dim() == 3  # torch's causal kernel: 1 attended axis only
                       and not self._overrides_compute_attention())
        mask = None if causal_only else attention_math.combine_masks(
            query.shape[1], value.shape[1], query.device, query_mask, value_mask, key_mask,
            attention_mask, use_causal_mask, self.sliding_window)

        if self._overrides_compute_attention():
            return self._call_keras_attention(query, key, value, mask, training,
                                              return_attention_scores)
        q = self._to_heads(self.query_dense(query))
        k = self._to_heads(self.key_dense(key))
        v = self._to_heads(self.value_dense(value))
        lead = [query.shape[i] for i in self._batch_axes]
        q_attn = [query.shape[a] for a in self._axes]
        k_attn = [key.shape[a] for a in self._axes]
        if mask is not None:
            mask = attention_math.heads_layout(mask, lead, q_attn, k_attn)
        rate = self.dropout if training else 0.0
        # Keras' dot_product_attention path: a query that sees no key gets the values' mean
        keras_fused = not (self.dropout or return_attention_scores or query.dim() != 3)
        out, scores = attention_math.attend(
            q, k, v, mask, is_causal=causal_only, scale=self._scale, dropout=rate,
            generator=generator_for(self, query.device) if rate else None,
            fused=self.flash_attention is not False, return_scores=return_attention_scores,
            uniform_empty_rows=keras_fused)
        out = out.reshape(*lead, self.num_heads, *q_attn, self.value_dim).permute(self._unperm)
        if self.use_gate:
            out = out * self._gate_dense(query)
        out = self.output_dense(out)
        if not return_attention_scores:
            return out
        return out, scores.reshape(*lead, self.num_heads, *q_attn, *k_attn)

    def _call_keras_attention(self, query, key, value, mask, training, return_scores):
        """The path of a subclass's `_compute_attention`, on Keras' `(B, ..., heads, dim)`."""
        out, scores = self._compute_attention(
            self.query_dense(query), self.key_dense(key), self.value_dense(value), mask,
            training, return_scores)
        if self.use_gate:
            out = out * self._gate_dense(query)
        out = self.output_dense(out)
        return (out, scores) if return_scores else out

    def _to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, ..., heads, d)` -> `(batch positions, heads, attended positions, d)`."""
        x = x.permute(self._perm)
        return x.reshape(-1, self.num_heads, math.prod(x.shape[len(self._batch_axes) + 1:-1]),
                         x.shape[-1])

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        """The query's shape with the last axis `output_shape` (default: unchanged)."""
        value_shape = tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(
                f"MultiHeadAttention '{self.name}': all dimensions of value and key but the "
                f"last must be equal. Received: value_shape={value_shape}, "
                f"key_shape={key_shape}")
        return tuple(query_shape[:-1]) + (self._output_shape or tuple(query_shape[-1:]))

    def compute_output_spec(self, query, value, key=None, *args, return_attention_scores=False,
                            **kwargs):
        q_shape, k_shape = shape_of(query), shape_of(value if key is None else key)
        out = KerasTensor(self.compute_output_shape(q_shape, k_shape), self.compute_dtype)
        if not return_attention_scores:
            return out
        scores_shape = ([q_shape[i] for i in self._batch_axes] + [self.num_heads]
                        + [q_shape[a] for a in self._axes] + [k_shape[a] for a in self._axes])
        return out, KerasTensor(scores_shape, self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_gate": self.use_gate,
            "output_shape": None if self._output_shape is None else list(self._output_shape),
            # normalized once built, as Keras' build rewrites them (`None` -> `(1,)`)
            "attention_axes": None if self.attention_axes is None else list(self.attention_axes),
            "sliding_window": self.sliding_window,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.projection_activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "seed": self.seed,
        }


def _check_positive(layer, arg: str, value, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"MultiHeadAttention '{layer.name}': {arg} must be a positive integer"
            f"{' or None' if allow_none else ''}. Received: {arg}={value!r}")


def _as_shape(layer, value, arg: str, positive: bool = True):
    """An int or a sequence of ints as a tuple (None stays None)."""
    if value is None:
        return None
    items = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)) or not items or not all(
            isinstance(i, int) and not isinstance(i, bool) and (i > 0 or not positive)
            for i in items):
        kind = "positive integers" if positive else "integers"
        raise ValueError(f"MultiHeadAttention '{layer.name}': {arg} must be an int or a tuple "
                         f"of {kind}. Received: {arg}={value!r}")
    return tuple(items)


def _copy(initializer):
    """A new initializer from `initializer`'s config (a plain function is kept as it is)."""
    if isinstance(initializer, initializers.Initializer):
        return initializer.clone()
    return initializer
