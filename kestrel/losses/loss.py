"""The `Loss` base class and the reductions that turn per-sample losses into one number."""
from __future__ import annotations

import numpy as np
import torch

from kestrel import config
from kestrel.layers.naming import to_snake_case, unique_name
from kestrel.layers.node import flatten, map_structure

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def standardize_reduction(reduction):
    """Validate `reduction`; Keras 2's `"auto"` (found in old configs) means the default."""
    if reduction == "auto":
        return "sum_over_batch_size"
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`. Expected one of {REDUCTIONS}. "
            f"Received: reduction={reduction!r}"
        )
    return reduction


def get_keras_mask(x):
    """The mask a tensor carries in its `_keras_mask` attribute, or None."""
    return getattr(x, "_keras_mask", None)


def as_tensor(x, dtype=None, device=None) -> torch.Tensor:
    """`torch.as_tensor` that keeps tensors on their device unless `device` is given."""
    if isinstance(x, torch.Tensor):
        if (dtype is None or x.dtype is dtype) and (device is None or x.device == device):
            return x  # already right: no dispatch at all (hot path of losses and metrics)
        return x.to(dtype=dtype or x.dtype, device=device or x.device)
    return torch.as_tensor(x, dtype=dtype, device=device)


def float_tensor(x, dtype=None) -> torch.Tensor:
    """`x` as a tensor of `dtype`; by default float tensors and NumPy floats keep their dtype
    (as Keras' convert_to_tensor) and others become floatx."""
    if dtype is None:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            return x
        if isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind == "f":
            return as_tensor(x)
    return as_tensor(x, dtype or config.to_torch_dtype(None))


def _holds_tensors(value) -> bool:
    """A list, tuple or dict with a tensor or array among its leaves (a structure of targets,
    as GauGAN's feature-matching loss takes), not a plain list of numbers."""
    return isinstance(value, (list, tuple, dict)) and any(
        isinstance(leaf, (torch.Tensor, np.ndarray)) for leaf in flatten(value))


def convert_pair(y_true, y_pred, dtype=None):
    """Tensors for `(y_true, y_pred)`: y_pred as floats, y_true in y_pred's dtype and device."""
    y_pred = float_tensor(y_pred, dtype)
    return as_tensor(y_true, y_pred.dtype, y_pred.device), y_pred


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1: bool = True):
    """Squeeze or expand a trailing size-1 axis so that ranks match (as Keras does)."""
    r1, r2 = x1.dim(), x2.dim()
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def align_rank(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Append size-1 axes to `weights` so they broadcast along `values`' leading axes."""
    extra = values.dim() - weights.dim()
    return weights.reshape(weights.shape + (1,) * extra) if extra > 0 else weights


def divide_no_nan(x, y: torch.Tensor) -> torch.Tensor:
    """`x / y`, with 0 wherever `y` is 0 (and finite gradients there)."""
    zero = y == 0
    return torch.where(zero, 0.0, x / torch.where(zero, 1.0, y))


def apply_mask(sample_weight, mask, dtype, reduction):
    """Fold a mask into the sample weights as Keras does.

    For the averaging reductions masked-out entries get weight 0 and valid ones `total/valid`,
    so that averaging over all entries equals averaging over the valid ones.
    """
    if mask is None:
        return sample_weight
    mask = mask.to(dtype)
    if reduction in ("mean", "sum_over_batch_size"):
        mask = mask * divide_no_nan(float(mask.numel()), mask.sum())
    if sample_weight is None:
        return mask
    sample_weight = as_tensor(sample_weight, dtype, mask.device)
    mask, sample_weight = squeeze_or_expand_to_same_rank(mask, sample_weight)
    return align_rank(sample_weight, mask) * align_rank(mask, sample_weight)


def reduce_values(values, sample_weight=None, reduction="sum_over_batch_size"):
    """Reduce already-weighted per-sample values to the loss."""
    if reduction in (None, "none") or values.dim() == 0 or tuple(values.shape) == (0,):
        return values
    if reduction in ("sum_over_batch_size", "mean") and values.numel():
        return values.mean()
    loss = values.sum()
    if reduction == "sum":
        return loss
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return divide_no_nan(loss, sample_weight.sum().to(loss.dtype))
    count = values.numel()
    return loss / count if count else loss


def reduce_weighted_values(values, sample_weight=None, mask=None,
                           reduction="sum_over_batch_size"):
    """Weight per-sample `values` by `sample_weight` and `mask`, then reduce."""
    sample_weight = apply_mask(sample_weight, mask, values.dtype, reduction)
    if sample_weight is not None:
        sample_weight = as_tensor(sample_weight, values.dtype, values.device)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * align_rank(sample_weight, values)
    return reduce_values(values, sample_weight, reduction)


class Loss:
    """Base class of losses: subclasses implement `call(y_true, y_pred)` per sample.

    Args:
        name: Name of the loss; defaults to the class name in snake case, made unique.
        reduction: `"sum_over_batch_size"` (default), `"sum"`, `"mean"`,
            `"mean_with_sample_weight"`, `"none"` or None.
        dtype: Dtype the inputs are cast to before `call`; defaults to `floatx()`.

    Example:
    >>> import torch, kestrel
    >>> class Sq(kestrel.losses.Loss):
    ...     def call(self, y_true, y_pred):
    ...         return ((y_true - y_pred) ** 2).mean(-1)
    >>> float(Sq()(torch.zeros(2, 2), torch.ones(2, 2)))
    1.0
    """

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.reduction = standardize_reduction(reduction)
        self._torch_dtype = config.to_torch_dtype(dtype)

    @property
    def dtype(self) -> str:
        return config.dtype_name(self._torch_dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        in_mask = get_keras_mask(y_pred)
        if _holds_tensors(y_true) or _holds_tensors(y_pred):  # Keras converts each leaf
            dtype = self._torch_dtype
            y_pred = map_structure(lambda x: float_tensor(x, dtype), y_pred)
            y_true = map_structure(lambda x: float_tensor(x, dtype), y_true)
        else:
            y_true, y_pred = convert_pair(y_true, y_pred, self._torch_dtype)
        losses = self.call(y_true, y_pred)
        out_mask = get_keras_mask(losses)
        if isinstance(losses, torch.Tensor) and losses.is_floating_point():
            losses = as_tensor(losses, self._torch_dtype)  # Keras reduces in the loss's dtype
        if in_mask is None and out_mask is None and sample_weight is None:
            return reduce_values(losses, None, self.reduction)
        if in_mask is not None and out_mask is not None:
            mask = in_mask.bool() & out_mask.bool()
        else:
            mask = out_mask if in_mask is None else in_mask
        if mask is not None:
            mask = as_tensor(mask, device=losses.device)
        return reduce_weighted_values(losses, sample_weight, mask, self.reduction)

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred).")

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"
