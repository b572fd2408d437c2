"""Array creation, shapes, joining, indexing and sorting ops against real Keras 3 (torch)."""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import ops
from tests.ops_harness import check_op, check_symbolic

rng = np.random.default_rng(0)
F = rng.normal(size=(3, 4)).astype("float32")
F3 = rng.normal(size=(2, 3, 4)).astype("float32")
H = F.astype("float16")
I = rng.integers(-5, 5, size=(3, 4)).astype("int32")
I8 = rng.integers(-5, 5, size=(3, 4)).astype("int8")
B = F > 0
TF, TF3 = torch.tensor(F), torch.tensor(F3)
V = rng.normal(size=(4,)).astype("float32")
SQ = rng.normal(size=(4, 4)).astype("float32")
NAN = np.array([[np.nan, 1.0, 3.0], [np.nan, np.nan, np.nan], [2.0, np.nan, 0.5]], "float32")
IDX = np.array([[0, 2], [-1, 1]], "int32")
COUNTS = np.array([0, 1, 1, 3, 2, 1, 7], "int32")

CASES = [
    # creation
    ("zeros", ((2, 3),), {}), ("zeros", (4,), {"dtype": "int32"}),
    ("ones", ((2, 3),), {"dtype": "bool"}), ("full", ((2, 3), 7), {}),
    ("full", ((2, 3), 1.5), {"dtype": "float16"}), ("full", ((2, 4), V), {}),
    ("full_like", (I, 2.7), {}), ("full_like", (F, 3), {"dtype": "int32"}),
    ("zeros_like", (I,), {}), ("ones_like", (F,), {"dtype": "float16"}),
    ("eye", (3,), {}), ("eye", (3, 5), {"k": 1}), ("eye", (4, 3), {"k": -2, "dtype": "int32"}),
    ("identity", (3,), {"dtype": "bfloat16"}), ("tri", (3, 4), {"k": 1}), ("tri", (3,), {}),
    ("arange", (5,), {}), ("arange", (1, 7, 2), {}), ("arange", (0.5, 3.0), {}),
    ("arange", (0, 1, 0.25), {"dtype": "float16"}), ("arange", (2, 8), {"dtype": "float32"}),
    ("linspace", (0, 1), {"num": 7}), ("linspace", (0.0, 10.0, 5), {"endpoint": False}),
    ("linspace", (0, 10, 4), {"dtype": "int32"}), ("linspace", (2.0, 3.0, 5), {"retstep": True}),
    ("logspace", (0.0, 2.0, 5), {}), ("logspace", (0, 3, 4), {"base": 2, "endpoint": False}),
    ("geomspace", (1.0, 1000.0, 4), {}), ("geomspace", (2, 32, 5), {"endpoint": False}),
    ("bartlett", (7,), {}), ("blackman", (6,), {}), ("hamming", (5,), {}),
    ("hanning", (8,), {}), ("kaiser", (6, 5.0), {}),
    ("array", ([[1, 2], [3, 4]],), {}), ("array", (F,), {"dtype": "float16"}),
    ("copy", (I,), {}), ("view", (F,), {"dtype": "int32"}), ("view", (I,), {"dtype": "int16"}),
    ("ndim", (F3,), {}), ("size", (F3,), {}),
    # shapes
    ("reshape", (F, (2, -1)), {}), ("reshape", (F3, -1), {}), ("ravel", (I,), {}),
    ("expand_dims", (F, 1), {}), ("expand_dims", (F, (0, -1)), {}),
    ("squeeze", (F[:, :1],), {}), ("squeeze", (F3[:1], 0), {}),
    ("transpose", (F3,), {}), ("transpose", (F3, (1, 0, 2)), {}),
    ("moveaxis", (F3, 0, -1), {}), ("moveaxis", (F3, (0, 1), (2, 0)), {}),
    ("swapaxes", (F3, 0, 2), {}), ("broadcast_to", (V, (3, 4)), {}),
    ("flip", (F3,), {}), ("flip", (F3, (0, 2)), {}), ("fliplr", (F,), {}), ("flipud", (I,), {}),
    ("rot90", (F,), {}), ("rot90", (F3,), {"k": 3, "axes": (1, 2)}),
    ("roll", (F, 2), {}), ("roll", (F3, (1, -1)), {"axis": (0, 2)}),
    ("tile", (F, 2), {}), ("tile", (V, (2, 1, 2)), {}),
    ("repeat", (F, 2), {}), ("repeat", (F, 3), {"axis": 1}),
    ("repeat", (F, np.array([1, 0, 2]), 0), {}),
    ("pad", (F, ((1, 2), (0, 3))), {}), ("pad", (I, ((1, 1), (2, 0))), {"constant_values": 7}),
    ("pad", (F3, ((0, 0), (1, 2), (2, 1))), {"mode": "reflect"}),
    ("pad", (F, ((2, 1), (3, 2))), {"mode": "circular"}),
    # joining and splitting
    ("concatenate", ([F, I],), {"axis": 0}), ("concatenate", ([H, F[:, :1]],), {"axis": 1}),
    ("append", (I, F), {}), ("append", (F, F[:1], 0), {}),
    ("stack", ([F, I],), {}), ("stack", ([V, V, V],), {"axis": 1}),
    ("hstack", ([F, I],), {}), ("hstack", ([V, V],), {}), ("vstack", ([F, H],), {}),
    ("vstack", ([V, V],), {}), ("dstack", ([F, I],), {}),
    ("split", (F, 2), {"axis": 1}), ("split", (F3, [1, 3], -1), {}),
    ("array_split", (F, 3), {"axis": 1}), ("array_split", (V, 3), {}),
    ("hsplit", (F, 2), {}), ("vsplit", (F, [1]), {}), ("dsplit", (F3, 2), {}),
    ("meshgrid", (V, V[:3]), {}), ("meshgrid", (V, V[:3]), {"indexing": "ij"}),
    # indexing
    ("get_item", (TF, 1), {}), ("get_item", (TF3, (slice(None), 0)), {}),
    ("get_item", (TF3, (Ellipsis, slice(1, None))), {}),
    ("get_item", (TF, (slice(None), None)), {}), ("get_item", (TF, (IDX[0], 1)), {}),
    ("take", (F, np.abs(IDX)), {}), ("take", (F, IDX, 1), {}), ("take", (F3, [0, 2], -1), {}),
    ("take", (F, np.array([2, 0]), 0), {}),
    ("take_along_axis", (F, np.argsort(F, 1).astype("int32"), 1), {}),
    ("take_along_axis", (F3, np.zeros((2, 1, 4), "int32"), 1), {}),
    ("take_along_axis", (F, np.array([0, 11, 5], "int32")), {"axis": None}),
    ("where", (B, F, I), {}), ("where", (B, 1.0, 0), {}), ("where", (B, H, F), {}),
    ("where", (B,), {}),
    ("select", ([F > 0.5, F < -0.5], [F, F * 2]), {}), ("select", ([B], [I], 9), {}),
    ("nonzero", (I,), {}), ("unravel_index", (np.array([1, 7, 11], "int32"), (3, 4)), {}),
    ("diag", (V,), {"k": 1}), ("diag", (F,), {}), ("diag", (F, -1), {}),
    ("diagflat", (F[:2, :2],), {"k": -1}), ("diagonal", (F3,), {"offset": 1}),
    ("diagonal", (F3, 0, 1, 2), {}), ("trace", (F,), {}), ("trace", (I8,), {"offset": 1}),
    ("trace", (F3, 0, 1, 2), {}), ("trace", (B,), {}),
    ("tril", (F,), {}), ("tril", (F3, -1), {}), ("triu", (I,), {"k": 1}),
    ("searchsorted", (np.sort(V), F), {}), ("searchsorted", ([1, 3, 3, 5], [3, 4]),
                                             {"side": "right"}),
    ("digitize", (F, [-0.5, 0.0, 0.5]), {}), ("digitize", (I, np.array([-2, 0, 3], "int32")), {}),
    # sorting and arg-reductions
    ("argmax", (F,), {}), ("argmax", (F3, 1), {"keepdims": True}), ("argmax", (B, 0), {}),
    ("argmin", (I,), {"axis": -1}), ("argmin", (F3,), {}),
    ("nanargmax", (NAN, 1), {}), ("nanargmin", (NAN,), {"axis": 0, "keepdims": True}),
    ("nanargmax", (I, 0), {}),
    ("sort", (F,), {}), ("sort", (F3, 0), {}), ("sort", (I,), {"axis": None}), ("sort", (B,), {}),
    ("argsort", (F,), {}), ("argsort", (F3,), {"axis": 1}), ("argsort", (I,), {"axis": None}),
    ("unique", (COUNTS,), {}),
    ("unique", (COUNTS,), {"return_index": True, "return_inverse": True,
                           "return_counts": True}),
    ("unique", (COUNTS,), {"size": 8, "fill_value": -1}),
    ("unique", (np.array([[1, 2], [1, 2], [0, 3]], "int32"),), {"axis": 0, "return_counts": True}),
    ("bincount", (COUNTS,), {}), ("bincount", (COUNTS,), {"minlength": 10}),
    ("bincount", (COUNTS, np.linspace(0, 1, 7).astype("float32")), {}),
    ("bincount", (np.array([[0, 1, 1], [2, 2, 0]], "int32"),), {"minlength": 4}),
    ("histogram", (V,), {}), ("histogram", (V * 3,), {"bins": 4, "range": (-1.0, 2.0)}),
    # products
    ("matmul", (F, F.T), {}), ("matmul", (F3, V), {}), ("matmul", (I, I.T), {}),
    ("matmul", (I8, I8.T), {}), ("matmul", (H, H.T), {}), ("matmul", (B, B.T), {}),
    ("dot", (F, V), {}), ("dot", (I, 2), {}), ("dot", (F3, SQ), {}), ("dot", (F3.T, V[:2]), {}),
    ("inner", (F, F), {}), ("inner", (I, V), {}), ("vdot", (V, V * 2), {}), ("vdot", (I[0], V), {}),
    ("outer", (V, I[0]), {}), ("outer", (F, V), {}),
    ("kron", (F[:2, :2], I[:2, :3]), {}),
    ("tensordot", (F3, SQ), {"axes": 1}), ("tensordot", (F3, F), {"axes": ([1, 2], [0, 1])}),
    ("tensordot", (F, F), {"axes": (0, 0)}), ("tensordot", (I, I), {}),
    ("cross", (F.T, F.T[::-1]), {}), ("cross", (F.T, I.T), {}), ("cross", (F, I), {"axis": 0}),
    ("einsum", ("ij,jk->ik", F, F.T), {}), ("einsum", ("bij->bj", F3), {}),
    ("einsum", ("ij,ij->i", I8, I8), {}), ("einsum", ("i,i", V, V), {}),
    ("trapezoid", (F,), {}), ("trapezoid", (F3, None, 0.5, 1), {}),
    ("trapezoid", (F, np.cumsum(V)), {}), ("trapezoid", (I,), {}),
    ("vander", (V,), {}), ("vander", (I[0],), {"N": 3, "increasing": True}),
    ("diff", (F,), {}), ("diff", (I, 2, 0), {}),
]

