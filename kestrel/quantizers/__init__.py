"""`keras.quantizers`: abs-max int8 quantization, float8 scaling helpers, and `quantize`."""
from __future__ import annotations

from kestrel.quantizers.quantizers import (AbsMaxQuantizer, Quantizer, abs_max_quantize,
                                           compute_float8_amax_history, compute_float8_scale,
                                           quantize_and_dequantize)
from kestrel.quantizers.calibrated import AWQConfig, GPTQConfig
from kestrel.quantizers.config import (Float8QuantizationConfig, Int4QuantizationConfig,
                                       Int8QuantizationConfig, QuantizationConfig)
from kestrel.quantizers.fake_quant import fake_quant_with_min_max_vars
from kestrel.quantizers.int4_ops import (abs_max_quantize_grouped_with_zero_point, pack_int4,
                                         unpack_int4)

_CLASSES = {"Quantizer": Quantizer, "quantizer": Quantizer,
            "AbsMaxQuantizer": AbsMaxQuantizer, "abs_max_quantizer": AbsMaxQuantizer,
            **{cls.__name__: cls for cls in (
                QuantizationConfig, Int8QuantizationConfig, Int4QuantizationConfig,
                Float8QuantizationConfig, GPTQConfig, AWQConfig)}}


def serialize(quantizer) -> dict:
    """A quantizer (or quantization config) as Keras writes it in configs."""
    return {"module": "keras.quantizers", "class_name": type(quantizer).__name__,
            "config": quantizer.get_config(), "registered_name": None}


def deserialize(config: dict, custom_objects=None):
    """Rebuild a quantizer (or quantization config) from `serialize`'s dict."""
    classes = {**_CLASSES, **(custom_objects or {})}
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in classes:
        raise ValueError("quantizers.deserialize: unknown quantizer class. "
                         f"Received: class_name={str(name)[:100]!r}")
    return classes[name].from_config(config.get("config", {}))


def get(identifier, **kwargs):
    """A quantizer from None, a config dict, a class name (built with `kwargs`), or itself."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    found = _CLASSES.get(identifier) if isinstance(identifier, str) else identifier
    if isinstance(found, type):
        found = found(**kwargs)
    if not callable(found):
        raise ValueError("Could not interpret quantizer identifier: "
                         f"{str(identifier)[:100]}")
    return found
