"""`ScheduleFreeAdamW`: AdamW without a learning-rate schedule (Defazio et al., 2024)."""
from __future__ import annotations

import torch

from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin


@register_builtin("optimizers", "schedulefreeadamw")
class ScheduleFreeAdamW(Optimizer):
    """Schedule-free AdamW with Keras 3's state and defaults.

    `momentum` holds the iterate `z` that the Adam steps move (it starts as a copy of the
    variable); the variable is the interpolation `y = (1 - beta_1) z + beta_1 x`, where `x`
    is the running average of the `z`s (weight `1/t`).

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.0025.
        beta_1: Interpolation between `z` and its average. Defaults to 0.9.
        beta_2: Decay rate of the second-moment estimate. Defaults to 0.999.
        epsilon: Small constant for numerical stability. Defaults to 1e-8.
        warmup_steps: Steps of linear learning-rate warmup. Defaults to 0.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).

    Example: `kestrel.optimizers.ScheduleFreeAdamW(learning_rate=0.0025, warmup_steps=100)`.
    """

    def __init__(self, learning_rate=0.0025, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 warmup_steps=0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.warmup_steps = warmup_steps

    def _slot_groups(self):
        return [[("momentum", 0.0), ("velocity", 0.0)]]

    def _build_extra_state(self, device) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self._slots["momentum"], [p.detach() for p in self._params])

    def _update_step(self, params, grads, slots, lr, t) -> None:
        self._decay_(params, lr, self.weight_decay)
        self._update(params, grads, slots, lr, t)

    def _update(self, params, grads, slots, lr, t) -> None:
        if self.warmup_steps > 0:
            lr = lr * min(t / self.warmup_steps, 1.0)
        b1, b2, weight = self.beta_1, self.beta_2, 1.0 / t
        momentums, velocities = slots["momentum"], slots["velocity"]
        olds = torch._foreach_mul(momentums, 1 - b1)
        torch._foreach_lerp_(velocities, torch._foreach_mul(grads, grads), 1 - b2)
        denominators = torch._foreach_div(velocities, 1 - b2 ** t)
        torch._foreach_sqrt_(denominators)
        torch._foreach_add_(denominators, self.epsilon)
        torch._foreach_addcdiv_(momentums, grads, denominators, value=-lr)
        # x_old = (y - (1 - b1) z_old) / b1; x = (1 - w) x_old + w z; y = (1 - b1) z + b1 x
        torch._foreach_sub_(params, olds)
        torch._foreach_mul_(params, (1 - weight))
        torch._foreach_add_(params, momentums, alpha=b1 * weight + (1 - b1))

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "warmup_steps": self.warmup_steps}