BF = torch.tensor(F, dtype=torch.bfloat16)
CASES += [  # Python lists, half precision, bool and mixed-dtype inputs
    ("concatenate", ([[1, 2], [3.5]],), {}), ("concatenate", ([B, I8],), {"axis": 1}),
    ("stack", ([BF, H],), {}), ("append", ([1, 2], 3.0), {}), ("where", (B, I8, 2), {}),
    ("where", ([True, False], BF[0, :2], 1.5), {}), ("select", ([B], [I8], 1.5), {}),
    ("reshape", (BF, (4, 3)), {}), ("transpose", (B,), {}), ("flip", ([[1, 2], [3, 4]], 1), {}),
    ("tile", (H, (1, 2)), {}), ("pad", (BF, ((1, 0), (0, 1))), {}), ("roll", (B, -1, 1), {}),
    ("sort", (H,), {}), ("sort", (BF, 0), {}), ("argsort", (B, 0), {}),
    ("argmax", (H,), {"axis": 1}), ("argmin", (BF, 0), {}), ("argmin", ([3, 1, 2],), {}),
    ("nanargmax", (H,), {}),
    ("take", (BF, [0, 2], 1), {}), ("take_along_axis", (I8, np.zeros((1, 4), "int64"), 0), {}),
    ("diag", ([1, 2, 3],), {}), ("tril", (B,), {}), ("trace", (H,), {}), ("trace", (I,), {}),
    ("matmul", (BF, BF.T), {}), ("matmul", (I8, F.T), {}), ("matmul", ([[1, 2]], [[3], [4]]), {}),
    ("dot", (B[0], B[0]), {}), ("outer", (I8[0], H[0]), {}), ("kron", (B[:2, :2], I8[:2, :2]), {}),
    ("einsum", ("ij->j", H), {}), ("tensordot", (I8, I8), {"axes": ([0, 1], [0, 1])}),
    ("diff", (B, 1, 1), {}), ("vander", (np.array([1, 2, 3]),), {}), ("trapezoid", (H,), {}),
    ("linspace", (torch.tensor(0, dtype=torch.float16), 1, 5), {}),
    ("linspace", (0, 1, 3), {"dtype": "bfloat16"}),
    ("arange", (torch.tensor(3, dtype=torch.int8),), {}), ("full", ((3,), True), {"dtype": "bool"}),
    ("full_like", (H, 1), {}), ("ones_like", ([1, 2],), {}), ("zeros", ([2, 1],), {}),
    ("unique", (H[0],), {}), ("unique", ([True, False, True],), {}),
    ("searchsorted", (np.arange(5, dtype="int32"), [2.5, -1.0]), {}),
    ("expand_dims", (B, 0), {}), ("squeeze", ([[1], [2]],), {"axis": -1}),
    ("moveaxis", (BF, 0, 1), {}), ("broadcast_to", (2.0, (2, 2)), {}),
    ("repeat", (B, 2), {"axis": 0}), ("meshgrid", ([1, 2], [3, 4, 5], [6, 7]), {}),
    ("bincount", ([0, 2, 2],), {"weights": [0.5, 1, 2]}),
    ("digitize", (B, [0.5]), {}), ("hstack", ([B, I8],), {}), ("dstack", ([H, BF],), {}),
]


