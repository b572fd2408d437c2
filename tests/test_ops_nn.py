"""kestrel.ops.nn against real Keras 3 (torch backend): values, dtypes and symbolic specs."""
import numpy as np
import pytest
import torch

from kestrel import ops
from tests.ops_harness import check_op, check_symbolic

rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype("float32")


def pos(*shape):
    return rng.uniform(0.05, 1.0, shape).astype("float32")


X = f32(2, 3, 4)
INTS = np.array([[-3, 0, 2], [5, 1, -1]], "int32")
HALF = f32(3, 5).astype("float16")
IMG = f32(2, 7, 6, 3)
LABELS = np.array([[0, 2, 1, 3], [1, 1, 0, 2]], "int32")

ACTIVATIONS = ["relu", "relu6", "sigmoid", "sparse_sigmoid", "softplus", "softsign",
               "soft_shrink", "sparse_plus", "silu", "swish", "squareplus", "log_sigmoid",
               "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish", "elu", "selu", "gelu",
               "celu", "tanh_shrink", "hard_tanh", "hard_shrink", "sparsemax", "softmax",
               "log_softmax"]
KEEP_INT = ["relu", "relu6", "hard_tanh", "sigmoid", "sparse_sigmoid", "softsign",
            "sparse_plus", "squareplus", "tanh_shrink", "sparsemax"]

