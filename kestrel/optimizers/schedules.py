"""Learning-rate schedules: the learning rate as a function of the optimizer step.

As Keras 3, calling a schedule returns a 0-d float32 tensor, for a number or a tensor step.
Optimizers read a built-in schedule through `rate_at` instead: a Python float for a number
step (no tensor built each step), a tensor built from torch ops for a tensor step (which
`torch.compile` can trace).
"""
from __future__ import annotations

import math
import sys

import torch

from kestrel import config
from kestrel.registry.object_registry import register_builtin
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


def _is_tensor(x) -> bool:
    return isinstance(x, torch.Tensor)


def _as_float(step):
    return step.to(torch.float32) if _is_tensor(step) else float(step)


def _floor(x):
    return torch.floor(x) if _is_tensor(x) else float(math.floor(x))


def _minimum(x, bound: float):
    return torch.clamp(x, max=bound) if _is_tensor(x) else min(x, bound)


def _cos(x):
    return torch.cos(x) if _is_tensor(x) else math.cos(x)


def _check_decay_steps(name: str, value) -> None:
    if value <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")


class LearningRateSchedule:
    """Base class: `schedule(step)` returns the learning rate to use at optimizer step `step`.

    Subclasses implement `__call__(step)` and `get_config()`.
    """

    def __call__(self, step):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`.")

    def get_config(self) -> dict:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in "
            "order to be serializable.")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class _BuiltinSchedule(LearningRateSchedule):
    """A schedule whose rate `_rate(step)` is a float for a number step, a tensor for a tensor."""

    def __call__(self, step):
        rate = self._rate(step)
        if _is_tensor(rate):
            return rate.to(torch.float32)
        return torch.tensor(rate, dtype=torch.float32, device=config.device())


def rate_at(schedule, step):
    """The rate an optimizer uses at `step`: a built-in schedule's `_rate` (a Python float for a
    number step), unless a subclass overrides `__call__`; any other schedule's `__call__`."""
    if type(schedule).__call__ is _BuiltinSchedule.__call__:
        return schedule._rate(step)
    return schedule(step)


class _StaircaseDecay(_BuiltinSchedule):
    """Shared arguments of the decays driven by `step / decay_steps` (floored if `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name=None):
        _check_decay_steps("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name or type(self).__name__

    def _progress(self, step):
        p = _as_float(step) / self.decay_steps
        return _floor(p) if self.staircase else p

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


@register_builtin("schedules")
class ExponentialDecay(_StaircaseDecay):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)` (floored if `staircase`).

    Example:
    >>> ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(20)
    tensor(0.0250)
    """

    def _rate(self, step):
        return self.initial_learning_rate * float(self.decay_rate) ** self._progress(step)


@register_builtin("schedules")
class PiecewiseConstantDecay(_BuiltinSchedule):
    """`values[0]` while `step <= boundaries[0]`, `values[i]` on `(boundaries[i-1], boundaries[i]]`.

    Example:
    >>> PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])(15)
    tensor(0.5000)
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def _rate(self, step):
        if _is_tensor(step):  # a sum of masked values: no data-dependent indexing to trace
            result = (step <= self.boundaries[0]) * float(self.values[0])
            for low, high, value in zip(self.boundaries, self.boundaries[1:], self.values[1:]):
                result = result + ((step > low) & (step <= high)) * float(value)
            return result + (step > self.boundaries[-1]) * float(self.values[-1])
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return float(value)
        return float(self.values[-1])

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


@register_builtin("schedules")
class PolynomialDecay(_BuiltinSchedule):
    """Decay from `initial_learning_rate` to `end_learning_rate` by `(1 - step/decay_steps)**power`.

    With `cycle=True` the decay restarts with a longer horizon (a multiple of `decay_steps`);
    otherwise the rate stays at `end_learning_rate` after `decay_steps`.

    Example:
    >>> PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0)(5)
    tensor(0.5000)
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        _check_decay_steps("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def _rate(self, step):
        step = _as_float(step)
        decay_steps = float(self.decay_steps)
        if not self.cycle:
            step = _minimum(step, decay_steps)
        elif _is_tensor(step):
            decay_steps = decay_steps * torch.where(step == 0, 1.0, torch.ceil(step / decay_steps))
        elif step != 0:
            decay_steps = decay_steps * math.ceil(step / decay_steps)
        p = step / decay_steps
        span = self.initial_learning_rate - self.end_learning_rate
        return span * (1 - p) ** self.power + self.end_learning_rate

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


@register_builtin("schedules")
class InverseTimeDecay(_StaircaseDecay):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)` (floored if `staircase`).

    Example:
    >>> InverseTimeDecay(1.0, decay_steps=1, decay_rate=0.5)(2)
    tensor(0.5000)
    """

    def _rate(self, step):
        return self.initial_learning_rate / (1 + self.decay_rate * self._progress(step))


def _cosine(fraction, alpha: float):
    """`(1 - alpha) * 0.5 * (1 + cos(pi * fraction)) + alpha`."""
    return (1 - alpha) * (0.5 * (1.0 + _cos(math.pi * fraction))) + alpha


@register_builtin("schedules")
class CosineDecay(_BuiltinSchedule):
    """Cosine decay over `decay_steps` down to `alpha * initial`, after an optional linear warmup.

    With `warmup_target` set, the rate rises linearly from `initial_learning_rate` to
    `warmup_target` over `warmup_steps`, then decays from `warmup_target`.

    Example:
    >>> CosineDecay(1.0, decay_steps=10)(10)
    tensor(0.)
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        _check_decay_steps("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _rate(self, step):
        step = _as_float(step)
        if self.warmup_target is None:
            step = _minimum(step, float(self.decay_steps))
            return self.initial_learning_rate * _cosine(step / self.decay_steps, self.alpha)
        step = _minimum(step, float(self.decay_steps + self.warmup_steps))
        after = step - self.warmup_steps
        decayed = self.warmup_target * _cosine(after / self.decay_steps, self.alpha)
        if _is_tensor(step):  # both branches are computed; the unused one may divide by zero
            return torch.where(step < self.warmup_steps, self._warmup(step), decayed)
        return self._warmup(step) if step < self.warmup_steps else decayed

    def _warmup(self, step):
        span = self.warmup_target - self.initial_learning_rate
        return span * (step / self.warmup_steps) + self.initial_learning_rate

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


@register_builtin("schedules")
class CosineDecayRestarts(_BuiltinSchedule):
    """Cosine decay with warm restarts (SGDR): periods grow by `t_mul`, peaks scale by `m_mul`.

    Example:
    >>> CosineDecayRestarts(1.0, first_decay_steps=10)(10)
    tensor(1.)
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        _check_decay_steps("first_decay_steps", first_decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def _rate(self, step):
        fraction = _as_float(step) / self.first_decay_steps
        t_mul = float(self._t_mul)
        if t_mul == 1.0:
            restart = _floor(fraction)
            fraction = fraction - restart
        else:
            log = torch.log if _is_tensor(fraction) else math.log
            restart = _floor(log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul))
            done = (1.0 - t_mul ** restart) / (1.0 - t_mul)
            fraction = (fraction - done) / t_mul ** restart
        peak = float(self._m_mul) ** restart
        cosine = 0.5 * peak * (1.0 + _cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


def serialize(learning_rate_schedule) -> dict:
    """The Keras 3 config dict of a schedule."""
    return serialize_keras_object(learning_rate_schedule, "schedules")


def deserialize(config, custom_objects: dict | None = None):
    """Rebuild a schedule from its config dict."""
    return deserialize_keras_object(config, "schedules", custom_objects)


def __getattr__(name):
    if name == "learning_rate_schedule":  # keras-core's module path of these schedules
        return sys.modules[__name__]
    raise AttributeError(f"module 'kestrel.optimizers.schedules' has no attribute {name!r}")