@pytest.mark.parametrize("name, args, kwargs", CASES, ids=[c[0] for c in CASES])
def test_op_matches_keras(name, args, kwargs):
    check_op(name, *args, rtol=1e-4, atol=1e-5, **kwargs)


def test_empty_shapes_and_dtypes():
    for name, args in (("empty", ((2, 3),)), ("empty_like", (I,))):
        got, want = getattr(ops, name)(*args), getattr(__import__("keras").ops, name)(*args)
        assert got.shape == want.shape and got.dtype == want.dtype


def test_symmetric_and_edge_padding_match_numpy():
    for mode in ("symmetric", "edge", "reflect", "wrap"):
        got = ops.pad(F, ((2, 1), (3, 2)), mode=mode)
        np.testing.assert_array_equal(got.numpy(), np.pad(F, ((2, 1), (3, 2)), mode=mode))


@pytest.mark.parametrize("name, args, kwargs, reference", [
    ("take", (F, [-1, 0]), {}, lambda: np.take(F, [-1, 0])),
    ("take_along_axis", (F.ravel(), np.array([-1, 2])), {}, lambda: F.ravel()[[-1, 2]]),
    ("dot", (F, F3.transpose(0, 2, 1)), {}, lambda: np.dot(F, F3.transpose(0, 2, 1))),
    ("vdot", (F, F), {}, lambda: np.vdot(F, F)),
    ("cross", (F3[..., :3], F3[..., 1:]), {}, lambda: np.cross(F3[..., :3], F3[..., 1:])),
    ("cross", (V[:2], V[2:]), {}, lambda: np.cross(V[:2], V[2:])),
    ("linspace", ([0.0, 1.0], [1.0, 3.0], 4), {"axis": 1},
     lambda: np.linspace([0.0, 1.0], [1.0, 3.0], 4, axis=1)),
    ("array_split", (V, [1, 2]), {}, lambda: np.array_split(V, [1, 2])),
])
def test_numpy_semantics_where_keras_torch_differs(name, args, kwargs, reference):
    """Keras' torch backend departs from NumPy (and Keras' JAX backend) here; we follow NumPy."""
    got, want = getattr(ops, name)(*args, **kwargs), reference()
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(got, list)
                    else [want]):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-5)


