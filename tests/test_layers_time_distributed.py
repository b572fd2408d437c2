import json

import numpy as np
import pytest
import torch

from kestrel.layers import Dense, Input
from kestrel.layers.rnn import LSTM, TimeDistributed
from tests.layer_harness import run_layer_test


def test_harness():
    run_layer_test(TimeDistributed, {"layer": Dense(4)}, input_shape=(2, 3, 5),
                   expected_output_shape=(2, 3, 4), expected_num_trainable_weights=2)
    run_layer_test(TimeDistributed, {"layer": LSTM(2)}, input_shape=(2, 3, 4, 5),
                   expected_output_shape=(2, 3, 2), expected_num_trainable_weights=3)


def test_same_as_applying_the_layer_to_each_step():
    dense = Dense(3, activation="relu")
    layer = TimeDistributed(dense)
    x = torch.randn(2, 4, 5)
    out = layer(x)
    expected = torch.stack([dense(x[:, t]) for t in range(4)], 1)
    torch.testing.assert_close(out, expected)
    kernel, bias = layer.get_weights()
    manual = np.maximum(x.numpy() @ kernel + bias, 0)
    np.testing.assert_allclose(out.detach().numpy(), manual, atol=1e-6)


def test_mask_passes_through_and_symbolic_shape():
    x = torch.randn(2, 4, 5)
    x._keras_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(TimeDistributed(Dense(3))(x)._keras_mask, x._keras_mask)
    assert TimeDistributed(Dense(3))(Input((None, 5))).shape == (None, None, 3)
    assert TimeDistributed(Dense(3)).compute_output_shape((None, 7, 5)) == (None, 7, 3)


def test_config_round_trip():
    layer = TimeDistributed(Dense(3, name="inner"), name="td")
    config = json.loads(json.dumps(layer.get_config()))
    assert config["layer"]["class_name"] == "Dense"
    clone = TimeDistributed.from_config(config)
    assert clone.name == "td" and clone.layer.name == "inner" and clone.layer.units == 3


def test_errors():
    with pytest.raises(ValueError, match="layer must be a Layer instance"):
        TimeDistributed(3)
    with pytest.raises(ValueError, match=r"td.*rank >= 3.*Received: input shape=\(2, 5\)"):
        TimeDistributed(Dense(3), name="td")(torch.zeros(2, 5))
