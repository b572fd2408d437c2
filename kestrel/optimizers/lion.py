"""`Lion`: sign-based updates (Chen et al., 2023), Keras 3's formulation."""
from __future__ import annotations

import torch

from kestrel.optimizers import foreach
from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin


@register_builtin("optimizers", "lion")
class Lion(Optimizer):
    """Lion: `w -= lr * sign(beta_1 * m + (1 - beta_1) * g)`; `m = beta_2 * m + (1 - beta_2) * g`.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_1: Interpolation factor for the update direction, in (0, 1]. Defaults to 0.9.
        beta_2: Decay rate of the momentum. Defaults to 0.99.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).
    """

    supports_host_scalars = True  # nothing but the learning rate depends on the step

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError(
                "Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer "
                f"degenerates to SignSGD. Received: beta_1={beta_1}.")
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def _slot_groups(self):
        return [[("momentum", 0.0)]]

    def _update(self, params, grads, slots, lr, t) -> None:
        momentums = slots["momentum"]
        directions = torch._foreach_mul(momentums, self.beta_1)
        torch._foreach_add_(directions, grads, alpha=1 - self.beta_1)
        torch._foreach_sign_(directions)
        foreach.add_scaled_(params, directions, -lr)
        torch._foreach_mul_(momentums, self.beta_2)
        torch._foreach_add_(momentums, grads, alpha=1 - self.beta_2)

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
