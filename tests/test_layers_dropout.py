import numpy as np
import pytest
import torch

from kestrel.layers import Dense, Input
from kestrel.layers.regularization import Dropout
from kestrel.models import Model
from tests.layer_harness import run_layer_test


def test_dropout_harness():
    run_layer_test(Dropout, {"rate": 0.5, "noise_shape": [None, 1], "seed": 3},
                   input_shape=(2, 3), expected_output_shape=(2, 3),
                   expected_num_trainable_weights=0)


def test_dropout_inactive_by_default_and_in_eval():
    layer = Dropout(0.5)
    x = torch.randn(100, 10)
    assert torch.equal(layer(x), x)
    assert torch.equal(layer(x, training=False), x)


def test_dropout_active_with_training_true():
    x = torch.ones(200, 50)
    out = Dropout(0.3)(x, training=True)
    dropped = (out == 0).float().mean().item()
    assert 0.25 < dropped < 0.35
    np.testing.assert_allclose(out[out != 0].numpy(), 1 / 0.7, rtol=1e-6)


def test_dropout_follows_module_mode_inside_a_model():
    inputs = Input((64,))
    model = Model(inputs, Dropout(0.5)(Dense(64, kernel_initializer="ones")(inputs)))
    x = torch.ones(8, 64)
    assert torch.equal(model(x), model(x))
    model.train()
    assert (model(x) == 0).any()
    model.eval()
    assert not (model(x) == 0).any()


def test_noise_shape_shares_the_mask_across_axes():
    out = Dropout(0.5, noise_shape=(None, 1, None))(torch.ones(4, 6, 8), training=True)
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert (out == 0).any() and (out == 2).any()
    with pytest.raises(ValueError, match="noise_shape must have the input's rank 3"):
        Dropout(0.5, noise_shape=(None, 1))(torch.ones(4, 6, 8), training=True)


def test_seed_gives_a_reproducible_sequence():
    x = torch.ones(10, 10)
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    first = a(x, training=True)
    assert torch.equal(first, b(x, training=True))
    assert not torch.equal(first, a(x, training=True))


def test_dropout_passes_mask_and_serializes():
    x = torch.ones(2, 3, 4)
    x._keras_mask = torch.tensor([[True, False, True]] * 2)
    assert torch.equal(Dropout(0.2)(x)._keras_mask, x._keras_mask)
    config = Dropout(0.25, noise_shape=(None, 1), seed=1).get_config()
    assert (config["rate"], config["noise_shape"], config["seed"]) == (0.25, [None, 1], 1)


@pytest.mark.parametrize("kwargs,match", [({"rate": 1.0}, "rate must be a float in"),
                                          ({"rate": -0.1}, "rate"),
                                          ({"rate": 0.5, "noise_shape": (None, 0)}, "noise_shape"),
                                          ({"rate": 0.5, "seed": 1.5}, "seed")])
def test_dropout_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Dropout(**kwargs)
