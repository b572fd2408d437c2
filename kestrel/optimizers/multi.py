"""`OptimizerMap` and `MultiOptimizer`: different optimizers for different variables."""
from __future__ import annotations

import re
from collections.abc import MutableMapping

import numpy as np
import torch

from kestrel.optimizers.loss_scale_optimizer import LossScaleOptimizer
from kestrel.optimizers.optimizer import Optimizer
from kestrel.registry.object_registry import register_builtin
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object


def _check_inner(optimizer, what: str) -> None:
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"{what} must be a Keras Optimizer instance. "
                         f"Received: {type(optimizer).__name__}")
    if isinstance(optimizer, (LossScaleOptimizer, MultiOptimizer)):
        raise ValueError(f"{what} cannot be a {type(optimizer).__name__}.")


@register_builtin("optimizers")
class OptimizerMap(MutableMapping):
    """Variable paths (exact, else a `re.fullmatch` pattern) to optimizers, with a default.

    Args:
        default_optimizer: The optimizer of variables that no key matches.
        optimizer_map: A dict of path or pattern to optimizer.

    Example: `OptimizerMap(SGD(), {"encoder/.*": Adam()})["encoder/dense/kernel"]` is the Adam.
    """

    def __init__(self, default_optimizer, optimizer_map=None):
        if not isinstance(default_optimizer, Optimizer):
            raise TypeError("OptimizerMap: default_optimizer must be a Keras Optimizer "
                            f"instance. Received: {type(default_optimizer).__name__}")
        if optimizer_map is not None and not isinstance(optimizer_map, dict):
            raise TypeError("OptimizerMap: optimizer_map must be a dictionary. "
                            f"Received: {type(optimizer_map).__name__}")
        self._default_optimizer = default_optimizer
        self._optimizer_map = dict(optimizer_map or {})

    @property
    def default_optimizer(self) -> Optimizer:
        return self._default_optimizer

    def __getitem__(self, key: str) -> Optimizer:
        if key in self._optimizer_map:
            return self._optimizer_map[key]
        matches = [p for p in self._optimizer_map if re.fullmatch(p, key)]
        if len(matches) > 1:
            raise ValueError(f"Multiple optimizers assigned to variable {key}.")
        return self._optimizer_map[matches[0]] if matches else self._default_optimizer

    def __setitem__(self, key: str, optimizer: Optimizer) -> None:
        if key in self._optimizer_map:
            raise ValueError(f"'{key}' already exists in the OptimizerMap. Please make sure "
                             "to not use duplicated keys.")
        if not isinstance(key, str):
            raise ValueError(f"key must be a string. Received: {type(key).__name__}")
        _check_inner(optimizer, "optimizer")
        self._optimizer_map[key] = optimizer

    def __delitem__(self, key: str) -> None:
        del self._optimizer_map[key]

    def __len__(self) -> int:
        return len(self._optimizer_map)

    def __iter__(self):
        return iter(self._optimizer_map)

    def __call__(self, variable) -> Optimizer:
        return self[variable.path]

    def get_config(self) -> dict:
        return {"default_optimizer": serialize_keras_object(self._default_optimizer,
                                                            "optimizers"),
                "optimizer_map": {k: serialize_keras_object(v, "optimizers")
                                  for k, v in self._optimizer_map.items()}}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        def load(c):
            return deserialize_keras_object(c, "optimizers", custom_objects)

        return cls(load(config["default_optimizer"]),
                   {k: load(v) for k, v in (config.get("optimizer_map") or {}).items()})


