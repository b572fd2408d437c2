import numpy as np
import pytest
import torch

from kestrel.layers import Dense, Input
from tests.layer_harness import run_layer_test


def test_dense_harness():
    run_layer_test(Dense, {"units": 4, "activation": "relu"}, input_shape=(2, 3),
                   expected_output_shape=(2, 4), expected_num_trainable_weights=2)


def test_dense_3d_input_and_numbers():
    layer = Dense(5, use_bias=True)
    x = torch.randn(2, 7, 3)
    out = layer(x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 5)
    np.testing.assert_allclose(out.detach().numpy(), x.numpy() @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_dense_rejects_bad_units_and_wrong_feature_size():
    with pytest.raises(ValueError, match="units"):
        Dense(-1)
    layer = Dense(3, name="hidden")
    layer(torch.ones(1, 64))
    with pytest.raises(ValueError, match="Dense 'hidden' expected last dimension .* 64, got 60"):
        layer(torch.ones(1, 60))
    with pytest.raises(ValueError, match="64, got 60"):
        layer(Input(shape=(60,)))


def test_unknown_activation_is_clear():
    with pytest.raises(ValueError, match="Unknown activation 'nope'"):
        Dense(3, activation="nope")


def test_activity_regularizer_is_averaged_over_the_batch():
    layer = Dense(2, kernel_initializer="ones", activity_regularizer="l2")
    layer(torch.ones(4, 3))
    # each output is 3; l2 = 0.01 * sum(3^2 over 4x2) = 0.72, divided by the batch size 4
    assert float(layer.losses[0]) == pytest.approx(0.18)


def test_get_weights_returns_a_snapshot():
    layer = Dense(2)
    layer(torch.ones(1, 3))
    kernel = layer.get_weights()[0]
    with torch.no_grad():
        layer.kernel.add_(1.0)
    assert not np.allclose(kernel, layer.get_weights()[0])
