"""`Lamb`: Adam's update rescaled per variable by the trust ratio `|w| / |update|`."""
from __future__ import annotations

import torch

from kestrel.optimizers import foreach
from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin


@register_builtin("optimizers", "lamb")
class Lamb(Optimizer):
    """Layer-wise adaptive moments (LAMB), with Keras 3's maths.

    `u = m_hat / (sqrt(v_hat) + epsilon)`, then `w -= r * lr * u` where the trust ratio `r`
    is `|w| / |u|` (1 when either norm is zero).

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_1: Decay rate of the first-moment estimate. Defaults to 0.9.
        beta_2: Decay rate of the second-moment estimate. Defaults to 0.999.
        epsilon: Small constant for numerical stability. Defaults to 1e-7.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).

    Example: `model.compile(optimizer=kestrel.optimizers.Lamb(1e-3), loss="mse")`.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _slot_groups(self):
        return [[("momentum", 0.0), ("velocity", 0.0)]]

    def _update_step(self, params, grads, slots, lr, t) -> None:
        self._decay_(params, lr, self.weight_decay)
        self._update(params, grads, slots, lr, t)

    def _update(self, params, grads, slots, lr, t) -> None:
        momentums, velocities = slots["momentum"], slots["velocity"]
        torch._foreach_lerp_(momentums, grads, 1 - self.beta_1)
        torch._foreach_mul_(velocities, self.beta_2)
        torch._foreach_addcmul_(velocities, grads, grads, 1 - self.beta_2)
        updates = torch._foreach_div(momentums, 1 - self.beta_1 ** t)
        denominators = torch._foreach_div(velocities, 1 - self.beta_2 ** t)
        torch._foreach_sqrt_(denominators)
        torch._foreach_add_(denominators, self.epsilon)
        torch._foreach_div_(updates, denominators)
        for w_norm, u_norm, update in zip(torch._foreach_norm(params),
                                          torch._foreach_norm(updates), updates):
            ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, 1.0)
            update.mul_(ratio)
        foreach.add_scaled_(params, updates, -lr)

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
