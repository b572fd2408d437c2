"""Keras 2 training names: optimizers' `lr=` and time-based `decay=`."""
import pytest
import torch

import kestrel


def test_lr_is_learning_rate_with_a_warning():
    with pytest.warns(DeprecationWarning, match="lr"):
        opt = kestrel.optimizers.Adam(lr=0.01)
    assert opt.get_config()["learning_rate"] == pytest.approx(0.01)


def test_decay_is_keras2_time_based_decay():
    with pytest.warns(DeprecationWarning, match="decay"):
        opt = kestrel.optimizers.SGD(lr=0.1, decay=0.5)
    w = torch.nn.Parameter(torch.ones(1))
    opt.build([w])
    values = []
    for _ in range(3):
        w.grad = torch.ones(1)
        opt.step()
        values.append(w.item())
    # Keras 2: lr_t = lr / (1 + decay * iterations), iterations counted before the update
    expected = [1 - 0.1, 1 - 0.1 - 0.1 / 1.5, 1 - 0.1 - 0.1 / 1.5 - 0.1 / 2.0]
    assert values == pytest.approx(expected, rel=1e-6)


def test_unknown_optimizer_argument_still_refused():
    with pytest.raises(ValueError, match="not recognized"):
        kestrel.optimizers.SGD(learning_rate=0.1, bogus=1)
