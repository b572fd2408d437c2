import doctest

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from kestrel.layers import Input
from kestrel.layers.attention import (
    AdditiveAttention,
    Attention,
    MultiHeadAttention,
    additive_attention,
    attention,
    multi_head_attention,
)
from tests.layer_harness import run_layer_test

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"


# ---------------------------------------------------------------- NumPy references
def np_softmax_masked(scores, mask):
    """Softmax over the last axis; masked entries and rows with no visible key give 0."""
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.max(scores, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(scores - top)
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def np_mha(query, value, weights, key=None, mask=None, gate=None):
    """Keras' MultiHeadAttention for (B, T, dim) inputs; `mask` broadcastable to (B, T, S).

    As on Keras' `dot_product_attention` path, a query that sees no key attends to every key
    alike (the returned probabilities, as Keras' scores, have 0 there)."""
    key = value if key is None else key
    wq, bq, wk, bk, wv, bv, wo, bo = weights
    q = np.einsum("btd,dhk->bthk", query, wq) + bq
    k = np.einsum("bsd,dhk->bshk", key, wk) + bk
    v = np.einsum("bsd,dhk->bshk", value, wv) + bv
    scores = np.einsum("bthk,bshk->bhts", q / np.sqrt(wq.shape[-1]), k)
    probs = np_softmax_masked(scores, None if mask is None else np.asarray(mask)[:, None])
    empty = probs.sum(axis=-1, keepdims=True) == 0
    heads = np.einsum("bhts,bshv->bthv", np.where(empty, 1 / probs.shape[-1], probs), v)
    if gate is not None:
        wg, bg = gate
        heads = heads / (1 + np.exp(-(np.einsum("btd,dhv->bthv", query, wg) + bg)))
    return np.einsum("bthv,hvd->btd", heads, wo) + bo, probs


def randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5
                       for w in layer.get_weights()])
    return layer.get_weights()


def t(array):
    return torch.as_tensor(np.asarray(array, dtype="float32"))


class _CrossMHA(MultiHeadAttention):
    """MultiHeadAttention called on a [query, value] list, the form the shared harness uses."""

    def __call__(self, inputs, **kwargs):
        return super().__call__(inputs[0], inputs[1], **kwargs)


# ---------------------------------------------------------------- MultiHeadAttention
def test_mha_harness():
    run_layer_test(_CrossMHA, {"num_heads": 2, "key_dim": 3},
                   input_shape=[(2, 4, 5), (2, 6, 7)], expected_output_shape=(2, 4, 5),
                   expected_num_trainable_weights=8)
    run_layer_test(_CrossMHA, {"num_heads": 3, "key_dim": 2, "value_dim": 4,
                               "output_shape": (2, 3), "use_bias": False},
                   input_shape=[(2, 4, 5), (2, 6, 5)], expected_output_shape=(2, 4, 2, 3),
                   expected_num_trainable_weights=4)


def test_mha_weight_shapes_and_order():
    layer = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4)
    layer(torch.zeros(1, 5, 6), torch.zeros(1, 7, 8), torch.zeros(1, 7, 9))
    assert [w.shape for w in layer.get_weights()] == [
        (6, 2, 3), (2, 3), (9, 2, 3), (2, 3), (8, 2, 4), (2, 4), (2, 4, 6), (6,)]
    assert [s.name for s in (layer.query_dense, layer.key_dense, layer.value_dense,
                             layer.output_dense)] == ["query", "key", "value", "attention_output"]
    assert layer.count_params() == 6 * 6 + 6 + 9 * 6 + 6 + 8 * 8 + 8 + 48 + 6


def test_mha_matches_numpy_cross_attention_with_key():
    layer = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4)
    rng = np.random.default_rng(1)
    q, v, k = (rng.normal(size=s).astype("float32") for s in [(2, 5, 6), (2, 7, 8), (2, 7, 9)])
    layer(t(q), t(v), t(k))
    weights = randomize(layer)
    out, scores = layer(t(q), t(v), t(k), return_attention_scores=True)
    ref, ref_scores = np_mha(q, v, weights, key=k)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores.detach().numpy(), ref_scores, rtol=1e-5, atol=1e-6)
    assert scores.shape == (2, 2, 5, 7)


