"""Quantization configs of `keras.quantizers`: which quantizers (and int4 block size, GPTQ /
AWQ settings) `quantize(mode, config=...)` uses, serialized as Keras writes them."""
from __future__ import annotations

from kestrel.dtype_policies import QUANTIZATION_MODES


def _serialize(quantizer):
    from kestrel import quantizers

    return None if quantizer is None else quantizers.serialize(quantizer)


def _deserialize(config):
    from kestrel import quantizers

    return None if config is None else quantizers.deserialize(config)


class QuantizationConfig:
    """Base class of quantization configs: a weight and an activation quantizer.

    Args:
        weight_quantizer: quantizer of the weights (None: the mode's default).
        activation_quantizer: quantizer of the inputs (None: inputs stay float).
    """

    def __init__(self, weight_quantizer=None, activation_quantizer=None):
        self.weight_quantizer = weight_quantizer
        self.activation_quantizer = activation_quantizer

    @property
    def mode(self) -> str:
        raise NotImplementedError("Subclasses must implement this property. Do not "
                                  "instantiate QuantizationConfig directly.")

    def get_config(self) -> dict:
        return {"weight_quantizer": _serialize(self.weight_quantizer),
                "activation_quantizer": _serialize(self.activation_quantizer)}

    @classmethod
    def from_config(cls, config: dict):
        return cls(weight_quantizer=_deserialize(config.get("weight_quantizer")),
                   activation_quantizer=_deserialize(config.get("activation_quantizer")))


class Int8QuantizationConfig(QuantizationConfig):
    """int8 config; `activation_quantizer="default"` is `AbsMaxQuantizer()` (axis -1).

    Example:
        >>> Int8QuantizationConfig().mode
        'int8'
    """

    def __init__(self, weight_quantizer=None, activation_quantizer="default"):
        from kestrel.quantizers.quantizers import AbsMaxQuantizer

        if isinstance(activation_quantizer, str) and activation_quantizer == "default":
            activation_quantizer = AbsMaxQuantizer()
        super().__init__(weight_quantizer, activation_quantizer)
        _check_output_dtype(self, "Int8QuantizationConfig")

    @property
    def mode(self) -> str:
        return "int8"


class Int4QuantizationConfig(QuantizationConfig):
    """int4 config: weight-only by default, in groups of `block_size` inputs with a zero
    point (None or -1: one symmetric scale per output channel).

    Example:
        >>> Int4QuantizationConfig(block_size=64).get_config()["block_size"]
        64
    """

    def __init__(self, weight_quantizer=None, activation_quantizer="default", block_size=128):
        if isinstance(activation_quantizer, str) and activation_quantizer == "default":
            activation_quantizer = None
        super().__init__(weight_quantizer, activation_quantizer)
        if block_size is not None and block_size != -1 and block_size <= 0:
            raise ValueError("block_size must be None, -1, or a positive integer. "
                             f"Received: block_size={block_size}")
        self.block_size = block_size
        if block_size is not None and block_size > 0 and (
                weight_quantizer is not None or self.activation_quantizer is not None):
            raise ValueError(
                "Int4 sub-channel quantization (block_size > 0) does not support custom "
                "quantizers. Either set block_size to None or -1 for per-channel "
                "quantization, or remove the custom quantizer arguments. Received: "
                f"block_size={block_size}")
        if weight_quantizer is not None and tuple(weight_quantizer.value_range) != (-8, 7):
            raise ValueError("Int4QuantizationConfig requires a weight_quantizer with "
                             "value_range=(-8, 7). Received: "
                             f"value_range={weight_quantizer.value_range}")
        _check_output_dtype(self, "Int4QuantizationConfig")

    @property
    def mode(self) -> str:
        return "int4"

    def get_config(self) -> dict:
        return {**super().get_config(), "block_size": self.block_size}

    @classmethod
    def from_config(cls, config: dict):
        return cls(weight_quantizer=_deserialize(config.get("weight_quantizer")),
                   activation_quantizer=_deserialize(config.get("activation_quantizer")),
                   block_size=config.get("block_size"))


class Float8QuantizationConfig(QuantizationConfig):
    """float8 training config (no custom quantizers)."""

    def __init__(self):
        super().__init__(None, None)

    @property
    def mode(self) -> str:
        return "float8"

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls()


def _check_output_dtype(config: QuantizationConfig, name: str) -> None:
    quantizer = config.weight_quantizer
    if quantizer is not None and quantizer.output_dtype != "int8":
        raise ValueError(f"{name} requires a weight_quantizer with output_dtype='int8'. "
                         f"Received: output_dtype={quantizer.output_dtype}")


def resolve(mode, config):
    """The config `quantize(mode, config)` runs with, as Keras resolves it: a mode string as
    `config`, a default config per mode, contradictions refused."""
    from kestrel.quantizers.calibrated import AWQConfig, GPTQConfig

    if isinstance(config, str):
        mode, config = config, None
    _check_mode(mode)
    if config is None:
        if mode in ("gptq", "awq"):
            name = {"gptq": "GPTQConfig", "awq": "AWQConfig"}[mode]
            raise ValueError(f"For {mode.upper()}, you must pass a `{name}` object in the "
                             "`config` argument.")
        if mode is None:
            raise ValueError("You must provide either `mode` or `config` to `quantize`.")
        config = {"int8": Int8QuantizationConfig, "int4": Int4QuantizationConfig,
                  "float8": Float8QuantizationConfig}[mode]()
    elif not isinstance(config, QuantizationConfig):
        raise ValueError("Argument `config` must be an instance of `QuantizationConfig`. "
                         f"Received: config of type {type(config).__name__}")
    if mode is not None and config.mode != mode:
        raise ValueError(f"Contradictory arguments: mode='{mode}' but "
                         f"config.mode='{config.mode}'")
    _check_mode(config.mode)
    needed = {"gptq": GPTQConfig, "awq": AWQConfig}.get(config.mode)
    if needed is not None and not isinstance(config, needed):
        raise ValueError(f"Mode '{config.mode}' requires a valid `config` argument of type "
                         f"`{needed.__name__}`. Received: {type(config).__name__}")
    return config


def _check_mode(mode) -> None:
    if mode is not None and mode not in QUANTIZATION_MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. "
                         f"Received: mode={str(mode)[:50]}")
