"""ContrastLimitedAdaptiveHistogramEqualization against real Keras 3 (torch backend)."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

from kestrel import layers  # noqa: E402
from tests.layer_harness import run_layer_test  # noqa: E402

CLAHE = layers.ContrastLimitedAdaptiveHistogramEqualization


def _keras(x, **kwargs):
    layer = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(**kwargs)
    return np.asarray(keras.ops.convert_to_numpy(layer(x)))


@pytest.mark.parametrize("shape, kwargs", [
    ((2, 64, 48, 3), {"tile_grid_size": (2, 3)}),                 # whole counts clipped
    ((1, 37, 29, 1), {"tile_grid_size": (4, 3), "clip_limit": 40.0}),  # padded tiles
    ((2, 16, 16, 2), {}),                                          # limit below one count
    ((1, 24, 24, 3), {"clip_limit": 0.0, "tile_grid_size": (3, 3)}),   # no clipping
    ((2, 20, 18, 3), {"value_range": (0, 1), "tile_grid_size": (2, 2)}),
    ((20, 18, 3), {"tile_grid_size": (2, 2)}),                     # one image
])
def test_matches_keras(shape, kwargs):
    rng = np.random.default_rng(sum(shape))
    # a smooth gradient plus noise: tiles with different histograms
    ramp = np.linspace(0, 180, shape[-2], dtype="float32")[None, :, None]
    x = np.clip(ramp + rng.normal(0, 25, shape), 0, 255).astype("float32")
    if kwargs.get("value_range") == (0, 1):
        x /= 255.0
    ours = CLAHE(**kwargs)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, _keras(x, **kwargs), rtol=1e-5, atol=1e-4)
    assert not np.allclose(ours, x)  # it did change the contrast


def test_channels_first_equals_channels_last():
    x = torch.rand(2, 3, 24, 20) * 255
    first = CLAHE(tile_grid_size=(3, 2), data_format="channels_first")(x)
    last = CLAHE(tile_grid_size=(3, 2))(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(first, last)


def test_layer_harness_and_config_round_trip():
    run_layer_test(CLAHE, {"tile_grid_size": (2, 2), "clip_limit": 3.0}, (2, 8, 8, 3),
                   expected_output_shape=(2, 8, 8, 3), expected_num_trainable_weights=0,
                   input_data=torch.rand(2, 8, 8, 3) * 255, run_training_check=False)
    config = CLAHE(value_range=(0, 1), clip_limit=2.0, tile_grid_size=(4, 2)).get_config()
    assert {k: config[k] for k in ("value_range", "clip_limit", "tile_grid_size")} == \
        {"value_range": [0, 1], "clip_limit": 2.0, "tile_grid_size": [4, 2]}
    theirs = keras.layers.ContrastLimitedAdaptiveHistogramEqualization.from_config(config)
    assert tuple(theirs.tile_grid_size) == (4, 2)


def test_bad_grid_is_a_clear_error():
    with pytest.raises(ValueError, match="tile_grid_size must be two positive integers"):
        CLAHE(tile_grid_size=(0, 2))