def test_meshgrid_and_histogram_beyond_keras_torch():
    for indexing in ("xy", "ij"):
        got = ops.meshgrid([1, 2], V[:3], [5, 6, 7, 8], indexing=indexing)
        want = np.meshgrid([1, 2], V[:3], [5, 6, 7, 8], indexing=indexing)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.numpy(), w)
    counts, edges = ops.histogram(I[0], bins=3)
    want_counts, want_edges = np.histogram(I[0], bins=3)
    np.testing.assert_array_equal(counts.numpy(), want_counts)
    np.testing.assert_allclose(edges.numpy(), want_edges, rtol=1e-6)


@pytest.mark.parametrize("x, kth, axis", [(F, 1, -1), (F3, 2, 1), (I, 5, None), (V, 0, 0)])
def test_argpartition_partitions(x, kth, axis):
    """Keras' order inside each side is unspecified; the partition property is what counts."""
    got = ops.argpartition(x, kth, axis=axis).numpy()
    values = np.take_along_axis(x.ravel() if axis is None else x, got,
                                axis=0 if axis is None else axis)
    values = np.moveaxis(values, 0 if axis is None else axis, -1)
    pivot = np.sort(values, axis=-1)[..., kth:kth + 1]
    assert got.dtype == np.int32
    np.testing.assert_array_equal(values[..., kth:kth + 1], pivot)
    assert (values[..., :kth] <= pivot).all() and (values[..., kth + 1:] >= pivot).all()


