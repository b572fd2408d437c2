"""`Muon`: momentum orthogonalized by Newton-Schulz for matrices, AdamW for the rest."""
from __future__ import annotations

import re

import torch

from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin


@register_builtin("optimizers", "muon")
class Muon(Optimizer):
    """Muon (Keras 3.15's): 2-D variables follow the orthogonalized momentum, the others AdamW.

    A variable uses AdamW when it is not 2-D, when `exclude_embeddings` and its path contains
    "embedding", or when a regex of `exclude_layers` matches its path. State per variable in
    Keras' order: `momentum`, then `velocity` for the AdamW ones.

    Args:
        learning_rate: A float, a `LearningRateSchedule` or a callable. Defaults to 0.001.
        adam_beta_1, adam_beta_2: AdamW moment decay rates. Default to 0.9 and 0.999.
        adam_weight_decay: Weight decay of the AdamW variables. Defaults to 0.004.
        epsilon: AdamW's stability constant. Defaults to 1e-7.
        weight_decay: Weight decay of the Muon variables. Defaults to 0.004.
        exclude_layers: Regexes of variable paths that use AdamW. Defaults to None.
        exclude_embeddings: Whether embedding variables use AdamW. Defaults to True.
        muon_a, muon_b, muon_c: Newton-Schulz coefficients (3.4445, -4.7750, 2.0315).
        adam_lr_ratio: The AdamW learning rate relative to `learning_rate`. Defaults to 1.
        momentum: Muon's momentum. Defaults to 0.95.
        ns_steps: Newton-Schulz iterations. Defaults to 5.
        nesterov: Whether to use Nesterov momentum. Defaults to True.
        rms_rate: Scales updates by `sqrt(max(rows, cols)) * rms_rate`; None disables it.
            Defaults to 0.2.
        **kwargs: The base `Optimizer` arguments (`clipnorm`, `name`, ...).

    Example: `kestrel.optimizers.Muon(learning_rate=0.02, exclude_layers=["head"])`.
    """

    def __init__(self, learning_rate=0.001, adam_beta_1=0.9, adam_beta_2=0.999,
                 adam_weight_decay=0.004, epsilon=1e-7, weight_decay=0.004,
                 exclude_layers=None, exclude_embeddings=True, muon_a=3.4445, muon_b=-4.7750,
                 muon_c=2.0315, adam_lr_ratio=1, momentum=0.95, ns_steps=5, nesterov=True,
                 rms_rate=0.2, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)
        self.adam_beta_1 = adam_beta_1
        self.adam_beta_2 = adam_beta_2
        self.adam_weight_decay = adam_weight_decay
        self.epsilon = epsilon
        self.exclude_layers = list(exclude_layers or [])
        self.exclude_embeddings = exclude_embeddings
        self.muon_a, self.muon_b, self.muon_c = muon_a, muon_b, muon_c
        self.adam_lr_ratio = adam_lr_ratio
        self.momentum = momentum
        self.ns_steps = ns_steps
        self.nesterov = nesterov
        self.rms_rate = rms_rate

    def _should_use_adamw(self, variable) -> bool:
        """Whether `variable` follows AdamW rather than Muon (decided on its shape and path)."""
        if variable.ndim != 2:
            return True
        path = getattr(variable, "path", "")
        if self.exclude_embeddings and "embedding" in path.lower():
            return True
        return any(re.search(pattern, path) for pattern in self.exclude_layers)

    def _build_extra_state(self, device) -> None:
        self._adamw = [self._should_use_adamw(p) for p in self._params]
        for i, p in enumerate(self._params):
            names = ("momentum", "velocity") if self._adamw[i] else ("momentum",)
            for name in names:
                self._slots.setdefault(name, []).append(torch.zeros_like(p, requires_grad=False))
                self._slot_order.append((i, name))
            if not self._adamw[i]:  # a placeholder keeps the lists aligned with the params
                self._slots.setdefault("velocity", []).append(p.new_zeros(0))

    def _update_step(self, params, grads, slots, lr, t) -> None:
        adamw = {id(p) for p, use in zip(self._params, self._adamw) if use}
        self._decay_([p for p in params if id(p) in adamw], lr, self.adam_weight_decay)
        self._decay_([p for p in params if id(p) not in adamw], lr, self.weight_decay)
        self._update(params, grads, slots, lr, t)

    def _update(self, params, grads, slots, lr, t) -> None:
        for p, g, m, v in zip(params, grads, slots["momentum"], slots["velocity"]):
            if self._adamw[self._index[id(p)]]:
                self._adamw_update(p, g, m, v, lr * self.adam_lr_ratio, t)
            else:
                self._muon_update(p, g, m, lr)

    def _adamw_update(self, p, g, m, v, lr, t) -> None:
        alpha = lr * (1 - self.adam_beta_2 ** t) ** 0.5 / (1 - self.adam_beta_1 ** t)
        m.lerp_(g, 1 - self.adam_beta_1)
        v.mul_(self.adam_beta_2).addcmul_(g, g, value=1 - self.adam_beta_2)
        p.sub_(m * alpha / (v.sqrt() + self.epsilon))

    def _muon_update(self, p, g, m, lr) -> None:
        m.mul_(self.momentum).add_(g)
        direction = g + self.momentum * m if self.nesterov else m
        update = lr * self.zeropower_via_newtonschulz5(direction, self.ns_steps)
        if self.rms_rate is not None:
            update = update * max(update.shape[0], update.shape[1]) ** 0.5 * self.rms_rate
        p.sub_(update)

    def zeropower_via_newtonschulz5(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """An approximate orthogonalization `U V^T` of `x` by quintic Newton-Schulz steps."""
        if x.ndim < 2:
            raise ValueError("Muon: expected gradient or momentum to have at least 2 "
                             f"dimensions. Received: shape={tuple(x.shape)}")
        tall = x.shape[-2] > x.shape[-1]
        if tall:
            x = x.transpose(-2, -1)
        x = x / (torch.linalg.matrix_norm(x, keepdim=True) + 1e-7)
        for _ in range(steps):
            gram = x @ x.transpose(-2, -1)
            x = self.muon_a * x + (self.muon_b * gram + self.muon_c * gram @ gram) @ x
        return x.transpose(-2, -1) if tall else x

    def get_config(self) -> dict:
        return {**super().get_config(), "adam_beta_1": self.adam_beta_1,
                "adam_beta_2": self.adam_beta_2, "epsilon": self.epsilon,
                "exclude_layers": self.exclude_layers, "muon_a": self.muon_a,
                "muon_b": self.muon_b, "muon_c": self.muon_c,
                "adam_lr_ratio": self.adam_lr_ratio, "momentum": self.momentum,
                "ns_steps": self.ns_steps, "nesterov": self.nesterov,
                "exclude_embeddings": self.exclude_embeddings,
                "adam_weight_decay": self.adam_weight_decay, "rms_rate": self.rms_rate}
