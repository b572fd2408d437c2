"""`kestrel.remat` and `RematScope`: same values and gradients, forward recomputed in backward."""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import layers


def _count_calls(layer):
    calls = []
    original = layer.call

    def counted(*args, **kwargs):
        calls.append(torch.is_grad_enabled())
        return original(*args, **kwargs)

    layer.call = counted
    return calls


def _grads(model, x):
    model.zero_grad()
    model(x, training=True).square().sum().backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("mode, kwargs, recomputed", [
    ("full", {}, {"a", "b"}),
    ("list_of_layers", {"layer_names": ["b"]}, {"b"}),
    ("larger_than", {"output_size_threshold": 4 * 16}, {"a"}),  # a: (4, 32); b: (4, 3)
])
def test_scope_recomputes_chosen_layers_and_keeps_gradients(mode, kwargs, recomputed):
    torch.manual_seed(0)
    with kestrel.RematScope(mode=mode, **kwargs):
        a, b = layers.Dense(32, activation="relu", name="a"), layers.Dense(3, name="b")
    model = kestrel.Sequential([kestrel.Input((5,)), a, b])
    plain = kestrel.Sequential([kestrel.Input((5,)), layers.Dense(32, activation="relu"),
                                layers.Dense(3)])
    plain.set_weights(model.get_weights())
    x = torch.randn(4, 5)
    calls = {"a": _count_calls(a), "b": _count_calls(b)}
    for ours, theirs in zip(_grads(model, x), _grads(plain, x)):
        torch.testing.assert_close(ours, theirs)
    assert {name for name, c in calls.items() if len(c) == 2} == recomputed
    before = {name: len(c) for name, c in calls.items()}
    with torch.no_grad():  # inference: no checkpointing, one call each
        model(x)
    assert {name: len(c) - before[name] for name, c in calls.items()} == {"a": 1, "b": 1}


def test_activations_mode_wraps_only_the_activation_and_restores_it():
    with kestrel.RematScope(mode="activations"):
        dense = layers.Dense(4, activation="gelu")
    x = torch.randn(3, 2, requires_grad=True)
    dense(x).sum().backward()
    assert dense.get_config()["activation"] == "gelu"
    reference = layers.Dense(4, activation="gelu")
    reference.build((None, 2))
    reference.set_weights(dense.get_weights())
    x2 = x.detach().clone().requires_grad_()
    reference(x2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_layers_outside_the_scope_and_mode_none_are_untouched():
    with kestrel.RematScope(mode="full"):
        with kestrel.RematScope(mode=None):
            inner = layers.Dense(2)
        outer = layers.Dense(2)
    after = layers.Dense(2)
    assert "forward" not in vars(inner) and "forward" not in vars(after)
    assert "forward" in vars(outer)


def test_remat_function_and_bad_mode():
    dense = layers.Dense(3)
    x = torch.randn(2, 4, requires_grad=True)
    y = kestrel.remat(dense)(x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), dense.kernel.detach().numpy().sum(1)[None]
                               .repeat(2, 0), rtol=1e-6)
    with pytest.raises(ValueError, match="invalid mode 'everything'"):
        kestrel.RematScope(mode="everything")


def test_fit_trains_the_same_with_remat():
    x, y = np.random.default_rng(0).normal(size=(32, 6)).astype("float32"), \
        np.random.default_rng(1).normal(size=(32, 1)).astype("float32")

    def train(scope):
        kestrel.utils.set_random_seed(3)
        with kestrel.RematScope(mode=scope):
            model = kestrel.Sequential([kestrel.Input((6,)), layers.Dense(16, activation="tanh"),
                                        layers.Dropout(0.3), layers.Dense(1)])
        model.compile("adam", "mse")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        return model.get_weights()

    for ours, theirs in zip(train("full"), train(None)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
