"""Element-wise math, comparisons, logic and reductions, compared with real Keras 3 (torch)."""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import ops
from tests.ops_harness import check_op, check_symbolic

RNG = np.random.default_rng(0)
F32 = RNG.normal(size=(3, 4)).astype("float32")
F16 = F32.astype("float16")
POS = (np.abs(F32) + 1.5).astype("float32")  # > 1: valid for log, sqrt, arccosh
UNIT = np.tanh(F32).astype("float32")  # in (-1, 1): valid for arcsin, arctanh
I32 = RNG.integers(-5, 6, size=(3, 4)).astype("int32")
I32B = RNG.integers(1, 6, size=(4,)).astype("int32")
U8 = RNG.integers(0, 9, size=(3, 4)).astype("uint8")
I64 = I32.astype("int64")
BOOL = F32 > 0
BOOLB = np.array([True, False, True, True])
NANS = F32.copy()
NANS[0, 1] = NANS[2, 3] = np.nan
NANS[1, :] = np.nan
SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 1.0, -2.5], "float32")
CPLX = (F32 + 1j * F32[::-1]).astype("complex64")

UNARY_FLOAT = ["sin", "cos", "tan", "arctan", "sinh", "cosh", "tanh", "arcsinh", "exp",
               "exp2", "expm1", "sinc", "ceil", "floor", "deg2rad", "rad2deg", "cbrt", "i0",
               "reciprocal", "fabs", "absolute", "abs", "negative", "sign", "trunc", "square",
               "round", "signbit", "angle"]
POSITIVE = ["log", "log2", "log10", "log1p", "sqrt", "arccosh"]
IN_UNIT = ["arcsin", "arccos", "arctanh"]

