"""Knowledge distillation (`keras.distillation`): train a student on a frozen teacher's outputs."""
from kestrel.distillation.distillation_loss import (
    DistillationLoss,
    FeatureDistillation,
    LogitsDistillation,
)
from kestrel.distillation.distiller import Distiller

__all__ = ["DistillationLoss", "Distiller", "FeatureDistillation", "LogitsDistillation"]
