"""int4 quantization, the int4 helpers of kestrel.quantizers, QuantizationConfig and the
GPTQ / AWQ config and policy classes, compared with real Keras 3 (torch backend)."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402

import kestrel  # noqa: E402
from kestrel import dtype_policies, quantizers  # noqa: E402

RNG = np.random.default_rng(11)


def _np(x):
    return keras.ops.convert_to_numpy(x) if not isinstance(x, torch.Tensor) \
        else x.detach().numpy()


@pytest.mark.parametrize("shape,axis", [((5, 4), 0), ((4, 5), 1), ((3, 5, 2), 1),
                                        ((3, 4, 7), -1)])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_pack_and_unpack_int4_match_keras(shape, axis, dtype):
    values = RNG.integers(-8, 8, size=shape).astype("int8")
    values = values if dtype == "int8" else (values.astype("uint8") & 15)
    theirs = keras.quantizers.pack_int4(values, axis=axis, dtype=dtype)
    ours = quantizers.pack_int4(torch.as_tensor(values), axis=axis, dtype=dtype)
    np.testing.assert_array_equal(ours[0].numpy(), _np(theirs[0]))
    assert ours[0].numpy().dtype == _np(theirs[0]).dtype and ours[1:] == tuple(theirs[1:])
    unpacked = quantizers.unpack_int4(ours[0], ours[2], axis=axis, dtype=dtype)
    np.testing.assert_array_equal(unpacked.numpy(), values)
    np.testing.assert_array_equal(
        unpacked.numpy(), _np(keras.quantizers.unpack_int4(theirs[0], theirs[2], axis, dtype)))


def test_pack_int4_errors_name_the_dtype():
    with pytest.raises(ValueError, match="'int8' or 'uint8'"):
        quantizers.pack_int4(torch.zeros(2, dtype=torch.int8), dtype="int4")
    with pytest.raises(TypeError, match="Expected int8 tensor for packing, got int32"):
        quantizers.pack_int4(torch.zeros(2, dtype=torch.int32))
    with pytest.raises(TypeError, match="Expected int8 or uint8 tensor for unpacking"):
        quantizers.unpack_int4(torch.zeros(2), 4)


@pytest.mark.parametrize("shape,block_size", [((10, 3), 4), ((8, 5), 8), ((3, 4), 8),
                                              ((300, 6), 128)])
@pytest.mark.parametrize("to_numpy", [False, True])
def test_grouped_zero_point_quantize_matches_keras(shape, block_size, to_numpy):
    x = RNG.normal(size=shape).astype("float32")
    x[:, 0] = 0.3  # a constant column: Keras' two paths treat its empty range differently
    theirs = keras.quantizers.abs_max_quantize_grouped_with_zero_point(
        x, block_size, to_numpy=to_numpy)
    ours = quantizers.abs_max_quantize_grouped_with_zero_point(
        torch.as_tensor(x), block_size, to_numpy=to_numpy)
    for got, expected in zip(ours, theirs):
        assert got.numpy().dtype == _np(expected).dtype
        np.testing.assert_allclose(got.numpy(), _np(expected), rtol=1e-6)


@pytest.mark.parametrize("case", ["tensor", "channels_narrow"])
def test_fake_quant_values_and_gradients_match_keras(case):
    shape, axis, bits, narrow = ((4, 6), None, 8, False) if case == "tensor" \
        else ((3, 4, 6), -1, 4, True)
    x = (RNG.normal(size=shape) * 1.5).astype("float32")
    low = np.float32(-1.0) if axis is None else (RNG.normal(size=6) - 1).astype("float32")
    high = np.float32(1.5) if axis is None else (RNG.normal(size=6) + 1).astype("float32")
    upstream = torch.as_tensor(RNG.normal(size=shape).astype("float32"))
    results = []
    for fn in (keras.quantizers.fake_quant_with_min_max_vars,
               quantizers.fake_quant_with_min_max_vars):
        args = [torch.tensor(v, requires_grad=True) for v in (x, low, high)]
        y = fn(*args, num_bits=bits, narrow_range=narrow, axis=axis)
        (y * upstream).sum().backward()
        results.append([_np(y)] + [a.grad.numpy() for a in args])
    for got, expected in zip(results[1], results[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert results[1][2].any() and results[1][3].any()  # values were clipped on both sides


def test_fake_quant_on_a_middle_axis_quantizes_each_channel():
    x = torch.tensor([[[0.2, 3.0]], [[0.2, 3.0]]])  # (2, 1, 2); channels on axis 0
    y = quantizers.fake_quant_with_min_max_vars(x, torch.tensor([0.0, 0.0]),
                                                torch.tensor([1.0, 0.1]), axis=0)
    np.testing.assert_allclose(y[:, 0, 1].numpy(), [1.0, 0.1], rtol=1e-6)