CASES = [
    *[(name, (x,), {}) for name in UNARY_FLOAT for x in (F32, I32, F16)],
    *[(name, (x,), {}) for name in POSITIVE for x in (POS, POS.astype("float16"), I32B)],
    *[(name, (x,), {}) for name in IN_UNIT for x in (UNIT, np.zeros(3, "int32"))],
    *[(name, (x,), {}) for name in ("exp", "sin", "sqrt", "cbrt", "deg2rad", "i0", "ceil")
      for x in (I64, BOOL, U8)],
    *[(name, (SPECIAL,), {}) for name in ("isfinite", "isinf", "isnan", "isneginf",
                                          "isposinf", "isreal", "signbit", "nan_to_num")],
    ("nan_to_num", (SPECIAL,), dict(nan=1.0, posinf=9.0, neginf=-9.0)),
    ("nan_to_num", (I32,), {}),
    ("round", (F32 * 10,), dict(decimals=1)),
    ("round", (I32 * 7,), dict(decimals=-1)),
    ("square", (BOOL,), {}), ("absolute", (BOOL,), {}), ("trunc", (BOOL,), {}),
    ("sign", (I32,), {}), ("logical_not", (BOOL,), {}), ("logical_not", (I32,), {}),
    ("bitwise_invert", (I32,), {}), ("bitwise_not", (U8,), {}), ("bitwise_not", (BOOL,), {}),
    *[(name, (CPLX,), {}) for name in ("conj", "conjugate", "real", "imag", "angle", "isreal")],
    ("real", (F32,), {}), ("conj", (F32,), {}),
    ("clip", (F32, -0.5, 0.5), {}), ("clip", (I32, -2, 3), {}), ("clip", (F16, -0.5, 0.5), {}),
    ("clip", (BOOL, 0, 1), {}),
    # binary, with broadcasting and mixed dtypes
    *[(name, a, {}) for name in ("add", "subtract", "multiply", "divide", "true_divide",
                                 "maximum", "minimum", "fmax", "fmin", "mod", "fmod",
                                 "floor_divide", "equal", "not_equal", "less", "less_equal",
                                 "greater", "greater_equal", "logical_and", "logical_or",
                                 "logical_xor", "divide_no_nan")
      for a in ((F32, F32[0]), (I32, 2), (I32, 1.5), (F16, F32[:1]), (U8, I32B), (2.0, F32))],
    *[(name, a, {}) for name in ("arctan2", "logaddexp", "logaddexp2", "nextafter", "hypot",
                                 "heaviside")
      for a in ((F32, F32[0]), (I32, I32B), (F16, F16[1]), (F16, 1.0), (I64, 2))],
    ("power", (POS, F32[0]), {}), ("power", (I32, 2), {}), ("power", (I32, 0.5), {}),
    ("power", (F16, 2), {}), ("divide_no_nan", (F32, np.where(BOOL, F32, 0.0)), {}),
    ("fmax", (NANS, F32), {}), ("fmin", (NANS, 0.0), {}), ("maximum", (BOOL, BOOL), {}),
    ("mod", (BOOL, np.ones_like(BOOL)), {}), ("fmod", (-I32, 3), {}), ("mod", (F32, -0.7), {}),
    ("floor_divide", (F32, 0.3), {}), ("floor_divide", (-I32, I32B), {}),
    ("subtract", (BOOL, I32), {}), ("add", (BOOL, BOOL), {}), ("multiply", (BOOL, 2.0), {}),
    *[(name, a, {}) for name in ("bitwise_and", "bitwise_or", "bitwise_xor")
      for a in ((I32, I32B), (U8, 3), (BOOL, BOOLB))],
    *[(name, (np.abs(I32), 2), {}) for name in ("bitwise_left_shift", "left_shift",
                                                "bitwise_right_shift", "right_shift")],
    ("left_shift", (U8, np.uint8(1)), {}), ("right_shift", (I32, I32B % 3), {}),
    ("gcd", (I32, I32B), {}), ("lcm", (I32, I32B), {}), ("gcd", (U8, 6), {}),
    ("ldexp", (F32, I32), {}), ("ldexp", (F16, I32B), {}), ("ldexp", (I32, I32B), {}),
    ("isclose", (F32, F32 + 1e-7), {}), ("isclose", (NANS, NANS), dict(equal_nan=True)),
    ("isclose", (F32, F32 + 0.01), dict(rtol=0.0, atol=0.02)), ("isclose", (I32, I32B), {}),
    ("allclose", (F32, F32 + 1e-7), {}), ("allclose", (I32, 1.0), {}),
    ("allclose", (NANS, NANS), dict(equal_nan=False)),
    ("isin", (I32, I32B), {}), ("isin", (I32, I32B), dict(invert=True)),
    ("isin", (F32, F32[0]), {}), ("isin", (BOOL, BOOLB[:2]), {}),
    ("correlate", (F32[0], F32[1, :2]), {}), ("correlate", (F32[0], F32[1, :3]),
                                                  dict(mode="same")),
    ("correlate", (I32[0], I32B[:3]), dict(mode="full")),
    ("correlate", (F32[1, :2], F32[0]), dict(mode="valid")),
    # reductions
    *[(name, (x,), kw) for name in ("sum", "prod", "mean", "max", "min", "amax", "amin",
                                    "all", "any", "ptp", "var", "std", "median", "nansum",
                                    "nanprod", "nanmean", "nanmax", "nanmin", "nanvar",
                                    "nanstd", "nanmedian")
      for x in (F32, I32) for kw in ({}, dict(axis=1), dict(axis=0, keepdims=True),
                                     dict(axis=(0, 1)), dict(axis=-1, keepdims=True))],
    *[(name, (x,), kw) for name in ("sum", "prod", "mean", "var", "nansum", "max")
      for x in (F16, BOOL, U8, I64) for kw in ({}, dict(axis=0))],
    *[(name, (NANS,), kw) for name in ("nansum", "nanprod", "nanmean", "nanmax", "nanmin",
                                       "nanvar", "nanstd", "nanmedian")
      for kw in ({}, dict(axis=1), dict(axis=0, keepdims=True))],
    ("sum", ([F32[0], F32[1]],), dict(axis=0)), ("mean", (F32,), dict(axis=())),
    ("max", (F32,), dict(axis=1, initial=0.5)), ("min", (I32,), dict(initial=-1)),
    ("max", (np.zeros((0, 2), "float32"),), dict(initial=1.0)),
    ("prod", (I32,), dict(axis=(0, 1), dtype="float32")), ("sum", (I32,), dict(axis=())),
    ("all", (F32,), dict(axis=())), ("any", (BOOL,), dict(axis=0)),
    ("count_nonzero", (I32,), {}), ("count_nonzero", (I32,), dict(axis=1)),
    ("count_nonzero", (F32 > 0.3,), dict(axis=0)), ("count_nonzero", (I32,), dict(axis=(0, 1))),
    *[(name, (x,), kw) for name in ("cumsum", "cumprod", "nancumsum", "nancumprod")
      for x in (F32 / 2, I32, BOOL, F16) for kw in ({}, dict(axis=1), dict(axis=0))],
    ("cumsum", (I32,), dict(axis=0, dtype="float32")), ("nancumsum", (NANS,), dict(axis=1)),
    ("nancumprod", (NANS,), dict(axis=0)), ("cumprod", (I64,), dict(axis=1)),
    ("average", (F32,), {}), ("average", (F32,), dict(axis=1)),
    ("average", (I32,), dict(axis=-1, weights=I32B)), ("average", (F32,), dict(axis=0)),
    ("average", (F32,), dict(axis=-1, weights=np.abs(F32) + 0.1)),
    *[(name, (x, q), kw) for name in ("quantile", "nanquantile") for x in (F32, I32)
      for q, kw in ((0.3, {}), (np.array([0.1, 0.5, 0.9], "float32"), dict(axis=1)),
                    (0.5, dict(axis=0, keepdims=True)),
                    (np.array([0.2, 0.7], "float32"), dict(axis=(0, 1), keepdims=True)),
                    (0.25, dict(axis=1, method="lower")),
                    (0.25, dict(axis=-1, method="nearest", keepdims=True)))],
    *[(name, (x, q), kw) for name in ("percentile", "nanpercentile") for x in (F32, NANS)
      for q, kw in ((30.0, {}), (np.array([10.0, 90.0], "float32"), dict(axis=1)),
                    (50, dict(axis=0, keepdims=True, method="midpoint")))],
    ("quantile", (F16, 0.4), dict(axis=1)), ("median", (F32[:, :3],), dict(axis=1)),
    ("median", (F16,), {}),
    ("corrcoef", (F32,), {}), ("corrcoef", (I32,), {}), ("corrcoef", (BOOL,), {}),
    ("slogdet", (F32[:3, :3],), {}),
    ("slogdet", (RNG.normal(size=(2, 3, 3)).astype("float32"),), {}),
]


