import json

import numpy as np
import pytest
import torch

from kestrel.layers.rnn import GRU, RNN, GRUCell
from tests import rnn_reference as ref
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(11)


def randomize(layer, scale=0.5):
    weights = [RNG.normal(size=w.shape).astype(np.float32) * scale for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


@pytest.mark.parametrize("kwargs, out_shape", [
    ({"units": 3}, (2, 3)),
    ({"units": 3, "reset_after": False, "return_sequences": True}, (2, 4, 3)),
    ({"units": 3, "return_state": True, "go_backwards": True}, [(2, 3), (2, 3)]),
    ({"units": 3, "dropout": 0.3, "recurrent_dropout": 0.2, "seed": 1}, (2, 3)),
])
def test_harness(kwargs, out_shape):
    run_layer_test(GRU, kwargs, input_shape=(2, 4, 5), expected_output_shape=out_shape,
                   expected_num_trainable_weights=3, expected_num_non_trainable_weights=0)


@pytest.mark.parametrize("reset_after, use_cudnn", [(True, "auto"), (True, False), (False, "auto")])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_matches_numpy_equations(reset_after, use_cudnn, go_backwards):
    x = RNG.normal(size=(3, 6, 4)).astype(np.float32)
    h0 = RNG.normal(size=(3, 5)).astype(np.float32)
    layer = GRU(5, return_sequences=True, return_state=True, go_backwards=go_backwards,
                reset_after=reset_after, use_cudnn=use_cudnn)
    layer(torch.tensor(x))
    weights = randomize(layer)
    out, h = layer(torch.tensor(x), initial_state=torch.tensor(h0))
    step = ref.gru_step(*weights, reset_after=reset_after)
    expected, (eh,) = ref.run(step, x, [h0], go_backwards=go_backwards)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(h.detach().numpy(), eh, atol=1e-5)


def test_weight_shapes_and_torch_gate_order():
    layer = GRU(2)
    layer(torch.zeros(1, 3, 4))
    kernel, recurrent, bias = randomize(layer)
    assert kernel.shape == (4, 6) and recurrent.shape == (2, 6) and bias.shape == (2, 6)
    z, r, h = np.split(kernel, 3, axis=1)
    np.testing.assert_array_equal(layer.cell.kernel.detach().numpy(),
                                  np.concatenate([r, z, h], 1).T)
    no_reset_after = GRU(2, reset_after=False)
    no_reset_after(torch.zeros(1, 3, 4))
    assert no_reset_after.get_weights()[2].shape == (6,)


def grads_of(layer, x, weights):
    layer.set_weights(weights)
    x = x.clone().requires_grad_()
    out = layer(x)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    return out.detach(), [x.grad] + [w.grad for w in layer.trainable_weights]


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_and_generic_paths_agree_forward_and_backward(return_sequences, go_backwards):
    x = torch.randn(4, 7, 3)
    kwargs = {"return_sequences": return_sequences, "go_backwards": go_backwards}
    fast, slow = GRU(6, **kwargs), RNN(GRUCell(6), **kwargs)
    fast(x), slow(x)
    weights = randomize(fast)
    out_fast, grads_fast = grads_of(fast, x, weights)
    out_slow, grads_slow = grads_of(slow, x, weights)
    torch.testing.assert_close(out_fast, out_slow, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_dropout_only_in_training():
    x = torch.randn(3, 5, 4)
    layer = GRU(4, dropout=0.5, recurrent_dropout=0.3, seed=2)
    inference = layer(x)
    torch.testing.assert_close(layer(x, training=False), inference)
    assert not torch.allclose(layer(x, training=True), inference)


def test_keras2_config_loads_and_round_trips():
    keras2 = {"name": "gru", "trainable": True, "dtype": "float32", "return_sequences": True,
              "return_state": False, "go_backwards": False, "stateful": False, "unroll": False,
              "time_major": False, "units": 3, "activation": "tanh",
              "recurrent_activation": "sigmoid", "use_bias": True, "dropout": 0.0,
              "recurrent_dropout": 0.0, "implementation": 2, "reset_after": False}
    layer = GRU.from_config(keras2)
    assert layer.units == 3 and layer.reset_after is False and layer.return_sequences
    config = json.loads(json.dumps(layer.get_config()))
    assert config["reset_after"] is False and "cell" not in config
    assert GRU.from_config(config)(torch.zeros(2, 4, 5)).shape == (2, 4, 3)


def test_errors():
    with pytest.raises(ValueError, match="GRU: units must be a positive integer.*units=-1"):
        GRU(-1)
    layer = GRU(2, name="my_gru")
    with pytest.raises(ValueError, match=r"my_gru.*\(batch, timesteps, features\).*\(2, 3, 4, 5\)"):
        layer(torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="use_cudnn=True"):
        GRU(2, reset_after=False, use_cudnn=True)(torch.zeros(1, 2, 3))


def test_regularizers_and_constraints_see_keras_layout():
    layer = GRU(3, kernel_regularizer="l2", kernel_constraint={"class_name": "MaxNorm",
                                                                "config": {"max_value": 0.5}})
    layer(torch.zeros(1, 2, 4))
    weights = randomize(layer, scale=2.0)
    np.testing.assert_allclose(layer.losses[0].detach().item(), 0.01 * (weights[0] ** 2).sum(), rtol=1e-5)
    layer.cell._apply_constraints()
    kernel = layer.get_weights()[0]
    assert kernel.shape == (4, 9)
    np.testing.assert_array_less(np.linalg.norm(kernel, axis=0), 0.5 + 1e-5)
    z_block = weights[0][:, :3]
    scale = np.minimum(1, 0.5 / np.linalg.norm(z_block, axis=0))
    np.testing.assert_allclose(kernel[:, :3], z_block * scale, rtol=1e-4, atol=1e-6)
