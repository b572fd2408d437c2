import numpy as np
import pytest
import torch

from kestrel.layers import Input
from kestrel.layers.reshaping import (
    Cropping1D,
    Cropping2D,
    Cropping3D,
    UpSampling1D,
    UpSampling2D,
    UpSampling3D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)
from kestrel.registry.serialization import deserialize_keras_object
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(2)


def np_bilinear(x, sh, sw):
    """Half-pixel-centre bilinear resize (TF2 / Keras `image.resize`), channels-last."""
    def axis_weights(n, scale):
        src = np.maximum((np.arange(n * scale) + 0.5) / scale - 0.5, 0)
        low = np.floor(src).astype(int)
        high = np.minimum(low + 1, n - 1)
        return low, high, src - low
    hl, hh, hw = axis_weights(x.shape[1], sh)
    wl, wh, ww = axis_weights(x.shape[2], sw)
    rows = x[:, hl] * (1 - hw)[None, :, None, None] + x[:, hh] * hw[None, :, None, None]
    return rows[:, :, wl] * (1 - ww)[None, None, :, None] + rows[:, :, wh] * ww[None, None, :, None]


@pytest.mark.parametrize("cls, kwargs, in_shape, out_shape", [
    (ZeroPadding1D, {"padding": (1, 2)}, (2, 3, 4), (2, 6, 4)),
    (ZeroPadding2D, {}, (2, 3, 4, 2), (2, 5, 6, 2)),
    (ZeroPadding3D, {"padding": (1, 0, 2), "data_format": "channels_first"}, (1, 2, 3, 3, 3),
     (1, 2, 5, 3, 7)),
    (Cropping1D, {}, (2, 5, 3), (2, 3, 3)),
    (Cropping2D, {"cropping": ((1, 0), (2, 1))}, (2, 5, 6, 3), (2, 4, 3, 3)),
    (Cropping3D, {"data_format": "channels_first"}, (1, 2, 4, 5, 6), (1, 2, 2, 3, 4)),
    (UpSampling1D, {"size": 3}, (2, 4, 3), (2, 12, 3)),
    (UpSampling2D, {"size": (2, 3), "interpolation": "bilinear"}, (2, 3, 4, 2),
     (2, 6, 12, 2)),
    (UpSampling3D, {"data_format": "channels_first"}, (1, 2, 2, 3, 1), (1, 2, 4, 6, 2)),
])
def test_harness(cls, kwargs, in_shape, out_shape):
    run_layer_test(cls, kwargs, input_shape=in_shape, expected_output_shape=out_shape,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_zero_padding_matches_numpy(data_format):
    x = RNG.standard_normal((2, 3, 4, 5, 2)).astype(np.float32)
    pads = ((1, 2), (0, 1), (3, 0))
    layer = ZeroPadding3D(pads, data_format=data_format)
    spec = [(0, 0), *pads, (0, 0)] if data_format == "channels_last" else [(0, 0), (0, 0), *pads]
    np.testing.assert_array_equal(layer(torch.as_tensor(x)).numpy(), np.pad(x, spec))
    x2 = x[:, :, :, 0]
    np.testing.assert_array_equal(ZeroPadding2D((2, 1))(torch.as_tensor(x2)).numpy(),
                                  np.pad(x2, [(0, 0), (2, 2), (1, 1), (0, 0)]))
    np.testing.assert_array_equal(ZeroPadding1D(2)(torch.as_tensor(x2[..., 0])).numpy(),
                                  np.pad(x2[..., 0], [(0, 0), (2, 2), (0, 0)]))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cropping_matches_numpy(data_format):
    x = RNG.standard_normal((2, 5, 6, 7, 3)).astype(np.float32)
    layer = Cropping3D(((1, 2), (0, 3), (2, 0)), data_format=data_format)
    expected = (x[:, 1:-2, 0:-3, 2:] if data_format == "channels_last"
                else x[:, :, 1:-2, 0:-3, 2:])
    np.testing.assert_array_equal(layer(torch.as_tensor(x)).numpy(), expected)
    x2 = x[..., 0]
    np.testing.assert_array_equal(Cropping2D(((1, 1), (0, 2)))(torch.as_tensor(x2)).numpy(),
                                  x2[:, 1:-1, :-2])
    np.testing.assert_array_equal(Cropping1D((2, 0))(torch.as_tensor(x2[..., 0])).numpy(),
                                  x2[:, 2:, :, 0])


def test_upsampling_nearest_matches_numpy_repeat():
    x = RNG.standard_normal((2, 3, 4, 5, 2)).astype(np.float32)
    out = UpSampling3D((2, 1, 3))(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(out, x.repeat(2, 1).repeat(1, 2).repeat(3, 3))
    first = UpSampling2D((3, 2), data_format="channels_first")(torch.as_tensor(x[..., 0]))
    np.testing.assert_array_equal(first.numpy(), x[..., 0].repeat(3, 2).repeat(2, 3))
    seq = UpSampling1D(2)(torch.as_tensor(x[:, :, 0, 0]))
    np.testing.assert_array_equal(seq.numpy(), x[:, :, 0, 0].repeat(2, 1))
    ints = UpSampling2D()(torch.arange(4).reshape(1, 2, 2, 1))
    assert ints.dtype == torch.int64 and ints[0, :, :, 0].tolist() == [
        [0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


@pytest.mark.parametrize("size", [(2, 2), (3, 2)])
def test_upsampling2d_bilinear_matches_numpy(size):
    x = RNG.standard_normal((2, 3, 4, 2)).astype(np.float32)
    out = UpSampling2D(size, interpolation="bilinear")(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(out, np_bilinear(x, *size), rtol=1e-5, atol=1e-6)
    layer = UpSampling2D(size, data_format="channels_first", interpolation="BILINEAR")
    first = layer(torch.as_tensor(x.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(first.transpose(0, 2, 3, 1), out, rtol=1e-5, atol=1e-6)


def test_configs_match_keras_forms():
    assert ZeroPadding2D(1).get_config()["padding"] == ((1, 1), (1, 1))
    assert ZeroPadding1D(3).get_config()["padding"] == (3, 3)
    assert Cropping2D((1, 2)).get_config()["cropping"] == ((1, 1), (2, 2))
    assert "data_format" not in Cropping1D().get_config()
    assert UpSampling1D().get_config()["size"] == 2 and "data_format" not in \
        UpSampling1D().get_config()
    assert UpSampling2D().get_config()["interpolation"] == "nearest"
    keras = {"class_name": "ZeroPadding2D", "config": {
        "name": "zp", "padding": [[1, 2], [3, 4]], "data_format": "channels_last"}}
    assert deserialize_keras_object(keras, "layers").padding == ((1, 2), (3, 4))
    keras1d = {"class_name": "UpSampling1D", "config": {"name": "up", "size": 4}}
    assert deserialize_keras_object(keras1d, "layers").size == (4,)


@pytest.mark.parametrize("cls, kwargs, arg", [
    (ZeroPadding2D, {"padding": -1}, "padding"),
    (ZeroPadding2D, {"padding": (1, 2, 3)}, "padding"),
    (ZeroPadding3D, {"padding": ((1, 1), (1, -1), (0, 0))}, "padding"),
    (ZeroPadding1D, {"padding": (1, 2, 3)}, "padding"),
    (Cropping2D, {"cropping": ((1, 1), (1,))}, "cropping"),
    (Cropping1D, {"cropping": -2}, "cropping"),
    (UpSampling1D, {"size": 0}, "size"),
    (UpSampling2D, {"size": (2, 0)}, "size"),
    (UpSampling2D, {"interpolation": "lanczos3"}, "interpolation"),
    (UpSampling3D, {"data_format": "ncdhw"}, "data_format"),
])
def test_invalid_arguments(cls, kwargs, arg):
    with pytest.raises(ValueError, match=rf"{cls.__name__} '.*'.*{arg}.*Received"):
        cls(**kwargs)


def test_cropping_too_much_and_wrong_rank_are_clear():
    with pytest.raises(ValueError, match=r"Cropping2D 'crop'.*cropping.*\(1, 3, 4, 2\)"):
        Cropping2D(((2, 1), (0, 0)), name="crop")(torch.zeros(1, 3, 4, 2))
    with pytest.raises(ValueError, match="cropping must be smaller"):
        Cropping1D((2, 2))(Input(shape=(4, 3)))
    layer = ZeroPadding2D(name="zp")
    layer(torch.zeros(1, 2, 2, 3))
    with pytest.raises(ValueError, match=r"ZeroPadding2D 'zp' expected an input of rank 4, got "
                                         r"rank 3.*\(2, 2, 3\)"):
        layer(torch.zeros(2, 2, 3))
    up = UpSampling3D(name="up")
    up(torch.zeros(1, 2, 2, 2, 1))
    with pytest.raises(ValueError, match="UpSampling3D 'up' expected an input of rank 5"):
        up(torch.zeros(1, 2, 2, 1))


def test_symbolic_shapes_keep_unknown_dims():
    assert UpSampling2D((2, 3))(Input(shape=(None, 4, 3))).shape == (None, None, 12, 3)
    assert Cropping1D((1, 1))(Input(shape=(None, 3))).shape == (None, None, 3)
    assert ZeroPadding1D(2)(Input(shape=(None, 3))).shape == (None, None, 3)
