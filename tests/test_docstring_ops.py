"""The `>>>` examples of Keras' `keras.ops` docstrings give the same values, dtypes, shapes and
errors with Kestrel as with real Keras (torch backend)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402


def _both(fn):
    """`fn(ops)` with Keras' ops and with Kestrel's, as NumPy arrays."""
    return [np.asarray(keras.ops.convert_to_numpy(fn(lib.ops))) for lib in (keras, kestrel)]


def _same(fn):
    want, got = _both(fn)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6)


_A = np.arange(25, dtype="float32").reshape(5, 5)
_B = np.arange(5, dtype="float32")
_C = np.arange(6, dtype="float32").reshape(2, 3)


@pytest.mark.parametrize("args", [
    (_A, [0, 0]), (_A, [0, 0], [0]), (_A, [0, 1], [0]), (_C, [1, 0]), (_A, [0, 1], _B, [1]),
    (_C, [0, 1], _C, [2, 1], [0, 2]),
], ids=lambda a: str(len(a)))
def test_einsum_sublist_form(args):
    def call(ops):  # operands as tensors, as in Keras' docstring
        return ops.einsum(*(ops.convert_to_tensor(a) if isinstance(a, np.ndarray) else a
                            for a in args))
    _same(call)


def test_einsum_sublist_ellipsis_as_numpy():
    """Keras cannot convert `...` in a sublist; NumPy's reading is the reference."""
    got = kestrel.ops.einsum(_A, [Ellipsis, 1], [Ellipsis]).numpy()
    np.testing.assert_allclose(got, np.einsum(_A, [Ellipsis, 1], [Ellipsis]))


@pytest.mark.parametrize("op", ["all", "any"])
@pytest.mark.parametrize("axis", [None, 0, (0, 1)])
def test_logical_reduce_keepdims(op, axis):
    x = np.array([[True, False], [True, True]])
    _same(lambda ops: getattr(ops, op)(x, axis=axis, keepdims=True))


@pytest.mark.parametrize("name", ["erf", "erfc", "erfinv", "logsumexp"])
@pytest.mark.parametrize("dtype", ["float64", "float16", "int32", "bool"])
def test_special_functions_keep_float_width(name, dtype):
    x = np.array([-0.5, 0.0, 0.25, 0.75]).astype(dtype)
    _same(lambda ops: getattr(ops, name)(x))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_view_as_complex_gives_complex64(dtype):
    _same(lambda ops: ops.view_as_complex(np.array([[1.0, 2.0], [3.0, 4.0]], dtype)))


def test_average_weights_shape_rules():
    data = np.arange(6, dtype="int32").reshape(3, 2)
    w = np.array([0.25, 0.75], "float32")
    _same(lambda ops: ops.average(data, axis=1, weights=w))
    # full-shape weights: Keras' torch backend divides by the wrong sum; NumPy is the reference
    full = np.arange(1, 7, dtype="float32").reshape(3, 2)
    for axis in (None, 0, 1):
        got = kestrel.ops.average(data, axis=axis, weights=full).numpy()
        np.testing.assert_allclose(got, np.average(data, axis=axis, weights=full), rtol=1e-6)
    # Keras refuses the mismatched shapes (its symbolic op; NumPy and JAX as well)
    for bad in [dict(weights=w), dict(axis=0, weights=w)]:
        with pytest.raises(ValueError):
            keras.ops.average(keras.KerasTensor((3, 2)), **bad)
        with pytest.raises(ValueError, match="weights"):
            kestrel.ops.average(data, **bad)


_DTYPES = ["float64", "float32", "float16", "int64", "int32", "uint8", "bool"]


def _sample(dtype):
    base = np.array([[0.1, 0.5, 0.9], [0.3, 0.7, 0.2]])
    return (base * (10 if "int" in dtype else 1)).astype(dtype)


@pytest.mark.parametrize("name", ["ceil", "floor"])
@pytest.mark.parametrize("dtype", _DTYPES)
def test_rounding_result_dtype(name, dtype):
    """Keras' result type with a Python float: float64 -> float32, int64 -> floatx."""
    _same(lambda ops: getattr(ops, name)(_sample(dtype)))


@pytest.mark.parametrize("name", ["hstack", "vstack", "dstack"])
@pytest.mark.parametrize("pair", [("float64", "float64"), ("float64", "float32"),
                                  ("int64", "int32"), ("float32", "int64"), ("bool", "int64")])
def test_stacking_keeps_64_bit_as_torch(name, pair):
    xs = [_sample(dtype) for dtype in pair]
    _same(lambda ops: getattr(ops, name)(xs))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "int32"])
def test_normalize_dtypes(order, dtype):
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]).astype(dtype)
    want, got = _both(lambda ops: ops.normalize(x, order=order))
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got.astype("float32"), want.astype("float32"), rtol=1e-3)


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
def test_extremes_empty_axis_and_keepdims(name):
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    _same(lambda ops: getattr(ops, name)(x, axis=()))  # no axis reduced: x itself
    _same(lambda ops: getattr(ops, name)(x, axis=(0, 2), keepdims=True))
    # axis=None with keepdims: Keras' own output spec (and NumPy) keep every axis as size 1;
    # its torch backend drops them here (but not for mean/all/any)
    spec = getattr(keras.ops, name)(keras.KerasTensor((2, 3, 4)), keepdims=True)
    got = getattr(kestrel.ops, name)(x, keepdims=True).numpy()
    assert got.shape == tuple(spec.shape) == (1, 1, 1)
    np.testing.assert_array_equal(got, getattr(np, name)(x, keepdims=True))


