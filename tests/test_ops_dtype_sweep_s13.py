"""Differences found by the keras.ops dtype sweep (tests/scripts/ops_dtype_sweep.py), fixed and
checked against real Keras 3 (torch backend): dtype, shape and values on the same inputs."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.ops_harness import check_op  # noqa: E402


def _tensor(dtype, shape=(3,)):
    return (torch.arange(6, dtype=torch.float64)[:torch.Size(shape).numel()] % 4) \
        .reshape(shape).to(getattr(torch, dtype))


# Python scalars are converted to int32/float32 tensors before promotion, not treated as weak.
SCALAR_OPERANDS = [("int8", 2), ("uint8", 3), ("float16", 1.5), ("bfloat16", 1.5),
                   ("float64", 2), ("int64", 1.5), ("bool", 2)]


@pytest.mark.parametrize("op", ["dot", "inner", "outer", "kron", "append"])
@pytest.mark.parametrize("dtype,scalar", SCALAR_OPERANDS)
def test_python_scalar_operand_promotes_as_tensor(op, dtype, scalar):
    check_op(op, _tensor(dtype), scalar, atol=1e-3, rtol=1e-3)
    check_op(op, scalar, _tensor(dtype), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("args,kwargs", [
    ((_tensor("float32"), 1), {}), ((_tensor("int8", (2, 3)), -1), {"axis": 1}),
    ((_tensor("float32", (2, 3)), 1), {"axis": 0}), ((_tensor("bool"), torch.tensor(2)), {}),
])
def test_take_scalar_index(args, kwargs):
    check_op("take", *args, **kwargs)


@pytest.mark.parametrize("indices", [1, -1, torch.tensor(2)])
def test_take_along_axis_scalar_index_flat(indices):
    check_op("take_along_axis", _tensor("float32", (2, 3)), indices)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_unravel_index_dtype(dtype):
    check_op("unravel_index", _tensor(dtype), (2, 2))


@pytest.mark.parametrize("dtype", ["int32", "float32"])
def test_view_without_dtype_reads_floatx(dtype):
    check_op("view", _tensor(dtype, (2, 3)))


@pytest.mark.parametrize("x,kwargs", [
    (torch.tensor(1.0), {}), (1.5, {}), (torch.ones(3), {}),
    (torch.ones(4, dtype=torch.float64), {}),
    (torch.tensor([1.0, 2.0, 3.0]), {"range": (2.0, 2.0)}),
])
def test_histogram_empty_range_widens(x, kwargs):
    check_op("histogram", x, **kwargs)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("axes,keepdims", [(0, False), ((0, 1), False), (1, True)])
def test_moments_keep_float_dtype(dtype, axes, keepdims):
    check_op("moments", _tensor(dtype, (2, 3)), axes, keepdims=keepdims, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("dtype", ["float64", "int64", "int8", "float32"])
@pytest.mark.parametrize("subscripts", ["ij,j->i", "ij,kj->ik"])
def test_einsum_keeps_64_bit_operands(dtype, subscripts):
    x = _tensor(dtype, (2, 3))
    operands = (x, x[0]) if subscripts == "ij,j->i" else (x, x)
    check_op("einsum", subscripts, *operands)