def _case_id(case):
    name, args, kwargs = case
    kinds = ",".join(str(getattr(a, "dtype", type(a).__name__)) for a in args)
    return f"{name}[{kinds}]{''.join(sorted(kwargs))}"


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{_case_id(c)}" for i, c in enumerate(CASES)])
def test_op_matches_keras(case):
    name, args, kwargs = case
    tol = dict(rtol=2e-3, atol=2e-3) if any(
        getattr(a, "dtype", None) == np.float16 for a in args) else {}
    check_op(name, *args, **kwargs, **tol)


def test_every_op_is_tested():
    from kestrel.ops import numpy_math

    assert set(numpy_math.__all__) <= {case[0] for case in CASES}
    assert len(numpy_math.__all__) == 129


SYMBOLIC = [
    ("sin", ((None, 3), "int32")), ("sqrt", ((None, 3), "float16")), ("abs", (None, 3)),
    ("add", ((None, 3), "int32"), ((1, 3), "float32")), ("power", (None, 3), 2),
    ("greater", (None, 3), 0.0), ("logical_and", ((None, 3), "bool"), ((3,), "bool")),
    ("sum", ((None, 3, 4), "int8")), ("mean", (None, 3, 4)), ("max", (None, 3, 4)),
    ("cumsum", ((2, 3), "bool")), ("clip", (None, 3), 0.0, 1.0),
    ("isnan", (None, 3)), ("divide_no_nan", ((None, 3), "int32"), 2),
    ("arctan2", (None, 3), (None, 3)), ("isclose", (None, 3), (3,)),
    ("count_nonzero", (None, 3)), ("round", (None, 3)), ("ptp", (None, 3)),
    ("nanmax", (None, 3)), ("fabs", ((None, 3), "int32")), ("hypot", (None, 3), (3,)),
    ("slogdet", (3, 3)), ("bitwise_and", ((None, 3), "int32"), ((3,), "int32")),
    ("correlate", (5,), (3,)), ("floor", ((None, 3), "int32")),
]
SYMBOLIC_KWARGS = [
    ("sum", {"axis": 1}), ("mean", {"axis": (1, 2), "keepdims": True}), ("max", {"axis": -1}),
    ("cumsum", {"axis": 1}), ("std", {"axis": 0}), ("var", {"axis": 1, "keepdims": True}),
    ("prod", {"axis": 1}), ("all", {"axis": 1}), ("average", {"axis": 1}),
    ("count_nonzero", {"axis": 1}),
]