CASES = [
    *[(name, (X * 3,), {}) for name in ACTIVATIONS],
    *[(name, (HALF,), {}) for name in ACTIVATIONS if name != "sparsemax"],  # Keras: wrong
    *[(name, (INTS,), {}) for name in KEEP_INT],
    *[(name, ([0.5, -2.0],), {}) for name in ("relu", "gelu", "elu", "silu")],
    ("gelu", (X,), {"approximate": False}),
    ("leaky_relu", (X,), {"negative_slope": 0.1}),
    ("elu", (X,), {"alpha": 0.5}),
    ("celu", (X,), {"alpha": 2.0}),
    ("squareplus", (X,), {"b": 2}),
    ("soft_shrink", (X,), {"threshold": 1.0}),
    ("hard_shrink", (X,), {"threshold": 0.2}),
    ("threshold", (X, 0.3, -1.0), {}),
    ("threshold", (INTS, 0, 7), {}),
    ("glu", (X,), {}),
    ("glu", (f32(4, 3),), {"axis": 0}),
    ("softmax", (X,), {"axis": 1}),
    ("softmax", (X,), {"axis": (0, 2)}),
    ("softmax", (X,), {"axis": None}),
    ("log_softmax", (X,), {"axis": (1, 2)}),
    ("log_softmax", (X,), {"axis": 0}),
    # convolution and pooling
    ("conv", (f32(2, 9, 3), f32(3, 3, 4)), {}),
    ("conv", (IMG, f32(3, 2, 3, 5)), {"padding": "same", "strides": 2}),
    ("conv", (IMG, f32(3, 3, 1, 6)), {"padding": "same"}),  # groups = 3
    ("conv", (IMG, f32(2, 2, 3, 4)), {"dilation_rate": 2}),
    ("conv", (np.moveaxis(IMG, -1, 1), f32(3, 3, 3, 2)),
     {"data_format": "channels_first", "padding": "same"}),
    ("conv", (f32(1, 5, 6, 4, 2), f32(2, 3, 2, 2, 3)), {"strides": (1, 2, 1)}),
    ("depthwise_conv", (IMG, f32(3, 3, 3, 2)), {"padding": "same"}),
    ("depthwise_conv", (f32(2, 8, 3), f32(3, 3, 1)), {"strides": 2}),
    ("separable_conv", (IMG, f32(3, 3, 3, 2), f32(1, 1, 6, 4)), {"padding": "same"}),
    ("conv_transpose", (f32(2, 5, 3), f32(3, 4, 3)), {"strides": 2}),
    ("conv_transpose", (IMG, f32(3, 3, 4, 3)), {"strides": 2, "padding": "same"}),
    ("conv_transpose", (IMG, f32(2, 3, 4, 3)), {"strides": (2, 1), "padding": "same"}),
    ("conv_transpose", (IMG, f32(3, 3, 2, 3)), {"strides": 2, "output_padding": 1}),
    ("conv_transpose", (IMG, f32(3, 3, 2, 3)),
     {"strides": 3, "padding": "same", "output_padding": 2}),
    ("max_pool", (IMG, 2), {}),
    ("max_pool", (IMG, (3, 2)), {"strides": 1, "padding": "same"}),
    ("max_pool", (f32(2, 9, 3), 2), {"padding": "same"}),
    ("average_pool", (IMG, 2), {}),
    ("average_pool", (IMG, 3), {"strides": 1, "padding": "same"}),
    ("average_pool", (f32(1, 4, 5, 6, 2), 2), {}),
    ("adaptive_max_pool", (IMG, 3), {}),
    ("adaptive_average_pool", (IMG, (2, 4)), {}),
    ("adaptive_average_pool", (f32(2, 10, 3), 4), {}),
    ("adaptive_max_pool", (np.moveaxis(IMG, -1, 1), 2), {"data_format": "channels_first"}),
    ("unfold", (torch.randn(2, 3, 6, 5), 2), {}),
    ("unfold", (torch.randn(2, 3, 6, 5), (3, 2)), {"stride": 2, "padding": 1, "dilation": 1}),
    ("fold", (torch.randn(2, 12, 20), (6, 5), 2), {}),
    ("depth_to_space", (f32(2, 3, 4, 8), 2), {}),
    ("depth_to_space", (f32(2, 8, 3, 4), 2), {"data_format": "channels_first"}),
    ("space_to_depth", (f32(2, 4, 6, 3), 2), {}),
    ("space_to_depth", (f32(2, 3, 6, 4), 2), {"data_format": "channels_first"}),
    # encodings and losses
    ("one_hot", (INTS, 6), {}),
    ("one_hot", (INTS, 6), {"axis": 0, "dtype": "int32"}),
    ("one_hot", ([1, 0, 2], 3), {"axis": 1}),
    ("multi_hot", (LABELS, 4), {}),
    ("multi_hot", (np.array([0, 3], "int32"), 5), {"dtype": "int32"}),
    ("binary_crossentropy", (pos(3, 4).round(), pos(3, 4)), {}),
    ("binary_crossentropy", (pos(3, 4).round(), f32(3, 4)), {"from_logits": True}),
    ("categorical_crossentropy", (np.eye(4, dtype="float32")[[0, 3, 1]], pos(3, 4)), {}),
    ("categorical_crossentropy", (pos(3, 4), f32(3, 4)), {"from_logits": True}),
    ("categorical_crossentropy", (pos(4, 3), f32(4, 3)), {"from_logits": True, "axis": 0}),
    ("sparse_categorical_crossentropy", (LABELS, pos(2, 4, 5)), {}),
    ("sparse_categorical_crossentropy", (LABELS[0], f32(4, 5)), {"from_logits": True}),
    ("sparse_categorical_crossentropy", (LABELS[:, :3], f32(2, 4, 3)),
     {"from_logits": True, "axis": 1}),
    ("ctc_loss", (np.array([[1, 2, 0], [3, 3, 1]], "int32"), f32(2, 6, 5),
                  np.array([2, 3], "int32"), np.array([6, 5], "int32")), {}),
    ("ctc_decode", (f32(2, 7, 4), np.array([7, 5], "int32")), {}),
    ("ctc_decode", (f32(2, 7, 4), np.array([6, 7], "int32")),
     {"merge_repeated": False, "mask_index": 3}),
    ("psnr", (pos(2, 4, 4, 1), pos(2, 4, 4, 1), 1.0), {}),
    # statistics, normalization, attention
    ("moments", (X, [0, 2]), {}),
    ("moments", (X, (1,)), {"keepdims": True}),
    ("moments", (HALF, [0]), {}),
    ("batch_normalization", (X, pos(4), pos(4), -1), {}),
    ("batch_normalization", (X, pos(3), pos(3), 1),
     {"offset": f32(3), "scale": f32(3), "epsilon": 0.1}),
    ("normalize", (X,), {}),
    ("normalize", (X,), {"axis": 1, "order": 1}),
    ("normalize", (X,), {"order": 3, "epsilon": 1e-3}),
    ("layer_normalization", (X,), {}),
    ("layer_normalization", (X, pos(4), f32(4)), {"epsilon": 1e-3}),
    ("layer_normalization", (X, pos(2, 4), f32(2, 4)), {"axis": (0, 2)}),
    ("layer_normalization", (X, pos(3, 4)), {"axis": (1, 2)}),
    ("layer_normalization", (HALF,), {}),
    ("rms_normalization", (X,), {}),
    ("rms_normalization", (X, pos(4)), {"epsilon": 1e-3}),
    ("rms_normalization", (X, pos(2, 1, 4)), {"axis": (0, 2)}),
    ("dot_product_attention", (f32(2, 5, 4, 8), f32(2, 6, 4, 8), f32(2, 6, 4, 8)), {}),
    ("dot_product_attention", (f32(2, 5, 4, 8), f32(2, 5, 2, 8), f32(2, 5, 2, 8)),
     {"is_causal": True, "scale": 0.3}),
    ("dot_product_attention", (f32(2, 5, 4, 8), f32(2, 6, 1, 8), f32(2, 6, 1, 8)),
     {"mask": rng.random((2, 1, 5, 6)) > 0.3}),
    ("dot_product_attention", (f32(2, 5, 2, 8), f32(2, 5, 2, 8), f32(2, 5, 2, 8)),
     {"mask": rng.random((5, 5)) > 0.2, "is_causal": True}),
    ("dot_product_attention", (f32(1, 3, 2, 4), f32(1, 3, 2, 4), f32(1, 3, 2, 4)),
     {"bias": f32(1, 2, 3, 3)}),
    ("polar", (pos(3), f32(3)), {}),
]


