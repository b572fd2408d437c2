"""`Adafactor`: second moments factored into row and column statistics (Keras 3's maths)."""
from __future__ import annotations

import torch

from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean().sqrt()


@register_builtin("optimizers", "adafactor")
class Adafactor(Optimizer):
    """Adafactor: memory-light adaptive rates with relative step sizes and update clipping.

    For a variable of rank >= 2 the last two axes are factored: `r` (row means) and `c`
    (column means) of `g**2 + epsilon_1` replace the full second moment. State per variable,
    in Keras' order: `r`, `c` (0-d placeholders for rank < 2), then `velocity`.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        beta_2_decay: Decay exponent of the second moment, `beta_2 = 1 - t**beta_2_decay`.
            Defaults to -0.8.
        epsilon_1: Added to squared gradients. Defaults to 1e-30.
        epsilon_2: Lower bound of the parameter scale. Defaults to 1e-3.
        clip_threshold: Updates are scaled down to this RMS. Defaults to 1.0.
        relative_step: With a float rate, use `min(lr, 1 / sqrt(t))`. Defaults to True.
        **kwargs: The base `Optimizer` arguments (`weight_decay`, `clipnorm`, `name`, ...).

    Example: `kestrel.optimizers.Adafactor(learning_rate=0.01)`.
    """

    def __init__(self, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30,
                 epsilon_2=1e-3, clip_threshold=1.0, relative_step=True, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_2_decay = beta_2_decay
        self.epsilon_1 = epsilon_1
        self.epsilon_2 = epsilon_2
        self.clip_threshold = clip_threshold
        self.relative_step = relative_step

    def _build_extra_state(self, device) -> None:
        for i, p in enumerate(self._params):
            if p.ndim < 2:
                r, c = (torch.zeros((), dtype=p.dtype, device=p.device) for _ in range(2))
            else:
                r = p.new_zeros(p.shape[:-1], requires_grad=False)
                c = p.new_zeros(p.shape[:-2] + p.shape[-1:], requires_grad=False)
            velocity = torch.zeros_like(p, requires_grad=False)
            for name, tensor in (("r", r), ("c", c), ("velocity", velocity)):
                self._slots.setdefault(name, []).append(tensor)
                self._slot_order.append((i, name))

    def _update_step(self, params, grads, slots, lr, t) -> None:
        self._decay_(params, lr, self.weight_decay)
        self._update(params, grads, slots, lr, t)

    def _update(self, params, grads, slots, lr, t) -> None:
        if self._lr_is_float and self.relative_step:
            lr = min(lr, t ** -0.5)
        rho = min(lr, t ** -0.5)
        beta = 1.0 - t ** self.beta_2_decay
        for p, g, r, c, v in zip(params, grads, slots["r"], slots["c"], slots["velocity"]):
            alpha = torch.clamp(_rms(p), min=self.epsilon_2) * rho
            squared = g.square().add_(self.epsilon_1)
            if p.ndim >= 2:
                r.mul_(beta).add_(squared.mean(-1), alpha=1 - beta)
                c.mul_(beta).add_(squared.mean(-2), alpha=1 - beta)
                v.copy_((r / r.mean(-1, keepdim=True)).unsqueeze(-1) * c.unsqueeze(-2))
            else:
                v.mul_(beta).add_(squared, alpha=1 - beta)
            update = g / v.sqrt()
            update /= torch.clamp(_rms(update) / self.clip_threshold, min=1.0)
            p.sub_(alpha * update)

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_2_decay": self.beta_2_decay,
                "epsilon_1": self.epsilon_1, "epsilon_2": self.epsilon_2,
                "clip_threshold": self.clip_threshold, "relative_step": self.relative_step}
