"""Keras 3's `gradient_accumulation_steps`: sum `n` micro-batches' gradients, update once.

Each call to `apply`/`step` is one micro-step. The gradients (already divided by
`loss_scale_factor`) are added to a per-variable `gradient_accumulator`; on every `n`-th
micro-step the average `(g + accumulator) / n` is clipped and applied (weight decay, the
update), and all accumulators are reset. As in Keras:

- the optimizer's `iteration` variable (`variables[0]`, saved state) counts micro-steps;
  `iterations` is `micro_steps // n`, the number of updates (the bias-correction step);
- learning-rate schedules are called with the micro-step count;
- the moving average (`use_ema`) is folded in after every micro-step, its first-step copy
  and `ema_overwrite_frequency` both counted in updates;
- the accumulators follow the moving averages, before the optimizer's own slots.
"""
from __future__ import annotations

import numbers

import torch

ACCUMULATOR = "gradient_accumulator"


def check_steps(owner: str, steps) -> None:
    """Keras' rule: `gradient_accumulation_steps` is None or an integer >= 2."""
    if steps is None:
        return
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
        raise ValueError(f"{owner}: `gradient_accumulation_steps` must be an integer >= 2. "
                         f"Received: gradient_accumulation_steps={steps!r}")


class GradientAccumulation:
    """Mixin of `Optimizer`: the micro-step count and the accumulating `_apply` branch."""

    _micro_steps = 0  # calls to apply/step so far (Keras' `iteration` variable when n is set)

    def _accumulator_groups(self) -> list[list[tuple[str, float]]]:
        """The accumulators' slot group, when accumulation is on (created before the slots)."""
        return [[(ACCUMULATOR, 0.0)]] if self.gradient_accumulation_steps else []

    def _iteration_variable(self) -> int:
        """The value of Keras' `iteration` variable: micro-steps with accumulation, else steps."""
        return self._micro_steps if self.gradient_accumulation_steps else int(self.iterations)

    def _set_iteration_variable(self, value: int) -> None:
        steps = self.gradient_accumulation_steps
        self.iterations = value // steps if steps else value
        self._micro_steps = value

    def _schedule_step(self) -> int:
        """The step a learning-rate schedule sees: micro-steps with accumulation (as Keras)."""
        return self._micro_steps if self.gradient_accumulation_steps else int(self.iterations)

    def _accumulate(self, params, grads, slots, lr) -> None:
        """One micro-step: add `grads` to their accumulators, or on every n-th micro-step
        apply the average of the accumulated gradients and reset the accumulators."""
        self._load_pending_state()
        steps, micro = self.gradient_accumulation_steps, self._micro_steps
        accumulators = slots[ACCUMULATOR]
        if (micro + 1) % steps:
            torch._foreach_add_(accumulators, grads)
            if self.use_ema:  # every micro-step, as Keras; no parameter changed since the last
                self._update_ema(micro // steps + 1)
        else:
            averages = torch._foreach_add(grads, accumulators)
            torch._foreach_div_(averages, steps)
            torch._foreach_zero_(self._slots[ACCUMULATOR])
            self._clip_and_update(params, averages, slots, lr, compiling=False)
        self._micro_steps = micro + 1
