"""Distillation losses: how a student's outputs (or features) are pulled toward a teacher's."""
from __future__ import annotations

import torch

from kestrel import losses, tree
from kestrel.registry import object_registry
from kestrel.registry.serialization import serialize_keras_object

KERAS_MODULE = "keras.distillation"  # the module Keras 3 writes in configs


def _resolve_losses(loss, empty_message: str):
    """`loss` (a name, a loss, or a nested structure of them with `None` entries) resolved to
    loss objects; ValueError(`empty_message`) when every entry is `None`."""

    def resolve(item):
        if isinstance(item, str):
            found = losses.get(item)
            if found is None:
                raise ValueError(f"Unknown loss function: '{item}'.")
            return found
        return item

    resolved = tree.map_structure(resolve, loss)
    if all(item is None for item in tree.flatten(resolved)):
        raise ValueError(empty_message)
    return resolved


def _sum_losses(loss_structure, apply, teacher_outputs, student_outputs):
    """The sum over the leaves of `apply(loss, teacher, student)`; `None` losses give 0."""
    values = tree.flatten(tree.map_structure(
        lambda fn, t, s: None if fn is None else apply(fn, t, s),
        loss_structure, teacher_outputs, student_outputs))
    return torch.stack([v.reshape(()) for v in values if v is not None]).sum()


def _deserialize_loss(config):
    """A (nested) loss from its config: lists and plain dicts nest, `None` stays."""
    if config is None:
        return None
    if isinstance(config, (list, tuple)):
        return [_deserialize_loss(c) for c in config]
    if isinstance(config, dict) and "class_name" not in config:
        return {key: _deserialize_loss(c) for key, c in config.items()}
    return losses.deserialize(config)


def serialize(obj) -> dict:
    """A distillation loss as Keras 3 serializes it (built-in ones under `keras.distillation`)."""
    entry = serialize_keras_object(obj)
    if object_registry.is_builtin(type(obj)):
        entry["module"] = KERAS_MODULE
    return entry


class DistillationLoss:
    """Base class of distillation losses: subclass it and override `compute_loss`.

    Example:
        >>> class L1Logits(DistillationLoss):
        ...     def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        ...         return (teacher_outputs - student_outputs).abs().mean()
    """

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        """The scalar loss between the teacher's and the student's outputs (or features)."""
        raise NotImplementedError("Subclasses must implement compute_loss")

    def validate_outputs(self, teacher_outputs, student_outputs) -> None:
        """Raise ValueError unless the two outputs nest the same way."""
        tree.assert_same_structure(teacher_outputs, student_outputs)

    def validate_model_compatibility(self, teacher, student) -> None:
        """Raise ValueError if this loss cannot work with `teacher` and `student`."""


class FeatureDistillation(DistillationLoss):
    """Match intermediate features (or final outputs) of the student to the teacher's.

    Args:
        loss: a loss name or object, or a nested structure of them matching the features
            (`None` entries skip an output); at least one is not `None`. Defaults to "mse".
        teacher_layer_name: the teacher layer whose output is used; `None`: the final output.
        student_layer_name: the student layer whose output is used; `None`: the final output.

    Example:
        >>> loss = FeatureDistillation("mse", teacher_layer_name="dense_1",
        ...                            student_layer_name="dense")
    """

    def __init__(self, loss="mse", teacher_layer_name=None, student_layer_name=None):
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        self.loss = _resolve_losses(
            loss, "The `loss` argument in `FeatureDistillation` must contain at least one "
                  "non-`None` value.")

    def validate_model_compatibility(self, teacher, student) -> None:
        names = {"teacher": (teacher, self.teacher_layer_name),
                 "student": (student, self.student_layer_name)}
        if self.teacher_layer_name is not None or self.student_layer_name is not None:
            subclassed = [role for role, (model, _) in names.items()
                          if getattr(model, "inputs", None) is None]
            if subclassed:
                raise ValueError(
                    "FeatureDistillation with specific layer names requires Functional or "
                    f"Sequential models. The {' and '.join(subclassed)} model(s) appear to be "
                    "subclassed (no symbolic inputs/outputs). Either use Functional/Sequential "
                    "models, or use FeatureDistillation without layer names (to distill final "
                    "outputs only), or use LogitsDistillation instead.")
        for role, (model, layer_name) in names.items():
            if layer_name is not None:
                try:
                    model.get_layer(name=layer_name)
                except ValueError as error:
                    raise ValueError(f"In {role} model: {error}") from None

    def validate_outputs(self, teacher_outputs, student_outputs) -> None:
        super().validate_outputs(teacher_outputs, student_outputs)
        try:
            tree.assert_same_structure(self.loss, teacher_outputs)
        except ValueError as error:
            raise ValueError(f"Loss structure mismatch between the `loss` of "
                             f"FeatureDistillation and the features: {error}") from None

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        """The sum over outputs of the mean of `loss(teacher_features, student_features)`."""
        return _sum_losses(self.loss, lambda fn, t, s: torch.as_tensor(fn(t, s)).mean(),
                           teacher_outputs, student_outputs)

    def get_config(self) -> dict:
        return {"loss": serialize_keras_object(self.loss, "losses"),
                "teacher_layer_name": self.teacher_layer_name,
                "student_layer_name": self.student_layer_name}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**{**config, "loss": _deserialize_loss(config["loss"])})


class LogitsDistillation(DistillationLoss):
    """Match the student's logits to the teacher's, both divided by a temperature.

    A `keras.losses.KLDivergence` object compares the softmax of the scaled logits and is
    multiplied by `temperature ** 2`; any other loss (the name "kl_divergence" included, as
    in Keras, which resolves it to the plain function) gets the scaled logits themselves.

    Args:
        temperature: positive number dividing both logits. Defaults to 3.0.
        loss: a loss name or object, or a nested structure of them matching the outputs
            (`None` entries skip an output). Defaults to "kl_divergence".

    Example:
        >>> loss = LogitsDistillation(temperature=4.0, loss=keras.losses.KLDivergence())
    """

    def __init__(self, temperature=3.0, loss="kl_divergence"):
        self.temperature = temperature
        self.loss = _resolve_losses(loss, "At least one loss must be non-`None`.")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(f"temperature must be a number, got {type(temperature)}")
        if temperature <= 0.0:
            raise ValueError(f"temperature must be positive. Received: temperature={temperature}")

    def _apply(self, loss_fn, teacher_logits, student_logits):
        if isinstance(loss_fn, losses.KLDivergence):
            teacher = torch.softmax(teacher_logits, dim=-1)
            student = torch.softmax(student_logits, dim=-1)
            return torch.as_tensor(loss_fn(teacher, student)).mean() * self.temperature ** 2
        return torch.as_tensor(loss_fn(teacher_logits, student_logits)).mean()

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        """The sum over outputs of the loss between the temperature-scaled logits."""
        scale = lambda x: x / self.temperature  # noqa: E731
        return _sum_losses(self.loss, self._apply, tree.map_structure(scale, teacher_outputs),
                           tree.map_structure(scale, student_outputs))

    def get_config(self) -> dict:
        return {"temperature": self.temperature,
                "loss": serialize_keras_object(self.loss, "losses")}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**{**config, "loss": _deserialize_loss(config["loss"])})


for _cls in (FeatureDistillation, LogitsDistillation):
    object_registry.register_builtin("distillation")(_cls)