@pytest.mark.parametrize("case", SYMBOLIC, ids=[c[0] for c in SYMBOLIC])
def test_symbolic_spec_matches_keras(case):
    name, *specs = case
    check_symbolic(name, *specs)


@pytest.mark.parametrize("name, kwargs", SYMBOLIC_KWARGS, ids=[c[0] for c in SYMBOLIC_KWARGS])
def test_symbolic_reductions_match_keras(name, kwargs):
    check_symbolic(name, ((None, 3, 4), "float32"), **kwargs)


def test_keras_tensor_operators_record_ops_and_run():
    x = kestrel.Input((3,))
    b = kestrel.Input((3,), dtype="bool")
    outs = [x + 1, 2 - x, x * x, x / 2, x // 2, x % 2, x ** 2, -x, abs(x), round(x),
            (x < 0) & b, (x >= 1) | b, (x > 0) ^ b, ~b, x <= 1, x > 1]
    model = kestrel.Model([x, b], outs)
    data = torch.tensor([[-1.5, 0.25, 2.5]])
    mask = torch.tensor([[True, False, True]])
    expected = [data + 1, 2 - data, data * data, data / 2, data // 2, data % 2, data ** 2,
                -data, data.abs(), data.round(), (data < 0) & mask, (data >= 1) | mask,
                (data > 0) ^ mask, ~mask, data <= 1, data > 1]
    for got, want, sym in zip(model([data, mask]), expected, outs):
        assert got.dtype == want.dtype and sym.dtype == str(want.dtype).split(".")[-1]
        torch.testing.assert_close(got, want)


def test_integer_division_by_zero_gives_zero_and_works_symbolically():
    x = kestrel.Input((3,), dtype="int32")
    y = kestrel.Input((3,), dtype="int32")
    model = kestrel.Model([x, y], [x // y, x % y, ops.fmod(x, y)])
    a, b = torch.tensor([[7, -7, 5]], dtype=torch.int32), torch.tensor([[2, 2, 0]],
                                                                        dtype=torch.int32)
    assert [t.tolist() for t in model([a, b])] == [[[3, -4, 0]], [[1, 1, 0]], [[1, -1, 0]]]


def test_nextafter_steps_one_unit_in_the_result_dtype():
    for dtype in ("float16", "float32"):
        x = np.array([1.0, -2.0], dtype)
        got = ops.nextafter(x, np.array([2.0, -3.0], dtype)).numpy()
        np.testing.assert_array_equal(got, np.nextafter(x, np.array([2.0, -3.0], dtype)))


def test_results_follow_the_input_device_and_python_inputs():
    out = ops.add([1, 2], 1.5)
    assert out.dtype == torch.float32 and out.tolist() == [2.5, 3.5]
    assert ops.sum([[1, 2], [3, 4]], axis=0).tolist() == [4, 6]
    assert ops.sqrt(4).item() == 2.0 and ops.sqrt(4).dtype == torch.float32


@pytest.mark.parametrize("call, error, match", [
    (lambda: ops.ldexp(F32, F32), TypeError, "x2.dtype=float32"),
    (lambda: ops.fabs(CPLX), TypeError, "complex"),
    (lambda: ops.correlate(F32[0], F32[1], mode="middle"), ValueError, "mode='middle'"),
    (lambda: ops.max(np.zeros((0,), "float32")), ValueError, "ops.max: .* empty"),
])
def test_bad_inputs_are_refused_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()
