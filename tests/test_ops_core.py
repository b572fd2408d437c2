"""kestrel.ops core family (casts, scatter/slice, control flow, custom_gradient) against Keras."""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import ops
from tests.ops_harness import check_op, check_symbolic, keras

X = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
IDX = np.array([[0, 1], [2, 3], [0, 1]])
EDGES = np.array([-1e10, -3.5, 0, 2.7, 300, 1e10, np.inf, -np.inf], "float32")


def _add_mul(a, b):
    return a + b, a * b


CASES = [
    ("cast", (X, "int32"), {}), ("cast", ([1, 2], "float16"), {}), ("cast", (X > 1, "float32"), {}),
    *[("saturate_cast", (EDGES, d), {}) for d in ("uint8", "int8", "float16", "bool")],
    ("saturate_cast", (np.array([-5, 300, 70000], "int32"), "uint8"), {}),
    ("stop_gradient", (X,), {}),
    ("unstack", (X,), {"axis": 1}), ("unstack", (X,), {"num": 3}),
    ("scatter", (IDX, np.array([1.0, 2.0, 3.0], "float32"), (3, 4)), {}),
    ("scatter", (np.array([[0], [2]]), np.ones((2, 4), "float32"), (3, 4)), {}),
    *[("scatter_update", (X, IDX, np.array([5.0, -2.0, 3.0], "float32")), {"reduction": r})
      for r in (None, "add", "max", "min", "mul")],
    ("slice", (X, (1, 1), (2, 2)), {}), ("slice", (X, np.array([0, 2]), np.array([3, 1])), {}),
    ("slice_update", (X, (1, 1), np.zeros((2, 2), "float32")), {}),
    ("convert_to_tensor", ([1, 2],), {"dtype": "float16"}), ("convert_to_tensor", (3.0,), {}),
    ("while_loop", (lambda a, b: a < 10, lambda a, b: (a + 1, b * 2), (0, 1.0)), {}),
    ("while_loop", (lambda a: a < 10, lambda a: a + 3, 0), {}),
    ("while_loop", (lambda a, b: a < 10, lambda a, b: (a + 1, b * 2), [0, 1.0]),
     {"maximum_iterations": 4}),
    ("fori_loop", (0, 5, lambda i, v: v + i, torch.tensor(1.0)), {}),
    ("scan", (lambda c, x: (c + x, c * x), torch.tensor(0.0), torch.arange(5.0)), {}),
    ("scan", (lambda c, x: (c + x, c * x), torch.tensor(0.0), torch.arange(5.0)),
     {"reverse": True}),
    ("scan", (lambda c, x: (c + 1, c), torch.tensor(0), None), {"length": 4}),
    ("map", (lambda v: v * 2, torch.arange(4.0)), {}),
    ("vectorized_map", (lambda v: v.sum(), torch.ones(3, 4)), {}),
    ("associative_scan", (lambda a, b: a + b, torch.arange(7.0)), {}),
    ("associative_scan", (lambda a, b: a * b, torch.arange(1, 8.0).reshape(1, 7)),
     {"axis": 1, "reverse": True}),
    ("associative_scan", (lambda a, b: (a[0] + b[0], a[1] * b[1]),
                          (torch.arange(5.0), torch.arange(1, 6.0))), {}),
    ("switch", (1, [lambda a: a + 1, lambda a: a * 3], torch.tensor(2.0)), {}),
    ("switch", (7, [lambda a: a + 1, lambda a: a * 3], torch.tensor(2.0)), {}),
    ("cond", (torch.tensor(False), lambda: torch.tensor(1), lambda: torch.tensor(2)), {}),
]


@pytest.mark.parametrize("name, args, kwargs", CASES, ids=[c[0] for c in CASES])
def test_core_op_matches_keras(name, args, kwargs):
    check_op(name, *args, **kwargs)


def test_tree_structured_scan_and_map():
    def step(carry, x):
        return (carry[0] + x["a"], carry[1]), {"o": x["a"] * 2, "p": x["b"]}

    carry, ys = ops.scan(step, (torch.tensor(0.0), torch.tensor(1)),
                         {"a": torch.arange(3.0), "b": torch.ones(3, 2)})
    assert float(carry[0]) == 3.0 and ys["p"].shape == (3, 2)
    torch.testing.assert_close(ys["o"], torch.tensor([0.0, 2.0, 4.0]))
    out = ops.map(lambda v: {"s": v[0] + v[1]}, (torch.arange(4.0), torch.ones(4)))
    torch.testing.assert_close(out["s"], torch.arange(1, 5.0))


def test_shape_dtype_is_tensor_convert_to_numpy():
    assert ops.shape(X) == (3, 4) and ops.dtype(X) == "float32" and ops.dtype(1) == "int32"
    assert ops.is_tensor(X) and not ops.is_tensor(np.ones(2))
    symbolic = kestrel.Input((3, 4))
    assert ops.shape(symbolic) == keras().ops.shape(keras().KerasTensor((None, 3, 4)))
    assert ops.dtype(symbolic) == "float32" and not ops.is_tensor(symbolic)
    array = ops.convert_to_numpy(X)
    np.testing.assert_array_equal(array, keras().ops.convert_to_numpy(X))
    assert ops.convert_to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32


def test_custom_gradient_replaces_the_gradient():
    @ops.custom_gradient
    def log1pexp(x):
        e = torch.exp(x)
        return torch.log(1 + e), lambda x, upstream: upstream * (1 - 1 / (1 + e))

    x = torch.tensor([0.0, 100.0], requires_grad=True)
    log1pexp(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.5, 1.0]))


def test_symbolic_specs_match_keras():
    check_symbolic("cast", (None, 3), "int32")
    check_symbolic("saturate_cast", (None, 3), "uint8")
    check_symbolic("unstack", (2, 3), axis=0)
    check_symbolic("slice", (3, 5), [0, 1], [1, 2])
    check_symbolic("scatter_update", (4, 3), [[0, 1]], [1.0])
    check_symbolic("stop_gradient", ((None, 3), "float16"))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="reduction"):
        ops.scatter_update(X, IDX, [1.0, 2.0, 3.0], reduction="mean")
    with pytest.raises(ValueError, match="num"):
        ops.unstack(X, num=5)
    with pytest.raises(ValueError, match="length"):
        ops.scan(lambda c, x: (c, x), 0)


def test_ndim_of_a_symbolic_tensor_is_its_rank():
    """Known without running the op (Keras' torch backend gives a malformed KerasTensor)."""
    x = kestrel.Input((3, 4))
    assert kestrel.ops.ndim(x) == 3 and kestrel.backend.ndim(x) == 3
    assert kestrel.ops.ndim(np.ones((2, 3))) == 2 and kestrel.ops.ndim(5) == 0
