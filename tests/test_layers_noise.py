import doctest

import numpy as np
import pytest
import torch

from kestrel.layers.regularization import (
    activity_regularization,
    gaussian_dropout,
    gaussian_noise,
)
from kestrel.layers.regularization.activity_regularization import ActivityRegularization
from kestrel.layers.regularization.alpha_dropout import AlphaDropout
from kestrel.layers.regularization.gaussian_dropout import GaussianDropout
from kestrel.layers.regularization.gaussian_noise import GaussianNoise
from kestrel.layers.regularization.spatial_dropout import (
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)
from tests.layer_harness import run_layer_test

ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


@pytest.mark.parametrize("cls, kwargs, shape", [
    (GaussianNoise, {"stddev": 0.1}, (2, 3)),
    (GaussianDropout, {"rate": 0.3, "seed": 1}, (2, 3, 4)),
    (AlphaDropout, {"rate": 0.2, "noise_shape": (None, 1)}, (2, 3)),
    (SpatialDropout1D, {"rate": 0.5}, (2, 3, 4)),
    (SpatialDropout2D, {"rate": 0.5, "data_format": "channels_first"}, (2, 3, 4, 5)),
    (SpatialDropout3D, {"rate": 0.5}, (2, 3, 4, 5, 6)),
    (ActivityRegularization, {"l1": 0.1, "l2": 0.2}, (2, 3)),
])
def test_harness_and_identity_in_inference(cls, kwargs, shape):
    out = run_layer_test(cls, kwargs, input_shape=shape, expected_output_shape=shape,
                         expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    x = torch.randn(shape)
    x._keras_mask = torch.ones(shape[:2], dtype=torch.bool)
    layer = cls(**kwargs)
    y = layer(x)
    assert torch.equal(y, x) and y._keras_mask is x._keras_mask
    assert out.shape == shape


def test_gaussian_noise_statistics_and_seed():
    x = torch.zeros(200_000)
    noisy = GaussianNoise(0.5, seed=3)(x, training=True)
    assert abs(float(noisy.mean())) < 0.01 and abs(float(noisy.std()) - 0.5) < 0.01
    again = GaussianNoise(0.5, seed=3)(x, training=True)
    torch.testing.assert_close(noisy, again)
    layer = GaussianNoise(0.5, seed=3)
    layer.train()
    first, second = layer(x), layer(x)
    torch.testing.assert_close(first, noisy)
    assert not torch.equal(first, second)  # a seeded sequence, not one repeated draw


def test_gaussian_dropout_statistics():
    y = GaussianDropout(0.2)(torch.full((200_000,), 3.0), training=True)
    assert abs(float(y.mean()) - 3.0) < 0.02
    assert abs(float(y.std()) - 3.0 * np.sqrt(0.2 / 0.8)) < 0.02


def test_alpha_dropout_matches_formula_and_keeps_moments():
    rate = 0.2
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    y = AlphaDropout(rate, seed=5)(x, training=True).numpy()
    a = ((1 - rate) * (1 + rate * ALPHA_P ** 2)) ** -0.5
    b = -a * ALPHA_P * rate
    kept = np.isclose(y, a * x.numpy() + b, atol=1e-6)
    np.testing.assert_allclose(y[~kept], a * ALPHA_P + b, rtol=1e-6)
    assert abs(1 - kept.mean() - rate) < 0.01
    assert abs(y.mean()) < 0.02 and abs(y.var() - 1.0) < 0.02
    rows = AlphaDropout(0.5, noise_shape=(None, 1))(torch.randn(500, 8), training=True).numpy()
    a_half = (0.5 * (1 + 0.5 * ALPHA_P ** 2)) ** -0.5
    dropped = np.isclose(rows, a_half * ALPHA_P * 0.5, atol=1e-6)
    assert np.all(dropped.all(axis=1) | ~dropped.any(axis=1))


@pytest.mark.parametrize("cls, shape, data_format, channel_axis", [
    (SpatialDropout1D, (64, 10, 8), None, 2),
    (SpatialDropout2D, (32, 5, 6, 8), "channels_last", 3),
    (SpatialDropout2D, (32, 8, 5, 6), "channels_first", 1),
    (SpatialDropout3D, (16, 3, 4, 5, 8), None, 4),
])
def test_spatial_dropout_drops_whole_channels(cls, shape, data_format, channel_axis):
    kwargs = {} if data_format is None else {"data_format": data_format}
    y = cls(0.5, seed=2, **kwargs)(torch.ones(shape), training=True).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0}
    spatial = tuple(i for i in range(1, len(shape)) if i != channel_axis)
    assert np.all(y.min(axis=spatial) == y.max(axis=spatial))
    assert 0.3 < (y == 0).mean() < 0.7


def test_spatial_dropout_config_matches_keras():
    config = SpatialDropout2D(0.3, data_format="channels_first", seed=4).get_config()
    assert {k: config[k] for k in ("rate", "seed", "data_format")} == {
        "rate": 0.3, "seed": 4, "data_format": "channels_first"}
    assert "noise_shape" not in config
    assert "data_format" not in SpatialDropout1D(0.3).get_config()
    keras3 = {"rate": 0.3, "seed": None, "name": "sd", "dtype": "float32",
              "data_format": "channels_last", "noise_shape": None}
    assert SpatialDropout2D.from_config(keras3).noise_shape == (None, 1, 1, None)


def test_activity_regularization_adds_l1_l2_loss():
    layer = ActivityRegularization(l1=0.1, l2=0.2)
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    assert torch.equal(layer(x), x)
    (loss,) = layer.losses
    np.testing.assert_allclose(float(loss), (0.1 * 6.5 + 0.2 * 14.25) / 2, rtol=1e-6)  # / batch
    assert ActivityRegularization.from_config(layer.get_config()).l2 == 0.2
    assert "activity_regularizer" not in layer.get_config()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="GaussianNoise .*stddev.*Received: stddev=-2"):
        GaussianNoise(-2)
    assert GaussianNoise.from_config({"stddev": 2.0, "name": "keras2"}).stddev == 2.0
    with pytest.raises(ValueError, match="GaussianDropout .*rate"):
        GaussianDropout(1.0)
    with pytest.raises(ValueError, match="AlphaDropout .*rate"):
        AlphaDropout(-0.1)
    with pytest.raises(ValueError, match="seed"):
        GaussianNoise(0.1, seed="abc")
    with pytest.raises(ValueError, match="data_format"):
        SpatialDropout2D(0.1, data_format="nhwc")
    with pytest.raises(ValueError, match="SpatialDropout1D 'sd1' expected an input of rank 3"):
        SpatialDropout1D(0.1, name="sd1")(torch.zeros(2, 3, 4, 5))


@pytest.mark.parametrize("module", [activity_regularization, gaussian_dropout, gaussian_noise])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0
