"""`Ftrl`: Follow The Regularized Leader, Keras 3's formulation."""
from __future__ import annotations

import torch

from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin


def _check_non_negative(name: str, value: float) -> None:
    if value < 0.0:
        raise ValueError(f"`{name}` needs to be positive or zero. Received: {name}={value}.")


@register_builtin("optimizers", "ftrl")
class Ftrl(Optimizer):
    """FTRL-Proximal with L1, L2 and L2-shrinkage regularization.

    Per step, with `p = -learning_rate_power` and `n` the accumulator:
    `n' = n + g**2`; `linear += g + 2 * l2_shrinkage * w - (n'**p - n**p) / lr * w`;
    `w = (clip(linear, -l1, l1) - linear) / (n'**p / lr + 2 * (l2 + beta / (2 * lr)))`.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        learning_rate_power: Float <= 0: how the rate shrinks as the accumulator grows.
            Defaults to -0.5.
        initial_accumulator_value: Starting value of the accumulators (>= 0). Defaults to 0.1.
        l1_regularization_strength: L1 strength (>= 0). Defaults to 0.
        l2_regularization_strength: L2 strength (>= 0). Defaults to 0.
        l2_shrinkage_regularization_strength: L2 shrinkage strength (>= 0), applied through
            the gradient. Defaults to 0.
        beta: Float, the FTRL beta. Defaults to 0.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).
    """

    supports_host_scalars = True  # nothing but the learning rate depends on the step

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        _check_non_negative("initial_accumulator_value", initial_accumulator_value)
        if learning_rate_power > 0.0:
            raise ValueError("`learning_rate_power` needs to be negative or zero. Received: "
                             f"learning_rate_power={learning_rate_power}.")
        _check_non_negative("l1_regularization_strength", l1_regularization_strength)
        _check_non_negative("l2_regularization_strength", l2_regularization_strength)
        _check_non_negative("l2_shrinkage_regularization_strength",
                            l2_shrinkage_regularization_strength)
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def _slot_groups(self):
        return [[("accumulator", self.initial_accumulator_value), ("linear", 0.0)]]

    def _update(self, params, grads, slots, lr, t) -> None:
        accumulators, linears = slots["accumulator"], slots["linear"]
        power = -self.learning_rate_power
        l1 = self.l1_regularization_strength
        l2 = self.l2_regularization_strength + (self.beta / (2.0 * lr) if self.beta else 0.0)
        new_accumulators = torch._foreach_addcmul(accumulators, grads, grads)
        new_powers = torch._foreach_pow(new_accumulators, power)
        sigmas = torch._foreach_sub(new_powers, torch._foreach_pow(accumulators, power))
        torch._foreach_div_(sigmas, lr)
        torch._foreach_add_(linears, grads)
        if self.l2_shrinkage_regularization_strength:
            torch._foreach_add_(linears, params,
                                alpha=2 * self.l2_shrinkage_regularization_strength)
        torch._foreach_sub_(linears, torch._foreach_mul(sigmas, params))
        quadratics = torch._foreach_div(new_powers, lr)
        torch._foreach_add_(quadratics, 2 * l2)
        values = torch._foreach_clamp_min(linears, -l1)
        torch._foreach_clamp_max_(values, l1)
        torch._foreach_sub_(values, linears)
        torch._foreach_div_(values, quadratics)
        torch._foreach_copy_(params, values)
        torch._foreach_copy_(accumulators, new_accumulators)

    def get_config(self) -> dict:
        return {**super().get_config(),
                "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta}