def test_vectorize():
    check = lambda *a: ops.vectorize(lambda x, y: x * 2 + y)(*a)  # noqa: E731
    torch.testing.assert_close(check(torch.tensor([1.0, 2.0]), 3.0), torch.tensor([5.0, 7.0]))
    matvec = ops.vectorize(lambda m, v: m @ v, signature="(m,n),(n)->(m)")
    torch.testing.assert_close(matvec(torch.tensor(F3), torch.tensor(V)),
                               torch.tensor(F3) @ torch.tensor(V))
    scaled = ops.vectorize(lambda x, k: x * k, excluded={1})
    torch.testing.assert_close(scaled(torch.ones(3), 4), torch.full((3,), 4.0))


SYMBOLIC = [
    ("reshape", ((None, 2, 2),), {"newshape": (-1, 4)}),
    ("expand_dims", ((None, 3), -1), {}), ("squeeze", ((None, 1, 3),), {"axis": 1}),
    ("transpose", ((None, 3, 5),), {"axes": (0, 2, 1)}),
    ("tile", ((None, 3),), {"repeats": (1, 2)}),
    ("repeat", ((None, 3), 2), {"axis": 1}), ("pad", ((None, 3),), {"pad_width": ((0, 0), (1, 2))}),
    ("concatenate", ([(None, 3), ((None, 2), "int32")],), {"axis": -1}),
    ("stack", ([(None, 3), (None, 3)],), {"axis": 1}),
    ("split", ((None, 6), 3), {"axis": 1}), ("take", ((None, 5), [0, 2]), {"axis": 1}),
    ("where", (((None, 3), "bool"), (None, 3), ((None, 3), "int32")), {}),
    ("argmax", ((None, 3, 4),), {"axis": -1}), ("sort", ((None, 4),), {}),
    ("matmul", ((None, 3, 4), (4, 5)), {}), ("einsum", ("bij,jk->bik", (None, 3, 4), (4, 2)), {}),
    ("zeros_like", (((None, 3), "int32"),), {}), ("flip", ((None, 3),), {"axis": 1}),
    ("swapaxes", ((None, 3, 4), 1, 2), {}), ("diagonal", ((None, 3, 3),), {"axis1": 1,
                                                                         "axis2": 2}),
    ("tril", ((None, 3, 3),), {}), ("broadcast_to", ((3,),), {"shape": (2, 3)}),
    ("get_item", ((None, 3, 4),), {"key": (slice(None), 0)}),
    ("get_item", ((None, 3, 4),), {"key": (Ellipsis, slice(1, None))}),
    ("get_item", ((None, 3),), {"key": (slice(None), None)}),
    ("get_item", ((None, 3, 4),), {"key": 0}),
]


