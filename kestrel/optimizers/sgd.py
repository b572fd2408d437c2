"""`SGD`: gradient descent with optional (Nesterov) momentum, Keras 3's formulation."""
from __future__ import annotations

import numbers

import torch

from kestrel.optimizers import foreach
from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin


@register_builtin("optimizers", "sgd")
class SGD(Optimizer):
    """Gradient descent with momentum.

    Keras' update keeps the learning rate inside the velocity, so a changing rate only affects
    new gradients: `velocity = momentum * velocity - lr * g`, then `w += velocity`, or with
    Nesterov `w += momentum * velocity - lr * g`. Without momentum, `w -= lr * g`.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.01.
        momentum: Float in [0, 1]: how much past updates carry over. Defaults to 0.
        nesterov: Whether to apply Nesterov momentum.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).

    Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = SGD(learning_rate=0.1)
    >>> opt.apply([torch.ones(2)], [w])
    >>> w.tolist()
    [0.8999999761581421, 0.8999999761581421]
    """

    supports_host_scalars = True  # nothing but the learning rate depends on the step

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not (
                0 <= momentum <= 1):
            raise ValueError(
                f"`momentum` must be a float between [0, 1]. Received: momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = nesterov

    def _slot_groups(self):
        return [[("momentum", 0.0)]] if self.momentum != 0 else []

    def _update(self, params, grads, slots, lr, t) -> None:
        if self.momentum == 0:
            foreach.add_scaled_(params, grads, -lr)
            return
        velocities = slots["momentum"]
        torch._foreach_mul_(velocities, self.momentum)
        foreach.add_scaled_(velocities, grads, -lr)
        if self.nesterov:
            torch._foreach_add_(params, velocities, alpha=self.momentum)
            foreach.add_scaled_(params, grads, -lr)
        else:
            torch._foreach_add_(params, velocities)

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