def test_mha_matches_real_keras_fixture():
    """tokens -> MHA self-attention -> Add -> LayerNorm -> GAP1D -> Dense, saved by Keras 3."""
    config = json.loads((FIXTURES / "func_layernorm_mha.json").read_text())
    entry = next(e for e in config["config"]["layers"] if e["class_name"] == "MultiHeadAttention")
    layer = MultiHeadAttention.from_config(entry["config"])
    layer.build_from_config(entry["build_config"])
    with h5py.File(FIXTURES / "func_layernorm_mha.weights.h5", "r") as f:
        mha = f["layers/multi_head_attention"]
        layer.set_weights([mha[f"{sub}/vars/{i}"][()] for sub in
                           ("query_dense", "key_dense", "value_dense", "output_dense")
                           for i in (0, 1)])
        gamma, beta = (f[f"layers/layer_normalization/vars/{i}"][()] for i in (0, 1))
        kernel, bias = (f[f"layers/dense/vars/{i}"][()] for i in (0, 1))
    x = np.load(FIXTURES / "func_layernorm_mha.x.npy")
    h = x + layer(t(x), t(x)).detach().numpy().astype("float64")
    mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    h = (h - mean) / np.sqrt(var + 1e-3) * gamma + beta
    y = h.mean(axis=1) @ kernel + bias
    np.testing.assert_allclose(y, np.load(FIXTURES / "func_layernorm_mha.y.npy"),
                               rtol=1e-5, atol=1e-5)
    assert layer.name == "mha" and layer.get_build_config() == entry["build_config"]


def test_mha_loads_keras2_config_and_writes_keras3_keys():
    keras2 = {"name": "mha", "trainable": True, "dtype": "float32", "num_heads": 2, "key_dim": 8,
              "value_dim": 8, "dropout": 0.0, "use_bias": True, "output_shape": None,
              "attention_axes": [1], "kernel_initializer": {"class_name": "GlorotUniform",
                                                            "config": {"seed": None}},
              "bias_initializer": {"class_name": "Zeros", "config": {}},
              "kernel_regularizer": None, "bias_regularizer": None,
              "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
              "query_shape": [None, 6, 16], "key_shape": [None, 6, 16],
              "value_shape": [None, 6, 16], "softmax_robust_masking": False}
    layer = MultiHeadAttention.from_config(keras2)
    assert layer(torch.zeros(1, 6, 16), torch.zeros(1, 6, 16)).shape == (1, 6, 16)
    config = layer.get_config()
    for key in ("num_heads", "key_dim", "value_dim", "use_gate", "sliding_window", "seed",
                "attention_axes", "output_shape"):
        assert key in config
    json.dumps(config)


@pytest.mark.parametrize("case", ["none", "causal", "attention_mask", "keras_masks",
                                  "all", "sliding"])
def test_mha_fused_and_explicit_paths_agree_with_numpy(case):
    rng = np.random.default_rng(2)
    q, v = (rng.normal(size=(3, 5, 6)).astype("float32") for _ in range(2))
    attention_mask = rng.random((3, 5, 5)) > 0.4
    attention_mask[0, 2] = False  # a query that sees nothing
    q_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 1, 1]], bool)
    v_mask = np.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 0], [0, 0, 0, 0, 0]], bool)
    kwargs, ref_mask, window = {}, np.ones((3, 5, 5), bool), None
    causal = np.tril(np.ones((5, 5), bool))[None]
    if case in ("causal", "all"):
        kwargs["use_causal_mask"], ref_mask = True, ref_mask & causal
    if case in ("attention_mask", "all"):
        kwargs["attention_mask"] = torch.as_tensor(attention_mask)
        ref_mask = ref_mask & attention_mask
    if case in ("keras_masks", "all"):
        ref_mask = ref_mask & q_mask[:, :, None] & v_mask[:, None, :]
    if case == "sliding":
        window = 2
        ref_mask = ref_mask & (np.abs(np.arange(5)[:, None] - np.arange(5)[None]) < 2)
    outputs = []
    for flash in (None, False):
        layer = MultiHeadAttention(num_heads=2, key_dim=4, flash_attention=flash,
                                   sliding_window=window)
        query, value = t(q), t(v)
        if case in ("keras_masks", "all"):
            query._keras_mask, value._keras_mask = torch.as_tensor(q_mask), torch.as_tensor(v_mask)
        layer(query, value, **kwargs)
        weights = randomize(layer, seed=3)
        out = layer(query, value, **kwargs)
        assert torch.isfinite(out).all()
        outputs.append(out.detach().numpy())
        if case in ("keras_masks", "all"):
            assert torch.equal(out._keras_mask, torch.as_tensor(q_mask))
    ref, _ = np_mha(q, v, weights, mask=ref_mask)
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs[0], ref, rtol=1e-5, atol=1e-5)
    _, scores = layer(t(q), t(v), return_attention_scores=True, **kwargs)
    if case in ("none", "causal", "attention_mask", "sliding"):
        np.testing.assert_allclose(scores.detach().numpy(), np_mha(q, v, weights, mask=ref_mask)[1],
                                   rtol=1e-5, atol=1e-6)


