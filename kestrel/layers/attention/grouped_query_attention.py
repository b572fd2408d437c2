"""GroupedQueryAttention: attention where groups of query heads share one key/value head."""
from __future__ import annotations

import math

import torch

from kestrel import constraints, initializers, regularizers
from kestrel.layers.attention import attention_math
from kestrel.layers.core.einsum_dense import EinsumDense
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import KerasTensor, shape_of
from kestrel.layers.regularization.seeding import check_rate, check_seed, generator_for


@register_layer("GroupQueryAttention")
class GroupedQueryAttention(Layer):
    """Grouped-query attention (Ainslie et al., 2023): `num_query_heads` query heads attend
    with `num_key_value_heads` key/value heads, each shared by a group of query heads.

    Sublayers, as in Keras (EinsumDense, saved under `_query_dense`, `_key_dense`,
    `_value_dense`, `_output_dense`): query kernel `(dim, num_query_heads, head_dim)`, key and
    value kernels `(dim, num_key_value_heads, head_dim)`, output kernel
    `(num_query_heads, head_dim, dim)`, each with a bias when `use_bias`.

    Args:
        head_dim: size of each head.
        num_query_heads: number of query heads.
        num_key_value_heads: number of key/value heads; must divide `num_query_heads`.
        dropout: dropout rate on the attention probabilities.
        use_bias: whether the projections have biases.
        sliding_window: optional band width: a query sees keys within `sliding_window - 1`.
        flash_attention: False forces the explicit (non-fused) path.
        use_gate: multiply the attention output by a sigmoid gate projected from the query.
        kernel_initializer ... bias_constraint: for every projection.
        seed: int making the attention dropout reproducible.

    Call: `layer(query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
    attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False)`.
    Output: `(batch, target_len, dim)`; scores `(batch, num_query_heads, target_len,
    source_len)`.

    Example:
        >>> x = torch.ones(2, 5, 8)
        >>> GroupedQueryAttention(4, 4, 2)(x, x).shape
        torch.Size([2, 5, 8])
    """

    _keras_class_name = "GroupQueryAttention"  # Keras exports (and serializes) it so

    def __init__(self, head_dim, num_query_heads, num_key_value_heads, dropout=0.0,
                 use_bias=True, sliding_window=None, flash_attention=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("head_dim", head_dim), ("num_query_heads", num_query_heads),
                           ("num_key_value_heads", num_key_value_heads)):
            _check_positive(self, arg, value)
        if num_query_heads % num_key_value_heads:
            raise ValueError(
                f"GroupedQueryAttention '{self.name}': num_query_heads must be divisible by "
                f"num_key_value_heads. Received: num_query_heads={num_query_heads}, "
                f"num_key_value_heads={num_key_value_heads}")
        if sliding_window is not None:
            _check_positive(self, "sliding_window", sliding_window)
        check_rate(self, dropout, "dropout")
        if flash_attention and dropout > 0:
            raise ValueError(f"GroupedQueryAttention '{self.name}': dropout is not supported "
                             f"with flash_attention=True. Received: dropout={dropout}")
        check_seed(self, seed)
        self.head_dim = head_dim
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.num_repeats = num_query_heads // num_key_value_heads
        self.dropout = dropout
        self.use_bias = use_bias
        self.use_gate = use_gate
        self.sliding_window = sliding_window
        self.flash_attention = flash_attention
        self.seed = seed
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.projection_activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.supports_masking = True
        self._scale = 1.0 / math.sqrt(float(head_dim))
        self._shapes = None

    # ------------------------------------------------------------------ building
    def __call__(self, *args, **kwargs):
        if not self.built:
            given = {**dict(zip(("query", "value", "key"), args)), **kwargs}
            query, value, key = given.get("query"), given.get("value"), given.get("key")
            if query is None or value is None:
                raise ValueError(f"GroupedQueryAttention '{self.name}' must be called as "
                                 f"layer(query, value[, key]). Received: value=None")
            self._build_all(shape_of(query), shape_of(value),
                            None if key is None else shape_of(key))
            if isinstance(query, torch.Tensor) and query.device.type != "meta" \
                    and query.device != self._query_dense.kernel.device:
                self.to(query.device)
        return super().__call__(*args, **kwargs)

    def _build_all(self, query_shape, value_shape, key_shape=None) -> None:
        self.build(query_shape, value_shape, key_shape)
        self._shapes = {"query_shape": list(query_shape), "value_shape": list(value_shape)}
        if key_shape is not None:
            self._shapes["key_shape"] = list(key_shape)
        self.built = True

    def build(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        value_shape = tuple(query_shape if value_shape is None else value_shape)
        key_shape = tuple(value_shape if key_shape is None else key_shape)
        if any(len(s) != 3 for s in (query_shape, value_shape, key_shape)):
            raise ValueError(
                f"GroupedQueryAttention '{self.name}' expects 3D (batch, time, features) "
                f"query, value and key. Received: query_shape={query_shape}, "
                f"value_shape={value_shape}, key_shape={key_shape}")
        q_heads, kv_heads = self.num_query_heads, self.num_key_value_heads
        q_bias, kv_bias = ("uh", "vh") if self.use_bias else (None, None)
        self._query_dense = EinsumDense("bqm,muh->bquh", (None, q_heads, self.head_dim),
                                        bias_axes=q_bias, name="query", **self._sublayer_kwargs())
        self._query_dense._build_from_shape(query_shape)
        self._key_dense = EinsumDense("bkm,mvh->bkvh", (None, kv_heads, self.head_dim),
                                      bias_axes=kv_bias, name="key", **self._sublayer_kwargs())
        self._key_dense._build_from_shape(key_shape)
        if self.use_gate:
            self._gate_dense = EinsumDense("bqm,muh->bquh", (None, q_heads, self.head_dim),
                                           bias_axes=q_bias, activation="sigmoid",
                                           name="gate", **self._sublayer_kwargs())
            self._gate_dense._build_from_shape(query_shape)
        self._value_dense = EinsumDense("bkm,mvh->bkvh", (None, kv_heads, self.head_dim),
                                        bias_axes=kv_bias, name="value", **self._sublayer_kwargs())
        self._value_dense._build_from_shape(value_shape)
        attention_math.reserve_sublayers(self, self.dropout)
        self._output_dense = EinsumDense("bquh,uhm->bqm", (None, query_shape[-1]),
                                         bias_axes="m" if self.use_bias else None,
                                         name="attention_output", **self._sublayer_kwargs())
        self._output_dense._build_from_shape((None, None, q_heads, self.head_dim))

    def _sublayer_kwargs(self) -> dict:
        """Arguments of one projection, with fresh initializers as Keras gives each one."""
        def fresh(obj):
            return type(obj).from_config(obj.get_config())

        return {"kernel_initializer": fresh(self.kernel_initializer),
                "bias_initializer": fresh(self.bias_initializer),
                "kernel_regularizer": self.kernel_regularizer,
                "bias_regularizer": self.bias_regularizer,
                "activity_regularizer": self.projection_activity_regularizer,
                "kernel_constraint": self.kernel_constraint,
                "bias_constraint": self.bias_constraint, "dtype": self.dtype_policy}

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
                f"GroupedQueryAttention '{self.name}': attention scores cannot be returned "
                "with flash_attention=True. Received: return_attention_scores=True")
        query_mask = attention_math.mask_or_keras_mask(query_mask, query)
        value_mask = attention_math.mask_or_keras_mask(value_mask, value)
        if key is None:
            key = value
        else:
            key_mask = attention_math.mask_or_keras_mask(key_mask, key)
        masks = [m for m in (query_mask, value_mask, key_mask, attention_mask) if m is not None]
        causal_only = use_causal_mask and not masks and self.sliding_window is None
        mask = None if causal_only else attention_math.combine_masks(
            query.shape[1], value.shape[1], query.device, query_mask, value_mask, key_mask,
            attention_mask, use_causal_mask, self.sliding_window)
        if mask is not None:
            mask = mask.unsqueeze(-3)  # (B, 1, T, S): one mask for every head
        q = self._query_dense(query).transpose(1, 2)
        k = self._key_dense(key).repeat_interleave(self.num_repeats, dim=2).transpose(1, 2)
        v = self._value_dense(value).repeat_interleave(self.num_repeats, dim=2).transpose(1, 2)
        rate = self.dropout if training else 0.0
        # Keras' dot_product_attention path: a query that sees no key gets the values' mean
        keras_fused = not (self.dropout or return_attention_scores)
        out, scores = attention_math.attend(
            q, k, v, mask, is_causal=causal_only, scale=self._scale, dropout=rate,
            generator=generator_for(self, query.device) if rate else None,
            fused=self.flash_attention is not False, return_scores=return_attention_scores,
            uniform_empty_rows=keras_fused)
        out = out.transpose(1, 2)
        if self.use_gate:
            out = out * self._gate_dense(query)
        out = self._output_dense(out)
        return (out, scores) if return_attention_scores else out

    def compute_output_spec(self, query, value, key=None, *args, return_attention_scores=False,
                            **kwargs):
        q_shape, v_shape = shape_of(query), shape_of(value)
        k_shape = v_shape if key is None else shape_of(key)
        if q_shape[-1] != v_shape[-1]:
            raise ValueError(
                f"GroupedQueryAttention '{self.name}': the last dimension of query and value "
                f"must be equal. Received: query_shape={q_shape}, value_shape={v_shape}")
        dtype = self._symbolic_input_dtype(query.dtype)
        out = KerasTensor(tuple(q_shape), dtype)
        if not return_attention_scores:
            return out
        scores = (q_shape[0], self.num_query_heads, q_shape[1], k_shape[1])
        return out, KerasTensor(scores, dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "head_dim": self.head_dim,
            "num_query_heads": self.num_query_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "use_bias": self.use_bias,
            "use_gate": self.use_gate,
            "sliding_window": self.sliding_window,
            "dropout": self.dropout,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.projection_activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "seed": self.seed,
        }


def _check_positive(layer, arg: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"GroupedQueryAttention '{layer.name}': {arg} must be a positive "
                         f"integer. Received: {arg}={value!r}")
