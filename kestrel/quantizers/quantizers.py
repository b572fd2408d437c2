"""Quantizer functions and classes of `keras.quantizers` on torch tensors."""
from __future__ import annotations

import numpy as np
import torch

from kestrel import config

_EPSILON = 1e-7  # Keras' backend.epsilon() when its quantizers are defined
_FLOAT8_MAX = {"float8_e4m3fn": 448.0, "float8_e5m2": 57344.0}


def _tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def abs_max_quantize(inputs, axis, value_range=(-127, 127), dtype="int8", epsilon=_EPSILON,
                     to_numpy=False):
    """Symmetric quantization scaled by the absolute maximum along `axis`.

    Returns `(quantized, scale)` with `quantized = clip(round(inputs * scale))` and
    `scale = value_range[1] / (max|inputs| + epsilon)` (reduced axes kept as size 1);
    `inputs ≈ quantized / scale`. `to_numpy` is accepted for Keras' signature.

    Example:
        >>> q, s = abs_max_quantize(torch.tensor([[1.0, -2.0]]), axis=-1)
        >>> q.tolist(), round(float(s), 2)
        ([[64, -127]], 63.5)
    """
    inputs = _tensor(inputs)
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    amax = inputs.abs().amax(dim=axes, keepdim=True)
    top = torch.tensor(float(value_range[1]), dtype=amax.dtype, device=amax.device)
    scale = torch.div(top, amax + epsilon).to(inputs.dtype)  # true division, as Keras
    outputs = torch.clamp(torch.round(inputs * scale), value_range[0], value_range[1])
    return outputs.to(config.to_torch_dtype(dtype)), scale


def quantize_and_dequantize(inputs, scale, quantized_dtype, compute_dtype):
    """`inputs` cast through `quantized_dtype` (e.g. "float8_e4m3fn") at `scale`, back in
    `compute_dtype`."""
    compute = config.to_torch_dtype(compute_dtype)
    inputs, scale = _tensor(inputs), _tensor(scale).to(compute)
    limit = _FLOAT8_MAX.get(quantized_dtype)
    if limit is None:
        limit = float(torch.finfo(_torch_dtype(quantized_dtype)).max)
    x = torch.clamp(inputs / scale, -limit, limit).to(_torch_dtype(quantized_dtype))
    return x.to(compute) * scale


def compute_float8_scale(amax, scale, dtype_max, margin=0):
    """The float8 scale for the observed `amax` (the old `scale` where amax is 0 or not
    finite), as Keras' delayed-scaling recipe."""
    amax, scale = _tensor(amax), _tensor(scale)
    factor = dtype_max / amax / 2 ** margin
    factor = torch.where((amax > 0.0) & torch.isfinite(amax), factor, 1.0 / scale)
    return 1.0 / factor


def compute_float8_amax_history(x, amax_history):
    """`amax_history` rolled by one with `max|x|` written first."""
    amax_history = _tensor(amax_history)
    rolled = torch.roll(amax_history, -1)
    rolled[0] = _tensor(x).abs().max().to(amax_history.dtype)
    return rolled


def _torch_dtype(name: str) -> torch.dtype:
    found = getattr(torch, name, None)
    if not isinstance(found, torch.dtype):
        raise ValueError(f"quantize_and_dequantize: unknown quantized_dtype. "
                         f"Received: quantized_dtype={str(name)[:50]}")
    return found


class Quantizer:
    """Base class of quantizers: `quantizer(x)` returns the quantized `x`."""

    def __init__(self, output_dtype: str = "int8"):
        self.output_dtype = output_dtype

    def __call__(self, x):
        return x

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config()")


class AbsMaxQuantizer(Quantizer):
    """`abs_max_quantize` as an object: `quantizer(x, axis=None)` returns `(quantized, scale)`.

    Example:
        >>> AbsMaxQuantizer()(torch.tensor([[0.5, 1.0]]))[0].tolist()
        [[64, 127]]
    """

    def __init__(self, axis=None, value_range=(-127, 127), epsilon=_EPSILON,
                 output_dtype="int8"):
        super().__init__(output_dtype)
        self.axis = (axis,) if isinstance(axis, int) else (None if axis is None else tuple(axis))
        if output_dtype == "int8" and (value_range[0] < -128 or value_range[1] > 127):
            raise ValueError("Quantizer with output_dtype='int8' requires value_range to be "
                             f"within the interval [-128, 127]. Received: "
                             f"value_range={tuple(value_range)}")
        self.value_range = value_range  # kept as given (a list from a file), as Keras
        self.epsilon = epsilon

    def __call__(self, x, axis=None, to_numpy=False):
        axis = self.axis if axis is None else axis
        return abs_max_quantize(x, -1 if axis is None else axis, self.value_range,
                                self.output_dtype, self.epsilon)

    def get_config(self) -> dict:
        config = {"value_range": self.value_range, "epsilon": self.epsilon,
                  "output_dtype": self.output_dtype}
        if self.axis is not None:
            config["axis"] = self.axis
        return config
