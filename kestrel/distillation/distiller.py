"""Distiller: trains a student model on labels and on a frozen teacher's outputs."""
from __future__ import annotations

import torch

from kestrel import losses, tree
from kestrel.distillation.distillation_loss import serialize
from kestrel.metrics import Mean
from kestrel.models.model import Model
from kestrel.registry import object_registry
from kestrel.registry.serialization import deserialize_keras_object

FINAL = "final_output"  # the key of a model's final output among extracted features


class Distiller(Model):
    """A model whose training distills a frozen `teacher` into a `student`.

    The loss is `student_loss_weight * student_loss + (1 - student_loss_weight) *
    sum(weight_i * distillation_loss_i)`, where the student loss compares labels with the
    student's predictions (the `loss` given to `compile`). `predict` and calling the model
    run the student alone.

    Args:
        teacher: a trained `Model`; it is frozen (`trainable = False`).
        student: the `Model` to train; its inputs and outputs must match the teacher's.
        distillation_losses: one `DistillationLoss` or a list of them.
        distillation_loss_weights: one weight per distillation loss; `None`: all 1.0.
        student_loss_weight: the student loss' share, in [0, 1]. Defaults to 0.5.
        name: the model's name. Defaults to "distiller".

    Example:
        >>> distiller = Distiller(teacher, student, LogitsDistillation(temperature=3.0))
        >>> distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> distiller.fit(x, y, epochs=2)  # then use distiller.student
    """

    def __init__(self, teacher, student, distillation_losses, distillation_loss_weights=None,
                 student_loss_weight=0.5, name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        _check_models(teacher, student)
        self.teacher = teacher
        self.student = student
        if isinstance(student_loss_weight, bool) or \
                not isinstance(student_loss_weight, (int, float)):
            raise ValueError(f"student_loss_weight must be a number, got "
                             f"{type(student_loss_weight)}")
        if not 0.0 <= student_loss_weight <= 1.0:
            raise ValueError(f"student_loss_weight must be between 0.0 and 1.0, got "
                             f"{student_loss_weight}")
        self.student_loss_weight = student_loss_weight
        if distillation_losses is None:
            raise ValueError("'distillation_losses' cannot be `None`. Provide a distillation "
                             "loss (e.g., LogitsDistillation or FeatureDistillation) or a list "
                             "of distillation losses.")
        if not isinstance(distillation_losses, (list, tuple)):
            distillation_losses, distillation_loss_weights = [distillation_losses], [1.0]
        elif distillation_loss_weights is None:
            distillation_loss_weights = [1.0] * len(distillation_losses)
        elif len(distillation_loss_weights) != len(distillation_losses):
            raise ValueError(
                f"Number of distillation_loss_weights ({len(distillation_loss_weights)}) must "
                f"match number of distillation_losses ({len(distillation_losses)})")
        self.distillation_losses = list(distillation_losses)
        self.distillation_loss_weights = list(distillation_loss_weights)
        for distillation_loss in self.distillation_losses:
            distillation_loss.validate_model_compatibility(teacher, student)
        self._teacher_feature_extractor = _feature_extractor(teacher, _layer_names(
            self.distillation_losses, "teacher_layer_name"))
        self._student_feature_extractor = _feature_extractor(student, _layer_names(
            self.distillation_losses, "student_layer_name"))
        self.teacher.trainable = False
        self._student_loss = None
        self.student_loss_tracker = Mean(name="student_loss")
        self.distillation_loss_tracker = Mean(name="distillation_loss")
        self.total_loss_tracker = Mean(name="total_loss")

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configure training: `loss` is the student's supervised loss (a name, a loss, or a
        structure of them matching the student's outputs); `metrics` a list or tuple."""
        if loss is None:
            raise ValueError("'loss' cannot be `None`.")
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ValueError(f"metrics must be a list or tuple, got {type(metrics)}")
        self._student_loss = tree.map_structure(
            lambda item: losses.get(item) if isinstance(item, str) else item, loss)
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self._compile_config["loss"] = loss  # saved, so that loading compiles it again

    def call(self, inputs, training=None, **kwargs):
        """The student's outputs."""
        return self.student(inputs, training=training, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The weighted sum of the student loss and the distillation losses on a batch
        (`sample_weight` is not used, as in Keras); updates the three loss trackers."""
        if y_pred is None:
            y_pred = self(x, training=training)
        weight = self.student_loss_weight
        student_loss = self._compute_student_loss(y, y_pred) \
            if weight > 0.0 and y is not None else _zero(y_pred)
        distillation_loss = self._compute_distillation_loss(x, y_pred, training) \
            if weight < 1.0 else _zero(y_pred)
        total = weight * student_loss + (1.0 - weight) * distillation_loss
        with torch.no_grad():
            self.student_loss_tracker.update_state(student_loss)
            self.distillation_loss_tracker.update_state(distillation_loss)
            self.total_loss_tracker.update_state(total)
        return total

    def _compute_student_loss(self, y, y_pred):
        if self._student_loss is None:
            raise RuntimeError(f"You must call `compile()` before computing the loss of "
                               f"Distiller '{self.name}'.")
        values = tree.flatten(tree.map_structure(
            lambda fn, true, pred: None if fn is None else torch.as_tensor(fn(true, pred)),
            self._student_loss, y, y_pred))
        values = [v for v in values if v is not None]
        loss = torch.stack([v.mean() for v in values]).sum() if len(values) > 1 else values[0]
        return loss.mean() if loss.dim() else loss

    def _compute_distillation_loss(self, x, y_pred, training):
        with torch.no_grad():
            teacher_features = self._teacher_feature_extractor(x, training=False) \
                if self._teacher_feature_extractor is not None \
                else {FINAL: self.teacher(x, training=False)}
        student_features = {FINAL: y_pred}
        if self._student_feature_extractor is not None:
            student_features.update(self._student_feature_extractor(x, training=training))
            student_features[FINAL] = y_pred
        total = _zero(y_pred)
        for loss_fn, weight in zip(self.distillation_losses, self.distillation_loss_weights):
            teacher_out = teacher_features[getattr(loss_fn, "teacher_layer_name", None) or FINAL]
            student_out = student_features[getattr(loss_fn, "student_layer_name", None) or FINAL]
            loss_fn.validate_outputs(teacher_out, student_out)
            value = torch.as_tensor(loss_fn.compute_loss(teacher_out, student_out))
            if value.dim():
                raise ValueError(
                    f"Distillation loss {type(loss_fn).__name__} returned a non-scalar loss with "
                    f"shape {tuple(value.shape)}. The compute_loss method must return a scalar "
                    "tensor.")
            total = total + weight * value
        return total

    def get_config(self) -> dict:
        from kestrel.saving.model_config import model_to_dict

        return {**super(Model, self).get_config(),
                "teacher": model_to_dict(self.teacher), "student": model_to_dict(self.student),
                "distillation_losses": [serialize(d) for d in self.distillation_losses],
                "distillation_loss_weights": self.distillation_loss_weights,
                "student_loss_weight": self.student_loss_weight}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        from kestrel.saving.model_config import deserialize_layer

        config = dict(config)
        config.pop("dtype", None)
        for key in ("teacher", "student"):
            config[key] = deserialize_layer(config[key], custom_objects)
        config["distillation_losses"] = [
            deserialize_keras_object(d, "distillation", custom_objects)
            for d in config["distillation_losses"]]
        return cls(**config)


def _zero(like) -> torch.Tensor:
    return torch.zeros((), device=tree.flatten(like)[0].device)


def _check_models(teacher, student) -> None:
    """Keras' checks: both are models whose symbolic inputs and outputs have compatible
    shapes and equal dtypes (models without symbolic inputs are not checked)."""
    for role, model in (("Teacher", teacher), ("Student", student)):
        if not isinstance(model, Model):
            raise ValueError(f"{role} must be a keras.Model, got {type(model)}")
    checks = ((_check_shapes, "inputs", "input"), (_check_shapes, "outputs", "output"),
              (_check_dtypes, "inputs", "input"), (_check_dtypes, "outputs", "output"))
    for check, attr, context in checks:
        ours, theirs = getattr(teacher, attr, None), getattr(student, attr, None)
        if ours is not None and theirs is not None:
            tree.map_structure(lambda t, s: check(t, s, context), ours, theirs)


def _check_shapes(teacher_tensor, student_tensor, context: str) -> None:
    t_shape, s_shape = tuple(teacher_tensor.shape), tuple(student_tensor.shape)
    if len(t_shape) != len(s_shape):
        raise ValueError(f"Teacher and student {context} shapes have different dimensions. "
                         f"Teacher: {t_shape}, Student: {s_shape}.")
    if any(a is not None and b is not None and a != b for a, b in zip(t_shape, s_shape)):
        raise ValueError(f"Teacher and student {context} shapes are incompatible. Teacher: "
                         f"{t_shape}, Student: {s_shape}. All dimensions must match.")


def _check_dtypes(teacher_tensor, student_tensor, context: str) -> None:
    if teacher_tensor.dtype != student_tensor.dtype:
        raise ValueError(f"Teacher and student {context} dtypes must match. Teacher: "
                         f"{teacher_tensor.dtype}, Student: {student_tensor.dtype}.")


def _layer_names(distillation_losses, attr: str) -> list[str]:
    names = [getattr(d, attr, None) for d in distillation_losses]
    return list(dict.fromkeys(n for n in names if n))


def _feature_extractor(model, layer_names):
    """A functional model returning `{"final_output": ..., name: layer output, ...}` for
    `model`'s inputs, or None when no layer is named."""
    if not layer_names:
        return None
    if getattr(model, "inputs", None) is None:
        raise ValueError(f"Cannot create feature extractor for {model.name}. The model has no "
                         "symbolic inputs attribute.")
    outputs = {FINAL: model.output}
    outputs.update({name: model.get_layer(name=name).output for name in layer_names})
    return Model(inputs=model.inputs, outputs=outputs,
                 name=f"{model.name}_multi_feature_extractor")


object_registry.register_builtin("layers")(Distiller)
