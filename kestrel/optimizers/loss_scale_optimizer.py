"""`LossScaleOptimizer`: Keras 3's dynamic loss scaling around an inner optimizer."""
from __future__ import annotations

import numpy as np
import torch

from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object
from kestrel.variables import wrap

_BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None,
                  "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
                  "ema_overwrite_frequency": None, "loss_scale_factor": None,
                  "gradient_accumulation_steps": None}


def _all_finite(grads) -> bool:
    grads = [g for g in grads if g is not None]
    return not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


@register_builtin("optimizers", "lossscaleoptimizer")
class LossScaleOptimizer(Optimizer):
    """Scales the loss by `dynamic_scale` and unscales the gradients before the inner update.

    A step whose gradients are not all finite is skipped and halves the scale; after
    `dynamic_growth_steps` finite steps in a row the scale doubles. Call
    `scale_loss(loss)` before `backward()` (as Keras' trainers do).

    Args:
        inner_optimizer: The `Optimizer` that applies the unscaled gradients.
        initial_scale: The first loss scale. Defaults to 2**15.
        dynamic_growth_steps: Finite steps before the scale doubles. Defaults to 2000.
        name: The optimizer's name.

    Example: `LossScaleOptimizer(kestrel.optimizers.SGD(0.1), initial_scale=1024.0)`.
    """

    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps=2000,
                 name=None, **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError("LossScaleOptimizer no longer supports `dynamic=False`. Instead, "
                             "set `loss_scale_factor` directly on the `inner_optimizer`.")
        for arg, default in _BASE_DEFAULTS.items():
            if arg in kwargs and kwargs.pop(arg) != default:
                raise ValueError(f"LossScaleOptimizer does not support `{arg}`. Instead, set "
                                 f"`{arg}` on the `inner_optimizer`.")
        if kwargs:
            raise ValueError(f"LossScaleOptimizer does not support arguments: "
                             f"`{'`, `'.join(kwargs)}`.")
        if not isinstance(inner_optimizer, Optimizer):
            raise TypeError("LossScaleOptimizer: `inner_optimizer` must be an Optimizer. "
                            f"Received: inner_optimizer={type(inner_optimizer).__name__}")
        super().__init__(0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.inner_optimizer.loss_scale_factor = None
        self.initial_scale = initial_scale
        self.dynamic_growth_steps = dynamic_growth_steps
        self.dynamic_scale = float(np.float32(initial_scale))
        self.step_counter = 0

    def build(self, params) -> None:
        self.inner_optimizer.build(params)
        self._params = self.inner_optimizer._params
        self._index = self.inner_optimizer._index
        self.built = True

    @property
    def learning_rate(self) -> float:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self.inner_optimizer.learning_rate = value

    @property
    def iterations(self) -> int:
        return self.inner_optimizer.iterations

    def scale_loss(self, loss):
        """`loss` times the current dynamic scale."""
        return loss * self.dynamic_scale

    @torch.no_grad()
    def step(self) -> None:
        """Unscale the parameters' `.grad` and step the inner optimizer, or skip the step."""
        grads = [p.grad for p in self._params if p.grad is not None]
        if grads and len({g.device for g in grads}) == 1:
            # one fused kernel checks and unscales; one host sync per step, as torch's GradScaler
            found_inf = torch.zeros(1, device=grads[0].device)
            inverse = torch.full((1,), 1.0 / self.dynamic_scale, device=grads[0].device)
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inverse)
            if self._next_scale(not bool(found_inf.item())):
                self.inner_optimizer.step()
            return
        scale = self._update_scale(grads)
        if scale is not None:
            torch._foreach_div_(grads, scale)
            self.inner_optimizer.step()

    def apply(self, grads, trainable_variables=None):
        """Apply `grads / dynamic_scale` through the inner optimizer when all are finite."""
        if not self.built:
            self.build(trainable_variables)
        grads = list(grads)
        scale = self._update_scale(grads)
        if scale is not None:
            self.inner_optimizer.apply([None if g is None else torch.as_tensor(g) / scale
                                        for g in grads], trainable_variables)

    def _update_scale(self, grads) -> float | None:
        """Keras' scale update for one step: the scale that unscales these gradients, or
        None when they are not all finite (the step is skipped)."""
        scale = self.dynamic_scale
        return scale if self._next_scale(_all_finite(grads)) else None

    def _next_scale(self, finite: bool) -> bool:
        """Keras' dynamic scale update after a step whose gradients were (not) all finite;
        returns `finite` (whether the step is applied)."""
        if not finite:
            self.step_counter, self.dynamic_scale = 0, self.dynamic_scale * 0.5
        elif self.step_counter == self.dynamic_growth_steps - 1:
            self.step_counter, self.dynamic_scale = 0, self.dynamic_scale * 2.0
        else:
            self.step_counter += 1
        return finite

    # ------------------------------------------------------------------ state
    @property
    def variables(self) -> list[torch.Tensor]:
        """Keras' order: iteration, learning_rate, step_counter, dynamic_scale (copies), then
        the inner optimizer's."""
        own = [wrap(torch.tensor(t), trainable=False, name=name, path=f"{self.name}/{name}")
               for name, t in zip(("iteration", "learning_rate", "step_counter",
                                   "dynamic_scale"), self._own_weights())]
        return own + self.inner_optimizer.variables

    def _own_weights(self) -> list[np.ndarray]:
        return [np.array(0, np.int32), np.array(0.0, np.float32),
                np.array(self.step_counter, np.int32), np.array(self.dynamic_scale, np.float32)]

    def get_weights(self) -> list[np.ndarray]:
        return self._own_weights() + self.inner_optimizer.get_weights()

    def set_weights(self, weights) -> None:
        weights = list(weights)
        self.step_counter = int(np.asarray(weights[2]))
        self.dynamic_scale = float(np.asarray(weights[3]))
        self.inner_optimizer.set_weights(weights[4:])

    def state_dict(self) -> dict:
        return {"step_counter": self.step_counter, "dynamic_scale": self.dynamic_scale,
                "inner": self.inner_optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.step_counter = int(state_dict["step_counter"])
        self.dynamic_scale = float(state_dict["dynamic_scale"])
        self.inner_optimizer.load_state_dict(state_dict["inner"])

    def get_config(self) -> dict:
        return {"name": self.name,
                "inner_optimizer": serialize_keras_object(self.inner_optimizer, "optimizers"),
                "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        config = dict(config)
        config["inner_optimizer"] = deserialize_keras_object(
            config["inner_optimizer"], "optimizers", custom_objects)
        return cls(**config)
