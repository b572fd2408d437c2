"""GPTQConfig and AWQConfig: the settings of Keras' calibrated 4-bit methods.

Kestrel serializes them as Keras does (dataset and tokenizer are never written); running
GPTQ or AWQ itself (calibration on `dataset`) is not implemented: `quantize("gptq"/"awq")`
raises NotImplementedError.
"""
from __future__ import annotations

from kestrel.quantizers.config import QuantizationConfig


def _check_common(num_samples, sequence_length, group_size, group_meaning: str) -> None:
    if num_samples <= 0:
        raise ValueError("num_samples must be a positive integer.")
    if sequence_length <= 0:
        raise ValueError("sequence_length must be a positive integer.")
    if group_size < -1 or group_size == 0:
        raise ValueError(f"Invalid group_size. Supported values are -1 ({group_meaning}) or a "
                         f"positive integer, but got {group_size}.")


class _CalibratedConfig(QuantizationConfig):
    """Shared parts: the settings are plain attributes, written by `get_config`."""

    _settings: tuple = ()

    def get_config(self) -> dict:
        return {"dataset": None, "tokenizer": None,
                **{name: getattr(self, name) for name in self._settings}}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def dtype_policy_string(self) -> str:
        """The policy mode this config quantizes to, e.g. `"gptq/4/128"`."""
        return f"{self.mode}/{self.weight_bits}/{self.group_size}"


class GPTQConfig(_CalibratedConfig):
    """GPTQ settings: `weight_bits` (2, 3, 4, 8), calibration on `num_samples` sequences of
    `dataset` (tokenized by `tokenizer`), groups of `group_size` inputs.

    Example:
        >>> GPTQConfig(None, None, group_size=64).dtype_policy_string()
        'gptq/4/64'
    """

    _settings = ("weight_bits", "num_samples", "per_channel", "sequence_length",
                 "hessian_damping", "group_size", "symmetric", "activation_order",
                 "quantization_layer_structure")

    def __init__(self, dataset, tokenizer, *, weight_bits: int = 4, num_samples: int = 128,
                 per_channel: bool = True, sequence_length: int = 512,
                 hessian_damping: float = 0.01, group_size: int = 128, symmetric: bool = False,
                 activation_order: bool = False, quantization_layer_structure: dict = None):
        super().__init__()
        if weight_bits not in (2, 3, 4, 8):
            raise ValueError(f"Unsupported weight_bits {weight_bits}. Supported values are "
                             "2, 3, 4, and 8.")
        _check_common(num_samples, sequence_length, group_size, "whole-tensor")
        if hessian_damping < 0 or hessian_damping > 1:
            raise ValueError("hessian_damping must be between 0 and 1.")
        self.dataset, self.tokenizer = dataset, tokenizer
        self.weight_bits, self.num_samples, self.per_channel = weight_bits, num_samples, \
            per_channel
        self.sequence_length, self.hessian_damping = sequence_length, hessian_damping
        self.group_size, self.symmetric = group_size, symmetric
        self.activation_order = activation_order
        self.quantization_layer_structure = quantization_layer_structure

    @property
    def mode(self) -> str:
        return "gptq"


class AWQConfig(_CalibratedConfig):
    """AWQ settings: 4-bit weights, activation-aware scales searched on `num_grid_points`.

    Example:
        >>> AWQConfig(None, None).dtype_policy_string()
        'awq/4/128'
    """

    _settings = ("weight_bits", "num_samples", "sequence_length", "group_size",
                 "num_grid_points", "quantization_layer_structure")

    def __init__(self, dataset, tokenizer, *, weight_bits: int = 4, num_samples: int = 128,
                 sequence_length: int = 512, group_size: int = 128, num_grid_points: int = 20,
                 quantization_layer_structure: dict = None):
        super().__init__()
        if weight_bits != 4:
            raise ValueError("AWQ only supports 4-bit quantization. "
                             f"Received weight_bits={weight_bits}.")
        _check_common(num_samples, sequence_length, group_size, "per-channel")
        if num_grid_points <= 0:
            raise ValueError("num_grid_points must be a positive integer.")
        self.dataset, self.tokenizer = dataset, tokenizer
        self.weight_bits, self.num_samples = weight_bits, num_samples
        self.sequence_length, self.group_size = sequence_length, group_size
        self.num_grid_points = num_grid_points
        self.quantization_layer_structure = quantization_layer_structure

    @property
    def mode(self) -> str:
        return "awq"
