import numpy as np
import pytest
import torch

from kestrel.layers import Input
from kestrel.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalAvgPool1D,
    GlobalMaxPool3D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from kestrel.registry.serialization import deserialize_keras_object
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(1)


def np_pool(x, pool, strides, padding, mode):
    """Keras/TF pooling by loops, channels-last; 'same' windows use only real elements."""
    spatial = x.shape[1:-1]
    if padding == "same":
        out = [-(-n // s) for n, s in zip(spatial, strides)]
        starts = [-(max((o - 1) * s + k - n, 0) // 2)
                  for o, s, k, n in zip(out, strides, pool, spatial)]
    else:
        out = [(n - k) // s + 1 for n, k, s in zip(spatial, pool, strides)]
        starts = [0] * len(spatial)
    result = np.zeros((x.shape[0], *out, x.shape[-1]))
    for pos in np.ndindex(*out):
        window = tuple(slice(max(b + p * s, 0), min(b + p * s + k, n))
                       for b, p, s, k, n in zip(starts, pos, strides, pool, spatial))
        patch = x[(slice(None), *window)].reshape(x.shape[0], -1, x.shape[-1])
        result[(slice(None), *pos)] = patch.max(1) if mode == "max" else patch.mean(1)
    return result


@pytest.mark.parametrize("cls, kwargs, in_shape, out_shape", [
    (MaxPooling1D, {}, (2, 9, 3), (2, 4, 3)),
    (MaxPooling2D, {"padding": "same", "strides": 2, "pool_size": 3}, (2, 6, 7, 3),
     (2, 3, 4, 3)),
    (MaxPooling3D, {"data_format": "channels_first"}, (1, 2, 4, 4, 5), (1, 2, 2, 2, 2)),
    (AveragePooling1D, {"pool_size": 2, "strides": 1, "padding": "same"}, (2, 5, 3),
     (2, 5, 3)),
    (AveragePooling2D, {"pool_size": (2, 3)}, (2, 6, 7, 3), (2, 3, 2, 3)),
    (AveragePooling3D, {"pool_size": 2, "padding": "same"}, (1, 3, 4, 5, 2), (1, 2, 2, 3, 2)),
    (GlobalMaxPooling1D, {}, (2, 5, 3), (2, 3)),
    (GlobalMaxPooling2D, {"keepdims": True}, (2, 4, 5, 3), (2, 1, 1, 3)),
    (GlobalMaxPooling3D, {"data_format": "channels_first"}, (2, 3, 2, 2, 2), (2, 3)),
    (GlobalAveragePooling1D, {"data_format": "channels_first", "keepdims": True}, (2, 3, 5),
     (2, 3, 1)),
    (GlobalAveragePooling2D, {}, (2, 4, 5, 3), (2, 3)),
    (GlobalAveragePooling3D, {"keepdims": True}, (2, 2, 3, 2, 4), (2, 1, 1, 1, 4)),
])
def test_harness(cls, kwargs, in_shape, out_shape):
    run_layer_test(cls, kwargs, input_shape=in_shape, expected_output_shape=out_shape,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("rank, size, pool, strides, padding", [
    (1, (9,), (3,), (2,), "same"),          # symmetric 'same'
    (1, (8,), (2,), (1,), "same"),          # even pool: extra padding at the end
    (2, (6, 7), (3, 2), (2, 2), "same"),    # asymmetric on one axis
    (2, (7, 5), (3, 3), (3, 2), "valid"),
    (2, (5, 5), (4, 4), (3, 3), "same"),
    (3, (4, 5, 3), (2, 3, 2), (2, 2, 1), "same"),
])
def test_pooling_matches_numpy(mode, rank, size, pool, strides, padding):
    cls = {("max", 1): MaxPooling1D, ("max", 2): MaxPooling2D, ("max", 3): MaxPooling3D,
           ("average", 1): AveragePooling1D, ("average", 2): AveragePooling2D,
           ("average", 3): AveragePooling3D}[mode, rank]
    x = RNG.standard_normal((2, *size, 3)).astype(np.float32) - 2  # all-negative corners
    out = cls(pool, strides, padding)(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(out, np_pool(x, pool, strides, padding, mode), rtol=1e-5,
                               atol=1e-6)
    first = cls(pool, strides, padding, data_format="channels_first")
    moved = torch.as_tensor(np.moveaxis(x, -1, 1))
    np.testing.assert_allclose(np.moveaxis(first(moved).numpy(), 1, -1), out, rtol=1e-5,
                               atol=1e-6)


def test_same_average_counts_only_real_elements():
    x = torch.ones(1, 5, 5, 1)
    out = AveragePooling2D(2, strides=2, padding="same")(x)
    torch.testing.assert_close(out, torch.ones(1, 3, 3, 1))  # zeros would pull corners down


def test_strides_default_to_pool_size_and_config():
    layer = MaxPooling2D((3, 2))
    assert layer.strides == (3, 2)
    config = layer.get_config()
    assert config["pool_size"] == (3, 2) and config["strides"] == (3, 2)
    assert config["padding"] == "valid" and config["data_format"] == "channels_last"
    keras = {"module": "keras.layers", "class_name": "MaxPooling2D", "config": {
        "name": "max_pooling2d", "trainable": True, "dtype": {"module": "keras",
        "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
        "pool_size": [2, 2], "padding": "valid", "strides": [2, 2],
        "data_format": "channels_last"}, "registered_name": None}
    assert deserialize_keras_object(keras, "layers").pool_size == (2, 2)
    assert deserialize_keras_object({"class_name": "AvgPool2D", "config": {"pool_size": 2}},
                                    "layers").__class__ is AveragePooling2D
    assert MaxPool2D is MaxPooling2D and AvgPool2D is AveragePooling2D


def test_global_pooling_numbers():
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    t = torch.as_tensor(x)
    np.testing.assert_allclose(GlobalAveragePooling2D()(t).numpy(), x.mean((1, 2)), rtol=1e-5)
    np.testing.assert_allclose(GlobalMaxPooling2D()(t).numpy(), x.max((1, 2)))
    np.testing.assert_allclose(
        GlobalAveragePooling2D(data_format="channels_first")(t).numpy(), x.mean((2, 3)),
        rtol=1e-5)
    np.testing.assert_allclose(GlobalMaxPool3D()(t[..., None]).numpy(), x.max((1, 2, 3))[:, None])
    np.testing.assert_allclose(GlobalMaxPooling1D()(t[0]).numpy(), x[0].max(1))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_average_pooling1d_mask(data_format):
    x = RNG.standard_normal((2, 4, 3)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 0, 1, 1]], dtype=bool)
    x[0, 2] = np.nan  # masked steps must not leak, even as NaN
    expected = np.stack([x[b][mask[b]].mean(0) for b in range(2)])
    layer = GlobalAveragePooling1D(data_format=data_format)
    inputs = torch.as_tensor(x if data_format == "channels_last" else x.transpose(0, 2, 1))
    out = layer(inputs, mask=torch.as_tensor(mask))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
    assert getattr(out, "_keras_mask", None) is None
    inputs._keras_mask = torch.as_tensor(mask)  # a mask travelling on the tensor is used too
    np.testing.assert_allclose(GlobalAvgPool1D(data_format=data_format)(inputs).numpy(),
                               expected, rtol=1e-5)


def test_global_max_pooling1d_ignores_the_mask():
    x = torch.tensor([[[1.0], [5.0], [2.0]]])
    x._keras_mask = torch.tensor([[True, False, True]])
    assert GlobalMaxPooling1D()(x).item() == 5.0


@pytest.mark.parametrize("cls, kwargs, arg", [
    (MaxPooling2D, {"pool_size": 0}, "pool_size"),
    (MaxPooling2D, {"pool_size": (2, 2, 2)}, "pool_size"),
    (AveragePooling1D, {"pool_size": 2, "strides": -1}, "strides"),
    (MaxPooling1D, {"padding": "causal"}, "padding"),
    (AveragePooling3D, {"pool_size": 2, "data_format": "NDHWC"}, "data_format"),
    (GlobalMaxPooling2D, {"data_format": "nchw"}, "data_format"),
])
def test_invalid_arguments(cls, kwargs, arg):
    with pytest.raises(ValueError, match=rf"{cls.__name__} '.*'.*{arg}.*Received"):
        cls(**kwargs)


def test_average_pooling_needs_pool_size_as_in_keras3():
    with pytest.raises(TypeError):
        AveragePooling2D()


def test_wrong_rank_names_layer_and_shape():
    layer = MaxPooling2D(name="mp")
    layer(torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError, match=r"MaxPooling2D 'mp' expected an input of rank 4, got "
                                         r"rank 3.*\(4, 4, 3\)"):
        layer(torch.zeros(4, 4, 3))
    gap = GlobalAveragePooling2D(name="gap")
    gap(torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError, match=r"GlobalAveragePooling2D 'gap' .* rank 4, got rank 3"):
        gap(torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="zero or negative"):
        MaxPooling1D(4)(Input(shape=(3, 2)))


def test_symbolic_shapes():
    assert MaxPooling2D(3, 2, "same")(Input(shape=(None, 7, 3))).shape == (None, None, 4, 3)
    assert GlobalAveragePooling1D()(Input(shape=(None, 6))).shape == (None, 6)