@pytest.mark.parametrize("name", ["append", "outer", "kron", "fmod", "mod"])
@pytest.mark.parametrize("pair", [("float64", "float32"), ("float32", "float64"),
                                  ("int64", "int32"), ("int8", "int64"), ("int64", "bool"),
                                  ("float32", "int32"), ("int8", "uint8")])
def test_torch_promoting_binary_ops_keep_64_bit(name, pair):
    """Keras hands these straight to torch: a 64-bit operand gives a 64-bit result."""
    base = np.array([[1.5, 2.0, 3.0], [4.0, 5.5, 7.0]])
    x1, x2 = [(base * (2 if "int" in d else 1)).astype(d) for d in pair]
    _same(lambda ops: getattr(ops, name)(x1, x2))


@pytest.mark.parametrize("shape, axis", [((3, 1, 4), None), ((3, 1, 4), 2), ((1, 3), -2),
                                         ((3, 4), None)])
def test_symbolic_squeeze_keeps_unknown_batch(shape, axis):
    want = keras.ops.squeeze(keras.Input(shape), axis=axis)
    got = kestrel.ops.squeeze(kestrel.Input(shape), axis=axis)
    assert tuple(got.shape) == tuple(want.shape)


def test_symbolic_squeeze_of_unknown_axis_raises():
    with pytest.raises(ValueError):
        keras.ops.squeeze(keras.Input((3, 1)), axis=0)
    with pytest.raises(ValueError, match="squeeze"):
        kestrel.ops.squeeze(kestrel.Input((3, 1)), axis=0)


@pytest.mark.parametrize("pair", [("float64", "float32"), ("int32", "float64"),
                                  ("float32", "int64"), ("int32", "int32")])
def test_polar_dtype(pair):
    _same(lambda ops: ops.polar(np.array([1.0, 2.0], pair[0]), np.array([0.0, 1.0], pair[1])))


@pytest.mark.parametrize("dtype", ["int64", "int32", "float64", "float32", "bool"])
@pytest.mark.parametrize("default", [0, 9, 1.5])
def test_select_keeps_64_bit_choices(dtype, default):
    cond = [np.array([True, False]), np.array([False, False])]
    choices = [np.array([1, 2], dtype), np.array([3, 4], dtype)]
    _same(lambda ops: ops.select(cond, choices, default=default))


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_transform_mirror_fill(interpolation):
    images = np.random.default_rng(0).random((2, 8, 6, 3)).astype("float32")
    transform = np.array([[1.1, 0.1, -1.3, 0.2, 0.9, 0.7, 0, 0],
                          [0.7, -0.7, 4.1, 0.7, 0.7, -2.2, 0, 0]], "float32")
    want, got = _both(lambda ops: ops.image.affine_transform(
        images, transform, interpolation=interpolation, fill_mode="mirror"))
    assert got.shape == want.shape
    # nearest: grid_sample's scale may round an exact half-pixel either way (which way depends
    # on the CPU's vector width): allow two of the 96 pixels (3 channels each) to differ
    assert np.mean(np.abs(got - want) < 1e-5) > (0.975 if interpolation == "nearest" else 0.9999)


@pytest.mark.parametrize("name, pair", [  # Keras' binary one refuses mixed float dtypes
    ("binary_crossentropy", ("float64", "float64")), ("binary_crossentropy", ("float32",) * 2),
    ("categorical_crossentropy", ("float64", "float64")),
    ("categorical_crossentropy", ("float64", "float32")),
    ("categorical_crossentropy", ("int32", "float64")),
    ("categorical_crossentropy", ("float32", "float32"))])
def test_crossentropy_keeps_float64(name, pair):
    target = np.eye(3)[[0, 1]].astype(pair[0])
    output = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3]], pair[1])
    _same(lambda ops: getattr(ops, name)(target, output))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_crossentropy_keeps_float64(dtype, from_logits):
    output = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3]], dtype)
    _same(lambda ops: ops.sparse_categorical_crossentropy(np.array([0, 2]), output,
                                                          from_logits=from_logits))


@pytest.mark.parametrize("init", [0, 1.5, np.float64(2.0)])
def test_scan_carry_from_python_number_is_a_tensor(init):
    def run(ops):
        carry, ys = ops.scan(lambda c, v: (c + 1, c), init, length=3)
        return [ops.convert_to_numpy(carry), ops.convert_to_numpy(ys)]
    (want_c, want_y), (got_c, got_y) = run(keras.ops), run(kestrel.ops)
    assert got_c.dtype == want_c.dtype and got_y.dtype == want_y.dtype
    np.testing.assert_allclose(got_y, want_y)
    np.testing.assert_allclose(got_c, want_c)
