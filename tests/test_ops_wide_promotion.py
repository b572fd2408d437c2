"""64-bit inputs: the ops Keras' torch backend hands straight to torch keep torch's promotion
(float64 + float32 -> float64, int64 + int32 -> int64), where `result_type` would narrow to 32
bits; maximum/minimum/floor_divide still follow `result_type`. Compared with real Keras."""
import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402

VALUES = {
    "np_float64": np.ones(3), "np_float32": np.ones(3, "float32"),
    "np_int64": np.ones(3, "int64"), "np_int32": np.ones(3, "int32"),
    "np_uint8": np.ones(3, "uint8"), "np_bool": np.ones(3, bool),
    "torch_float64": torch.ones(3, dtype=torch.float64),
    "torch_int64": torch.ones(3, dtype=torch.int64),
    "torch_float16": torch.ones(3, dtype=torch.float16),
    "int": 2, "float": 1.5,
}
PAIRS = [(a, b) for a, b in itertools.product(VALUES, repeat=2)
         if not (a in ("int", "float") and b in ("int", "float"))]
BINARY = ["add", "subtract", "multiply", "divide", "true_divide", "power", "mod",
          "floor_divide", "maximum", "minimum", "equal", "less", "logical_and"]


def _dtype(lib, op, *args):
    try:
        return str(getattr(lib.ops, op)(*args).dtype)
    except (TypeError, RuntimeError, ValueError) as error:
        return type(error).__name__


@pytest.mark.parametrize("op", BINARY)
def test_binary_ops_promote_as_keras(op):
    differing = [(a, b, _dtype(keras, op, VALUES[a], VALUES[b]),
                  _dtype(kestrel, op, VALUES[a], VALUES[b])) for a, b in PAIRS]
    assert [d for d in differing if d[2] != d[3]] == []


@pytest.mark.parametrize("op", ["concatenate", "stack"])
def test_joins_promote_as_keras(op):
    arrays = [k for k in VALUES if k not in ("int", "float", "torch_float16")]
    for a, b in itertools.product(arrays, repeat=2):
        args = [VALUES[a], VALUES[b]]
        assert _dtype(kestrel, op, args) == _dtype(keras, op, args), (a, b)


def test_where_promotes_as_keras():
    condition = np.array([True, False, True])
    for a, b in PAIRS:
        assert _dtype(kestrel, "where", condition, VALUES[a], VALUES[b]) == \
            _dtype(keras, "where", condition, VALUES[a], VALUES[b]), (a, b)


def test_float64_values_are_computed_in_float64():
    x = np.array([1.0 + 2.0 ** -40, 1.0])
    out = kestrel.ops.subtract(x, np.ones(2))
    assert out.dtype == torch.float64 and float(out[0]) == 2.0 ** -40