@pytest.mark.parametrize("name, specs, kwargs", SYMBOLIC, ids=[c[0] for c in SYMBOLIC])
def test_symbolic_matches_keras(name, specs, kwargs):
    check_symbolic(name, *specs, **kwargs)


def test_keras_tensor_indexing_shapes():
    x = kestrel.Input((2, 3))
    assert x[:, 0].shape == (None, 3)
    assert x[..., 1:].shape == (None, 2, 2)
    assert x[:, None].shape == (None, 1, 2, 3)
    assert ops.reshape(kestrel.Input((2, 2)), (-1, 4)).shape == (None, 4)


GET_ITEM_KEYS = [(None,), (slice(0, 1),), (0,), (Ellipsis, None), (slice(None), -1),
                 (slice(None), None, slice(1, None)), (1, 2), (slice(2, None),), (Ellipsis, 1),
                 (0, Ellipsis, 2), (None, Ellipsis, None, 0), (slice(None, None, 2), 1)]


@pytest.mark.parametrize("shape", [(None, 3, 4), (2, 3, 4), (None, None, 5)])
def test_get_item_spec_matches_keras_on_unknown_sizes(shape):
    """Indexing the unknown batch axis (x[None], x[2:], x[1, 2]) needs shapes, not placeholders."""
    from tests.ops_harness import keras
    from kestrel.layers.node import KerasTensor

    for key in GET_ITEM_KEYS:
        got = ops.get_item.output_spec(KerasTensor(shape, "int32"), key)
        want = keras().KerasTensor(shape, "int32")[key]
        assert (got.shape, got.dtype) == (want.shape, want.dtype), key
    assert ops.get_item.output_spec(KerasTensor(shape), ([0, 1],)) is None
    with pytest.raises(IndexError, match="too many"):
        ops.get_item.output_spec(KerasTensor(shape), (0, 0, 0, 0))


def test_creation_ops_use_the_configured_device(monkeypatch):
    monkeypatch.setattr(kestrel.config, "_DEVICE", torch.device("meta"))
    for out in (ops.zeros(2), ops.ones((2, 2)), ops.full(3, 1.0), ops.arange(4), ops.eye(2),
                ops.linspace(0, 1, 3), ops.tri(2), ops.hamming(4), ops.identity(2)):
        assert out.device.type == "meta"


@pytest.mark.parametrize("call, match", [
    (lambda: ops.split(F, 3, axis=1), "divisible"),
    (lambda: ops.squeeze(F, axis=0), "squeeze"),
    (lambda: ops.where(B, F), "x1"),
    (lambda: ops.select(F > 0, [F]), "lists"),
    (lambda: ops.searchsorted(F, V), "1-D"),
    (lambda: ops.histogram(F), "1-D"),
    (lambda: ops.pad(F, ((1, 1),) * 3), "pad_width"),
    (lambda: ops.rot90(V), "rot90"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