def test_mha_causal_scores_are_lower_triangular():
    layer = MultiHeadAttention(num_heads=3, key_dim=2)
    _, scores = layer(torch.randn(2, 4, 5), torch.randn(2, 4, 5), use_causal_mask=True,
                      return_attention_scores=True)
    assert scores.shape == (2, 3, 4, 4)
    assert torch.all(scores.triu(diagonal=1) == 0)
    torch.testing.assert_close(scores.sum(-1), torch.ones(2, 3, 4))


def test_mha_attention_mask_broadcasts_over_batch_and_heads():
    layer = MultiHeadAttention(num_heads=2, key_dim=3)
    x = torch.randn(2, 4, 5)
    causal = layer(x, x, use_causal_mask=True)
    torch.testing.assert_close(layer(x, x, attention_mask=torch.ones(4, 4).tril()), causal)
    per_head = torch.rand(2, 2, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.3
    per_head[..., 0] = True  # a query that sees no key: Keras' fused and scores paths differ
    _, scores = layer(x, x, attention_mask=per_head, return_attention_scores=True)
    assert torch.all(scores[~per_head] == 0)
    fused = layer(x, x, attention_mask=per_head)
    torch.testing.assert_close(fused, layer(x, x, attention_mask=per_head,
                                            return_attention_scores=True)[0])


def test_mha_gate_matches_numpy():
    layer = MultiHeadAttention(num_heads=2, key_dim=3, use_gate=True)
    rng = np.random.default_rng(4)
    q, v = (rng.normal(size=s).astype("float32") for s in [(2, 4, 5), (2, 6, 5)])
    layer(t(q), t(v))
    w = randomize(layer)
    assert len(w) == 10 and w[4].shape == (5, 2, 3)  # q, k, gate, v, output
    ref, _ = np_mha(q, v, w[:4] + w[6:], gate=(w[4], w[5]))
    np.testing.assert_allclose(layer(t(q), t(v)).detach().numpy(), ref, rtol=1e-5, atol=1e-5)


def test_mha_attention_axes_on_4d_inputs():
    layer = MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=(1, 2))
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    layer(t(x), t(x))
    weights = randomize(layer)
    out, scores = layer(t(x), t(x), return_attention_scores=True)
    assert scores.shape == (2, 2, 3, 4, 3, 4)
    flat = x.reshape(2, 12, 5)  # attention over both axes = over the 12 flattened positions
    ref, _ = np_mha(flat, flat, weights)
    np.testing.assert_allclose(out.detach().numpy(), ref.reshape(2, 3, 4, 5), rtol=1e-5, atol=1e-5)
    fused = MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=(1, 2))
    fused(t(x), t(x))
    fused.set_weights(weights)
    np.testing.assert_allclose(fused(t(x), t(x)).detach().numpy(), out.detach().numpy(),
                               rtol=1e-5, atol=1e-5)

    per_row = MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=2)
    per_row(t(x), t(x))
    per_row.set_weights(weights)
    rows, _ = np_mha(x.reshape(6, 4, 5), x.reshape(6, 4, 5), weights)
    np.testing.assert_allclose(per_row(t(x), t(x)).detach().numpy(), rows.reshape(2, 3, 4, 5),
                               rtol=1e-5, atol=1e-5)