@pytest.mark.parametrize("name, args, kwargs", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_op_matches_keras(name, args, kwargs):
    half = any(getattr(a, "dtype", None) == np.float16 for a in args)
    check_op(f"nn.{name}", *args, rtol=1e-2 if half else 1e-4, atol=1e-2 if half else 1e-5,
             **kwargs)


def test_int_inputs_to_float_activations_give_floatx():
    assert ops.elu(INTS).dtype == torch.float32
    torch.testing.assert_close(ops.silu(INTS), ops.silu(INTS.astype("float32")))


def test_sparsemax_projects_onto_the_simplex_along_any_axis():
    out = ops.sparsemax(X * 3, axis=1)  # Keras 3.15's torch backend is wrong off the last axis
    torch.testing.assert_close(out.sum(1), torch.ones(2, 4))
    torch.testing.assert_close(out, ops.sparsemax(np.moveaxis(X * 3, 1, -1)).movedim(-1, 1))


def test_average_pool_same_asymmetric_excludes_padding():
    x = torch.arange(1.0, 7.0).reshape(1, 6, 1)
    out = ops.average_pool(x, 2, strides=2, padding="same")  # no padding needed
    assert out.flatten().tolist() == [1.5, 3.5, 5.5]
    out = ops.average_pool(x[:, :5], 2, strides=2, padding="same")  # one pad at the end
    assert out.flatten().tolist() == [1.5, 3.5, 5.0]


def test_results_stay_on_the_input_device_and_keep_gradients():
    x = torch.randn(2, 5, 5, 3, requires_grad=True)
    y = ops.conv(x, torch.randn(3, 3, 3, 2), padding="same")
    ops.softmax(y, axis=(1, 2)).sum().backward()
    assert x.grad is not None and y.device == x.device


@pytest.mark.parametrize("name, specs, kwargs", [
    ("relu", [((None, 3), "int32")], {}),
    ("softmax", [(None, 3, 4)], {"axis": (1, 2)}),
    ("conv", [(None, 7, 6, 3), np.ones((3, 3, 3, 5), "float32")],
     {"strides": 2, "padding": "same"}),
    ("conv_transpose", [(None, 7, 6, 3), np.ones((3, 3, 2, 3), "float32")], {"strides": 2}),
    ("max_pool", [(None, 7, 6, 3), 2], {"padding": "same"}),
    ("average_pool", [(None, 9, 3), 3], {"strides": 2}),
    ("one_hot", [((None, 4), "int32"), 5], {}),
    ("moments", [(None, 3, 4), [1]], {}),
    ("layer_normalization", [(None, 3, 4)], {}),
    ("dot_product_attention", [(None, 5, 2, 8), (None, 6, 2, 8), (None, 6, 2, 8)], {}),
    ("sparse_categorical_crossentropy", [((None, 4), "int32"), (None, 4, 5)], {}),
    ("depth_to_space", [(None, 3, 4, 8), 2], {}),
])
def test_symbolic_specs_match_keras(name, specs, kwargs):
    check_symbolic(f"nn.{name}", *specs, **kwargs)


@pytest.mark.parametrize("call, message", [
    (lambda: ops.conv(IMG, f32(3, 3, 3, 2), padding="full"), "ops.conv: padding"),
    (lambda: ops.max_pool(f32(2, 3), 2), "ops.max_pool: inputs must have rank"),
    (lambda: ops.normalize(X, order=0), "order"),
    (lambda: ops.depth_to_space(f32(1, 2, 2, 4), 1), "block_size"),
    (lambda: ops.glu(f32(2, 3)), "even"),
    (lambda: ops.dot_product_attention(X, X, X), "4D"),
    (lambda: ops.ctc_decode(f32(1, 3, 2), [3], strategy="beam"), "greedy"),
    (lambda: ops.categorical_crossentropy(f32(2, 3), f32(2, 4)), "same shape"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
