"""The Adam family: `Adam`, `AdamW`, `Adamax` and `Nadam`, with Keras 3's maths."""
from __future__ import annotations

import torch

from kestrel.optimizers import foreach
from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin


@register_builtin("optimizers", "adam")
class Adam(Optimizer):
    """Adam: adaptive moments with Keras' epsilon placement.

    Keras computes `alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)` and
    `w -= alpha * m / (sqrt(v) + epsilon)`: epsilon is added to the *uncorrected* `sqrt(v)`.
    In eager mode on CPU/CUDA this runs torch's fused Adam(W) kernel with the equivalent
    per-step `eps = epsilon / sqrt(1 - beta_2**t)`, which is the same formula rearranged
    (agreement to float32 rounding, a few ulps after many steps); elsewhere (and under
    `torch.compile`) it runs the formula above with `torch._foreach_*` ops.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_1: Decay rate of the first-moment estimate. Defaults to 0.9.
        beta_2: Decay rate of the second-moment estimate. Defaults to 0.999.
        epsilon: Small constant for numerical stability. Defaults to 1e-7.
        amsgrad: Whether to use the AMSGrad variant (the running maximum of `v`).
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).
    """

    supports_host_scalars = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad
        self._alpha_t = None  # this step's alpha, filled on the host for whole compiled steps

    def _slot_groups(self):
        groups = [[("momentum", 0.0), ("velocity", 0.0)]]
        return groups + [[("velocity_hat", 0.0)]] if self.amsgrad else groups

    def _update_step(self, params, grads, slots, lr, t) -> None:
        if not self._fusable or isinstance(t, torch.Tensor) or isinstance(lr, torch.Tensor) \
                or self._exclude_ids or self._exclude_pattern is not None:
            super()._update_step(params, grads, slots, lr, t)
            return
        kernel = torch._fused_adam_ if self.weight_decay is None else torch._fused_adamw_
        kernel(params, grads, slots["momentum"], slots["velocity"],
               slots.get("velocity_hat", []), [self._step_t] * len(params),
               lr=lr, beta1=self.beta_1, beta2=self.beta_2,
               weight_decay=self.weight_decay or 0.0,
               eps=self.epsilon / (1 - self.beta_2 ** t) ** 0.5,
               amsgrad=self.amsgrad, maximize=False)

    def _update(self, params, grads, slots, lr, t) -> None:
        momentums, velocities = slots["momentum"], slots["velocity"]
        torch._foreach_lerp_(momentums, grads, 1 - self.beta_1)
        torch._foreach_mul_(velocities, self.beta_2)
        torch._foreach_addcmul_(velocities, grads, grads, 1 - self.beta_2)
        if self.amsgrad:
            torch._foreach_maximum_(slots["velocity_hat"], velocities)
            velocities = slots["velocity_hat"]
        denominators = torch._foreach_sqrt(velocities)
        torch._foreach_add_(denominators, self.epsilon)
        alpha = self._alpha_t if self._host_scalars else self._alpha(lr, t)
        foreach.addcdiv_(params, momentums, denominators, -alpha)

    def _alpha(self, lr, t):
        """Keras' bias-corrected step size `lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`."""
        return lr * (1 - self.beta_2 ** t) ** 0.5 / (1 - self.beta_1 ** t)

    def _fill_host_scalars(self, lr: float, t: int) -> None:
        alpha = self._alpha(lr, t)
        if self._alpha_t is None or self._alpha_t.device != self._lr_t.device:
            self._alpha_t = torch.tensor(alpha, device=self._lr_t.device)
        else:
            self._alpha_t.fill_(alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


@register_builtin("optimizers", "adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (`var -= var * weight_decay * lr` before each update).

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        weight_decay: The decay rate; required. Defaults to 0.004.
        beta_1: Decay rate of the first-moment estimate. Defaults to 0.9.
        beta_2: Decay rate of the second-moment estimate. Defaults to 0.999.
        epsilon: Small constant for numerical stability. Defaults to 1e-7.
        amsgrad: Whether to use the AMSGrad variant.
        **kwargs: The base `Optimizer` arguments (`clipnorm`, `name`, ...).
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, **kwargs)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")


@register_builtin("optimizers", "adamax")
class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm, `u = max(beta_2 * u, |g|)`.

    Update: `w -= lr * m / ((1 - beta_1**t) * (u + epsilon))`.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_1: Decay rate of the first-moment estimate. Defaults to 0.9.
        beta_2: Decay rate of the infinity norm. Defaults to 0.999.
        epsilon: Small constant for numerical stability. Defaults to 1e-7.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _slot_groups(self):
        return [[("momentum", 0.0), ("norm", 0.0)]]

    def _update(self, params, grads, slots, lr, t) -> None:
        momentums, norms = slots["momentum"], slots["norm"]
        torch._foreach_lerp_(momentums, grads, 1 - self.beta_1)
        torch._foreach_mul_(norms, self.beta_2)
        torch._foreach_maximum_(norms, torch._foreach_abs(grads))
        denominators = torch._foreach_add(norms, self.epsilon)
        foreach.addcdiv_(params, momentums, denominators, -lr / (1 - self.beta_1 ** t))

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


@register_builtin("optimizers", "nadam")
class Nadam(Optimizer):
    """Nadam: Adam with Nesterov momentum, scheduled as `beta_1 * (1 - 0.5 * 0.96**t)` (Keras).

    Besides the per-parameter momentum and velocity, the optimizer keeps `u_product`, the
    running product of that schedule (the last of its `variables`, as in Keras).

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_1: Decay rate of the first-moment estimate. Defaults to 0.9.
        beta_2: Decay rate of the second-moment estimate. Defaults to 0.999.
        epsilon: Small constant for numerical stability. Defaults to 1e-7.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _slot_groups(self):
        return [[("momentum", 0.0), ("velocity", 0.0)]]

    def _build_extra_state(self, device) -> None:
        self._u_product = 1.0  # host copy for eager steps; the tensor is the saved state
        self._u_product_t = torch.ones((), dtype=self._params[0].dtype, device=device)

    def _extra_state(self):
        return [("u_product", self._u_product_t)]

    def _sync_host(self) -> None:
        super()._sync_host()
        self._u_product = float(self._u_product_t.item())

    def _follow_params(self) -> None:
        super()._follow_params()
        self._u_product_t = self._u_product_t.to(self._params[0].device)

    def _update_step(self, params, grads, slots, lr, t) -> None:
        self._begin_update_steps(t)
        super()._update_step(params, grads, slots, lr, t)

    def _begin_update_steps(self, t) -> None:
        """Advance `u_product` once per step, before the variables' updates (as Keras)."""
        u_t = self.beta_1 * (1.0 - 0.5 * 0.96 ** t)
        if isinstance(t, torch.Tensor):
            self._u_product_t.mul_(u_t)
        else:  # rounded to the state's dtype, so that saved state resumes bit-exactly
            value = torch.tensor(self._u_product * u_t, dtype=self._u_product_t.dtype)
            self._u_product = value.item()
            self._u_product_t.fill_(self._u_product)

    def _update(self, params, grads, slots, lr, t) -> None:
        u_t = self.beta_1 * (1.0 - 0.5 * 0.96 ** t)
        u_next = self.beta_1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        u_product = self._u_product_t if isinstance(t, torch.Tensor) else self._u_product
        momentums, velocities = slots["momentum"], slots["velocity"]
        torch._foreach_lerp_(momentums, grads, 1 - self.beta_1)
        torch._foreach_mul_(velocities, self.beta_2)
        torch._foreach_addcmul_(velocities, grads, grads, 1 - self.beta_2)
        denominators = torch._foreach_sqrt(velocities)  # sqrt(v_hat) = sqrt(v) / sqrt(1 - b2**t)
        torch._foreach_mul_(denominators, (1 - self.beta_2 ** t) ** -0.5)
        torch._foreach_add_(denominators, self.epsilon)
        foreach.addcdiv_(params, momentums, denominators,
                         -lr * u_next / (1 - u_product * u_next))
        foreach.addcdiv_(params, grads, denominators, -lr * (1 - u_t) / (1 - u_product))

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