def test_mha_dropout_only_in_training_and_seeded():
    x = torch.randn(2, 5, 4)
    a = MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.5, seed=7)
    b = MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.5, seed=7)
    a(x, x), b(x, x)
    b.set_weights(a.get_weights())
    torch.testing.assert_close(a(x, x), b(x, x))
    dropped = a(x, x, training=True)
    assert not torch.allclose(dropped, a(x, x))
    torch.testing.assert_close(dropped, b(x, x, training=True))
    unseeded = MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.5)
    unseeded(x, x)
    unseeded.set_weights(a.get_weights())
    unseeded.train()
    out = unseeded(x, x)
    out.sum().backward()
    assert not torch.allclose(out, a(x, x)) and torch.isfinite(out).all()


def test_mha_in_functional_model_with_causal_mask():
    from kestrel.models.model import Model

    tokens = Input(shape=(6, 8))
    out = MultiHeadAttention(num_heads=2, key_dim=4, name="self_attention")(
        tokens, tokens, use_causal_mask=True)
    model = Model(tokens, out)
    x = torch.randn(3, 6, 8)
    layer = model.layers[-1]
    torch.testing.assert_close(model(x), layer(x, x, use_causal_mask=True))
    assert out.shape == (None, 6, 8)


def test_mha_invalid_arguments_and_ranks():
    with pytest.raises(ValueError, match="num_heads must be a positive integer.*num_heads=0"):
        MultiHeadAttention(num_heads=0, key_dim=2)
    with pytest.raises(ValueError, match="key_dim"):
        MultiHeadAttention(num_heads=2, key_dim=-1)
    with pytest.raises(ValueError, match="value_dim"):
        MultiHeadAttention(num_heads=2, key_dim=2, value_dim=2.5)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(num_heads=2, key_dim=2, dropout=1.5)
    with pytest.raises(ValueError, match="flash_attention"):
        MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.1, flash_attention=True)
    with pytest.raises(ValueError, match="output_shape"):
        MultiHeadAttention(num_heads=2, key_dim=2, output_shape="wide")
    with pytest.raises(ValueError, match="sliding_window"):
        MultiHeadAttention(num_heads=2, key_dim=2, sliding_window=0)
    with pytest.raises(ValueError, match="MultiHeadAttention 'rank_check'.*rank"):
        MultiHeadAttention(2, 2, name="rank_check")(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="MultiHeadAttention 'axes'.*attention_axes"):
        MultiHeadAttention(2, 2, attention_axes=3, name="axes")(torch.zeros(1, 2, 3),
                                                              torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="value and key"):
        MultiHeadAttention(2, 2)(torch.zeros(1, 2, 3), torch.zeros(1, 4, 3), torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="value"):
        MultiHeadAttention(2, 2)(torch.zeros(1, 2, 3))
    flash = MultiHeadAttention(2, 2, flash_attention=True)
    with pytest.raises(ValueError, match="return_attention_scores"):
        flash(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), return_attention_scores=True)


# ---------------------------------------------------------------- Attention / AdditiveAttention
def np_luong(q, v, k=None, scale=None, q_mask=None, v_mask=None, causal=False, concat=None):
    k = v if k is None else k
    if concat is not None:
        s = np.tanh((q[:, :, None] + k[:, None]) * (1 if scale is None else scale)).sum(-1)
        scores = concat * s
    else:
        scores = q @ np.swapaxes(k, -1, -2) * (1 if scale is None else scale)
    visible = np.ones(scores.shape, bool)
    if v_mask is not None:
        visible &= v_mask[:, None, :]
    if causal:
        visible &= np.tril(np.ones(scores.shape[-2:], bool))
    weights = np_softmax_masked(scores, visible)
    out = weights @ v
    if q_mask is not None:
        out = out * q_mask[..., None]
    return out, weights


def np_bahdanau(q, v, scale, v_mask=None):
    scores = (np.tanh(q[:, :, None] + v[:, None]) * (1 if scale is None else scale)).sum(-1)
    visible = np.ones(scores.shape, bool) if v_mask is None else np.broadcast_to(
        v_mask[:, None, :], scores.shape)
    weights = np_softmax_masked(scores, visible)
    return weights @ v, weights


def test_attention_harness():
    run_layer_test(Attention, {}, input_shape=[(2, 3, 4), (2, 5, 4)],
                   expected_output_shape=(2, 3, 4), expected_num_trainable_weights=0)
    run_layer_test(Attention, {"use_scale": True, "score_mode": "concat"},
                   input_shape=[(2, 3, 4), (2, 5, 6), (2, 5, 4)],
                   expected_output_shape=(2, 3, 6), expected_num_trainable_weights=2)
    run_layer_test(AdditiveAttention, {}, input_shape=[(2, 3, 4), (2, 5, 4)],
                   expected_output_shape=(2, 3, 4), expected_num_trainable_weights=1)


