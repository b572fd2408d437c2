"""Mixed precision policies: float32 weights, half-precision compute, training still works."""
import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.layers import Dense, Input


@pytest.fixture
def bf16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy(None)


def test_policy_properties_and_errors():
    policy = keras.mixed_precision.DTypePolicy("mixed_float16")
    assert (policy.variable_dtype, policy.compute_dtype) == ("float32", "float16")
    with pytest.raises(ValueError, match="Cannot convert .mixed_int8. to a mixed precision DTypePolicy"):
        keras.mixed_precision.set_global_policy("mixed_int8")


def test_mixed_bfloat16_keeps_float32_weights_and_computes_in_bfloat16(bf16_policy):
    layer = Dense(4)
    x = torch.randn(2, 3)
    out = layer(x)
    assert layer.kernel.dtype == torch.float32
    assert out.dtype == torch.bfloat16
    expected = (x.bfloat16() @ layer.kernel.bfloat16() + layer.bias.bfloat16()).float()
    torch.testing.assert_close(out.float(), expected, rtol=1e-2, atol=1e-2)
    assert layer.get_config()["dtype"]["config"]["name"] == "mixed_bfloat16"


def test_fit_under_mixed_bfloat16(bf16_policy):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([Input(shape=(8,)), Dense(16, activation="relu"), Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.rand(64, 8).astype("float32")
    y = np.random.randint(0, 3, 64)
    history = model.fit(x, y, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert all(w.dtype == torch.float32 for w in model.weights)


def test_mixed_float16_scales_the_loss_and_skips_overflowing_steps():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([Input(shape=(4,)), Dense(8, activation="relu"), Dense(1)])
    finally:
        keras.mixed_precision.set_global_policy(None)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x = np.random.rand(32, 4).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    history = model.fit(x, y, epochs=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    scaler = model.optimizer
    assert isinstance(scaler, keras.optimizers.LossScaleOptimizer)  # as Keras' compile does
    scale = scaler.dynamic_scale
    assert scale <= 2.0 ** 15  # halved on any overflow during fit
    before = model.get_weights()
    model.train_on_batch(x, y * 1e6)  # the scaled float16 gradients overflow: step skipped
    assert scaler.dynamic_scale == scale / 2
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_loss_scale_optimizer_step_grows_the_scale_after_good_steps():
    param = torch.nn.Parameter(torch.ones(2))
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1.0), initial_scale=4.0,
                                              dynamic_growth_steps=2)
    opt.build([param])
    param.grad = torch.full((2,), 8.0)
    opt.step()  # unscaled to 2.0, applied
    assert torch.equal(param.detach(), torch.full((2,), -1.0)) and opt.dynamic_scale == 4.0
    param.grad = torch.full((2,), 8.0)
    opt.step()
    assert opt.dynamic_scale == 8.0
    param.grad = torch.tensor([float("inf"), 1.0])
    opt.step()  # skipped, halved
    assert torch.equal(param.detach(), torch.full((2,), -3.0)) and opt.dynamic_scale == 4.0
