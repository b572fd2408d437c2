"""Per-coordinate adaptive rates: `RMSprop`, `Adagrad` and `Adadelta`, with Keras 3's maths."""
from __future__ import annotations

import torch

from kestrel.optimizers import foreach
from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin


@register_builtin("optimizers", "rmsprop")
class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running root mean square.

    Keras' update: `v = rho * v + (1 - rho) * g**2`; `w -= lr * g / sqrt(v + epsilon)` (epsilon
    inside the root; centered: `sqrt(v - mean_g**2 + epsilon)`); with momentum the increment
    feeds `mom = momentum * mom + increment` and `w -= mom`.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        rho: Discount factor of the squared-gradient average. Defaults to 0.9.
        momentum: Momentum factor; 0 disables it. Defaults to 0.
        epsilon: Small constant for numerical stability. Defaults to 1e-7.
        centered: Whether to normalize by the estimated gradient variance.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).
    """

    supports_host_scalars = True  # nothing but the learning rate depends on the step

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def _slot_groups(self):
        groups = [[("velocity", 0.0)]]
        if self.momentum > 0:
            groups.append([("momentum", 0.0)])
        if self.centered:
            groups.append([("average_gradient", 0.0)])
        return groups

    def _update(self, params, grads, slots, lr, t) -> None:
        velocities = slots["velocity"]
        torch._foreach_mul_(velocities, self.rho)
        torch._foreach_addcmul_(velocities, grads, grads, 1 - self.rho)
        if self.centered:
            averages = slots["average_gradient"]
            torch._foreach_mul_(averages, self.rho)
            torch._foreach_add_(averages, grads, alpha=1 - self.rho)
            denominators = torch._foreach_addcmul(velocities, averages, averages, -1)
            torch._foreach_add_(denominators, self.epsilon)
        else:
            denominators = torch._foreach_add(velocities, self.epsilon)
        torch._foreach_sqrt_(denominators)
        if self.momentum > 0:
            momentums = slots["momentum"]
            torch._foreach_mul_(momentums, self.momentum)
            foreach.addcdiv_(momentums, grads, denominators, lr)
            torch._foreach_sub_(params, momentums)
        else:
            foreach.addcdiv_(params, grads, denominators, -lr)

    def get_config(self) -> dict:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


@register_builtin("optimizers", "adagrad")
class Adagrad(Optimizer):
    """Adagrad: `acc += g**2`; `w -= lr * g / sqrt(acc + epsilon)`.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        initial_accumulator_value: Starting value of the accumulators. Defaults to 0.1.
        epsilon: Small constant for numerical stability. Defaults to 1e-7.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).
    """

    supports_host_scalars = True  # nothing but the learning rate depends on the step

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _slot_groups(self):
        return [[("accumulator", self.initial_accumulator_value)]]

    def _update(self, params, grads, slots, lr, t) -> None:
        accumulators = slots["accumulator"]
        torch._foreach_addcmul_(accumulators, grads, grads)
        denominators = torch._foreach_add(accumulators, self.epsilon)
        torch._foreach_sqrt_(denominators)
        foreach.addcdiv_(params, grads, denominators, -lr)

    def get_config(self) -> dict:
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


@register_builtin("optimizers", "adadelta")
class Adadelta(Optimizer):
    """Adadelta: steps scaled by the ratio of running RMS of updates and of gradients.

    Keras' update: `acc_g = rho * acc_g + (1 - rho) * g**2`;
    `delta = -sqrt(acc_d + eps) * g / sqrt(acc_g + eps)`;
    `acc_d = rho * acc_d + (1 - rho) * delta**2`; `w += lr * delta`.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        rho: Decay rate of the running averages. Defaults to 0.95.
        epsilon: Small constant for numerical stability. Defaults to 1e-7.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).
    """

    supports_host_scalars = True  # nothing but the learning rate depends on the step

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def _slot_groups(self):
        return [[("accumulated_grad", 0.0), ("accumulated_delta_var", 0.0)]]

    def _update(self, params, grads, slots, lr, t) -> None:
        acc_grads, acc_deltas = slots["accumulated_grad"], slots["accumulated_delta_var"]
        torch._foreach_mul_(acc_grads, self.rho)
        torch._foreach_addcmul_(acc_grads, grads, grads, 1 - self.rho)
        steps = torch._foreach_add(acc_deltas, self.epsilon)  # becomes -delta
        torch._foreach_sqrt_(steps)
        torch._foreach_mul_(steps, grads)
        grad_rms = torch._foreach_add(acc_grads, self.epsilon)
        torch._foreach_sqrt_(grad_rms)
        torch._foreach_div_(steps, grad_rms)
        torch._foreach_mul_(acc_deltas, self.rho)
        torch._foreach_addcmul_(acc_deltas, steps, steps, 1 - self.rho)
        foreach.add_scaled_(params, steps, -lr)

    def get_config(self) -> dict:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