@pytest.mark.parametrize("mode", ["dot", "concat"])
def test_attention_matches_numpy_with_masks(mode):
    rng = np.random.default_rng(6)
    q, v, k = (rng.normal(size=s).astype("float32") for s in [(2, 3, 4), (2, 5, 6), (2, 5, 4)])
    q_mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    v_mask = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    layer = Attention(use_scale=True, score_mode=mode)
    layer([t(q), t(v), t(k)])
    layer.set_weights([np.float32(0.7)] + ([np.float32(1.3)] if mode == "concat" else []))
    masks = [torch.as_tensor(q_mask), torch.as_tensor(v_mask)]
    out, weights = layer([t(q), t(v), t(k)], mask=masks, return_attention_scores=True,
                         use_causal_mask=True)
    ref, ref_w = np_luong(q, v, k, scale=0.7, q_mask=q_mask, v_mask=v_mask, causal=True,
                          concat=1.3 if mode == "concat" else None)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights.detach().numpy(), ref_w, rtol=1e-5, atol=1e-6)
    assert weights.shape == (2, 3, 5)


def test_attention_reads_keras_masks_and_passes_query_mask():
    q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    q._keras_mask = torch.tensor([[True, False, True], [True, True, True]])
    v._keras_mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    out = Attention()([q, v])
    ref, _ = np_luong(q.numpy(), v.numpy(), q_mask=q._keras_mask.numpy(),
                      v_mask=v._keras_mask.numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert torch.equal(out._keras_mask, q._keras_mask)


def test_additive_attention_matches_numpy():
    rng = np.random.default_rng(7)
    q, v = (rng.normal(size=s).astype("float32") for s in [(2, 3, 4), (2, 5, 4)])
    v_mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], bool)
    layer = AdditiveAttention()
    layer([t(q), t(v)])
    (scale,) = layer.get_weights()
    assert scale.shape == (4,)
    out, w = layer([t(q), t(v)], mask=[None, torch.as_tensor(v_mask)], return_attention_scores=True)
    ref, ref_w = np_bahdanau(q, v, scale, v_mask)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.detach().numpy(), ref_w, rtol=1e-5, atol=1e-6)
    unscaled = AdditiveAttention(use_scale=False)
    np.testing.assert_allclose(unscaled([t(q), t(v)]).numpy(), np_bahdanau(q, v, None)[0],
                               rtol=1e-5, atol=1e-6)
    assert "score_mode" not in layer.get_config()
    assert AdditiveAttention.from_config({**layer.get_config(), "score_mode": "dot"}).use_scale


def test_attention_dropout_and_symbolic_scores():
    q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    layer = Attention(dropout=0.5, seed=3)
    torch.testing.assert_close(layer([q, v]), Attention()([q, v]))
    dropped = layer([q, v], training=True)
    torch.testing.assert_close(dropped, Attention(dropout=0.5, seed=3)([q, v], training=True))
    assert not torch.allclose(dropped, layer([q, v]))
    out, scores = Attention()([Input(shape=(3, 4)), Input(shape=(5, 6)), Input(shape=(5, 4))],
                              return_attention_scores=True)
    assert out.shape == (None, 3, 6) and scores.shape == (None, 3, 5)


def test_attention_invalid_arguments():
    with pytest.raises(ValueError, match="score_mode"):
        Attention(score_mode="general")
    with pytest.raises(ValueError, match="dropout"):
        AdditiveAttention(dropout=-0.1)
    with pytest.raises(ValueError, match="Attention 'single' must be called on a list"):
        Attention(name="single")(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="AdditiveAttention 'dims'.*same last dimension"):
        AdditiveAttention(name="dims")([torch.zeros(2, 3, 4), torch.zeros(2, 5, 3)])
    with pytest.raises(ValueError, match="Attention 'low'.*rank >= 3"):
        Attention(name="low")([torch.zeros(2, 4), torch.zeros(2, 4)])


@pytest.mark.parametrize("module", [additive_attention, attention, multi_head_attention])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0