@register_builtin("optimizers", "multioptimizer")
class MultiOptimizer(Optimizer):
    """Delegates each variable to the optimizer that `optimizer_map(variable)` returns.

    Args:
        optimizer_map: An `OptimizerMap`, or a callable from a variable to an optimizer.
        loss_scale_factor: Overrides the sub-optimizers' `loss_scale_factor`.
        name: The optimizer's name.

    Example: `model.compile(optimizer=MultiOptimizer(OptimizerMap(SGD(), {"enc.*": Adam()})))`.
    """

    def __init__(self, optimizer_map, loss_scale_factor=None, name=None):
        super().__init__(0.0, loss_scale_factor=loss_scale_factor, name=name)
        self._optimizer_map = optimizer_map
        self._inner_optimizers: list[Optimizer] = []
        candidates = list(getattr(optimizer_map, "values", lambda: [])())
        default = getattr(optimizer_map, "default_optimizer", None)
        for optimizer in candidates + ([default] if default is not None else []):
            self._adopt(optimizer)

    def _adopt(self, optimizer: Optimizer) -> None:
        if all(optimizer is not o for o in self._inner_optimizers):
            optimizer.loss_scale_factor = self.loss_scale_factor
            self._inner_optimizers.append(optimizer)

    @property
    def optimizers(self) -> list[Optimizer]:
        return self._inner_optimizers

    @property
    def learning_rate(self):
        raise AttributeError("Learning rate cannot be accessed on a MultiOptimizer. Access "
                             "the learning rate on the individual sub-optimizers instead.")

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if hasattr(self, "_inner_optimizers"):
            raise AttributeError("Learning rate cannot be set on a MultiOptimizer. Set the "
                                 "learning rate on the individual sub-optimizers instead.")
        self._set_learning_rate(value)

    def build(self, params) -> None:
        if self.built:
            return
        self._params = list(params)
        self._index = {id(p): i for i, p in enumerate(self._params)}
        groups: dict[int, list] = {}
        for p in self._params:
            optimizer = self._optimizer_map(p)
            _check_inner(optimizer, f"The optimizer for variable {getattr(p, 'path', '?')}")
            self._adopt(optimizer)
            groups.setdefault(next(i for i, o in enumerate(self._inner_optimizers)
                                   if o is optimizer), []).append(p)
        for i, optimizer in enumerate(self._inner_optimizers):
            if i in groups:
                optimizer.build(groups[i])
        self._step_t = torch.zeros(())
        self._lr_t = torch.zeros(())
        self.built = True

    @torch.no_grad()
    def step(self) -> None:
        """Step every sub-optimizer on its variables' `.grad`."""
        for optimizer in self._inner_optimizers:
            if optimizer.built:
                optimizer.step()
        self._iterations += 1

    def apply(self, grads, trainable_variables=None):
        """Dispatch `(grad, variable)` pairs to their sub-optimizers."""
        grads = list(grads)
        if not grads:
            return
        variables = self._params if trainable_variables is None else list(trainable_variables)
        self.build(variables)
        if len(grads) != len(variables):
            raise ValueError("Gradients must match trainable variables one-to-one. Received "
                             f"{len(grads)} gradients and {len(variables)} variables.")
        for optimizer in self._inner_optimizers:
            pairs = [(g, v) for g, v in zip(grads, variables)
                     if optimizer.built and id(v) in optimizer._index]
            if pairs:
                optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        self._iterations += 1

    # ------------------------------------------------------------------ state
    @property
    def variables(self) -> list[torch.Tensor]:
        own = [torch.tensor(self.iterations, dtype=torch.int32), torch.tensor(0.0)]
        return own + [v for o in self._inner_optimizers for v in o.variables]

    def get_weights(self) -> list[np.ndarray]:
        own = [np.array(self.iterations, np.int32), np.array(0.0, np.float32)]
        return own + [w for o in self._inner_optimizers for w in o.get_weights()]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        self.iterations = int(np.asarray(weights[0]))
        start = 2
        for optimizer in self._inner_optimizers:
            count = len(optimizer.variables)
            if optimizer.built:
                optimizer.set_weights(weights[start:start + count])
            start += count

    def state_dict(self) -> dict:
        return {"iterations": int(self.iterations),
                "inner": [o.state_dict() for o in self._inner_optimizers]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.iterations = state_dict["iterations"]
        for optimizer, state in zip(self._inner_optimizers, state_dict["inner"]):
            optimizer.load_state_dict(state)

    def get_config(self) -> dict:
        return {"optimizer_map": serialize_keras_object(self._optimizer_map, "optimizers"),
                "loss_scale_factor": self.loss_scale_factor, "name": self.name}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        config = dict(config)
        config["optimizer_map"] = deserialize_keras_object(
            config["optimizer_map"], "optimizers", custom_objects)
        return cls(**config)
