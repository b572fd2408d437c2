"""Dynamic loss scaling for `mixed_float16` training, with Keras' LossScaleOptimizer defaults.

The loss is multiplied by `scale` before backward so that small float16 gradients survive;
gradients are unscaled before the update. A step with non-finite gradients is skipped and the
scale halved; after `dynamic_growth_steps` good steps in a row the scale doubles.
"""
from __future__ import annotations

import torch


class LossScaler:
    """Args: initial_scale (default 2**15), dynamic_growth_steps (default 2000)."""

    def __init__(self, initial_scale: float = 2.0 ** 15, dynamic_growth_steps: int = 2000):
        if initial_scale <= 0 or dynamic_growth_steps < 1:
            raise ValueError(
                "LossScaler needs initial_scale > 0 and dynamic_growth_steps >= 1. Received: "
                f"initial_scale={initial_scale}, dynamic_growth_steps={dynamic_growth_steps}")
        self.scale = float(initial_scale)
        self.dynamic_growth_steps = int(dynamic_growth_steps)
        self._good_steps = 0

    def unscale(self, params) -> bool:
        """Divide the gradients by the scale in place; True when all of them are finite."""
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return True
        found_inf = torch.zeros(1, device=grads[0].device)
        inverse = torch.full((1,), 1.0 / self.scale, device=grads[0].device)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inverse)
        finite = not bool(found_inf.item())  # one host sync per step, as torch's GradScaler
        self._update(finite)
        return finite

    def _update(self, finite: bool) -> None:
        if not finite:
            self.scale /= 2.0
            self._good_steps = 0
            return
        self._good_steps += 1
        if self._good_steps >= self.dynamic_growth_steps:
            self.scale *= 2.0
            self._good_steps = 0
