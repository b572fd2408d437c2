"""Global settings: default float type, epsilon, image data format and device."""
from __future__ import annotations

import torch

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
_DEVICE: torch.device | None = None


def floatx() -> str:
    """The default float dtype name, `"float32"` unless changed."""
    return _FLOATX


def set_floatx(value: str) -> None:
    global _FLOATX
    if value not in ("float16", "bfloat16", "float32", "float64"):
        raise ValueError(f"Unknown floatx type. Received: value={value!r}")
    _FLOATX = value


def epsilon() -> float:
    """The fuzz factor used in numeric expressions (default 1e-7)."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    _EPSILON = float(value)


def image_data_format() -> str:
    """`"channels_last"` (Keras' default) or `"channels_first"`."""
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format: str) -> None:
    global _IMAGE_DATA_FORMAT
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError("The `data_format` argument must be one of {'channels_first', "
                         f"'channels_last'}}. Received: data_format={data_format}")
    _IMAGE_DATA_FORMAT = data_format


def standardize_data_format(data_format: str | None) -> str:
    if data_format is None:
        return _IMAGE_DATA_FORMAT
    value = str(data_format).lower()
    if value not in ("channels_last", "channels_first"):
        raise ValueError(
            "data_format must be 'channels_last' or 'channels_first'. "
            f"Received: data_format={data_format!r}"
        )
    return value


def device() -> torch.device:
    """The device new layers create their weights on (CPU unless set)."""
    return _DEVICE if _DEVICE is not None else torch.device("cpu")


def set_device(value: str | torch.device | None) -> None:
    """Set the default device for new weights, e.g. `set_device("cuda")`."""
    global _DEVICE
    _DEVICE = None if value is None else torch.device(value)


_DTYPES = {
    "float16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
    "float32": torch.float32, "float": torch.float32, "float64": torch.float64,
    "double": torch.float64, "int8": torch.int8, "uint8": torch.uint8,
    "int16": torch.int16, "int32": torch.int32, "int64": torch.int64,
    "bool": torch.bool, "complex64": torch.complex64,
    "int": torch.int32,  # Keras' torch backend reads "int" (and Python's int) as int32
}
_PYTHON_TYPES = {int: "int", float: "float32", bool: "bool"}


def to_torch_dtype(dtype) -> torch.dtype:
    """Map a Keras dtype (string, DTypePolicy dict, numpy or torch dtype) to a torch dtype."""
    if dtype is None:
        return _DTYPES[_FLOATX]
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy config
        dtype = dtype.get("config", {}).get("name", _FLOATX)
    if isinstance(dtype, type) and dtype in _PYTHON_TYPES:
        dtype = _PYTHON_TYPES[dtype]
    name = getattr(dtype, "name", None) or str(dtype)
    name = name.replace("mixed_", "")
    if name not in _DTYPES:
        raise ValueError(f"Unknown dtype. Received: dtype={dtype!r}")
    return _DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """The Keras name of a torch dtype (`torch.float32` -> `"float32"`)."""
    return str(dtype).replace("torch.", "")


def enable_unsafe_deserialization() -> None:
    """Allow loading Lambda bytecode from files in this process (turns safe_mode off)."""
    from kestrel.registry import safe_mode

    safe_mode.enable_unsafe_deserialization()


def backend() -> str:
    """The tensor library underneath Kestrel: always `"torch"`."""
    return "torch"


def set_backend(backend: str) -> None:
    """Kestrel runs on torch only; any other backend is a clear error."""
    if backend != "torch":
        raise ValueError(f"Kestrel runs on PyTorch only; it cannot switch to another backend. "
                         f"Received: backend={backend!r}")


def dtype_policy():
    """The global dtype policy (`kestrel.mixed_precision.global_policy()`)."""
    from kestrel import mixed_precision

    return mixed_precision.global_policy()


def set_dtype_policy(policy) -> None:
    """Set the global dtype policy, e.g. `"mixed_float16"`."""
    from kestrel import mixed_precision

    mixed_precision.set_global_policy(policy)


# Switches Keras exposes in `keras.config`, read where they apply.
_FLAGS = {"flash_attention": None, "interactive_logging": True, "traceback_filtering": True,
          "cpu_memory_reuse": True, "batch_norm_folding": False}
_LIMITS = {"max_epochs": None, "max_steps_per_epoch": None}


def enable_flash_attention() -> None:
    """Let attention use torch's flash kernel where the inputs allow it (torch decides)."""
    _FLAGS["flash_attention"] = True


def disable_flash_attention() -> None:
    _FLAGS["flash_attention"] = False


def is_flash_attention_enabled():
    """True/False once set; None (the default) lets torch choose its attention kernel."""
    return _FLAGS["flash_attention"]


def enable_interactive_logging() -> None:
    """Progress bars and `summary()` print to stdout (the default)."""
    _FLAGS["interactive_logging"] = True


def disable_interactive_logging() -> None:
    """Send progress output through Python's `logging` instead of stdout."""
    _FLAGS["interactive_logging"] = False


def is_interactive_logging_enabled() -> bool:
    return _FLAGS["interactive_logging"]


def enable_traceback_filtering() -> None:
    """Kept for Keras scripts: Kestrel never rewrites tracebacks, so this changes nothing."""
    _FLAGS["traceback_filtering"] = True


def disable_traceback_filtering() -> None:
    _FLAGS["traceback_filtering"] = False


def is_traceback_filtering_enabled() -> bool:
    return _FLAGS["traceback_filtering"]


def enable_cpu_memory_reuse() -> None:
    """Kestrel's `fit`, `evaluate` and `predict` on the CPU keep freed memory in the process
    for reuse, instead of faulting it in again each step (the default; glibc only;
    `clear_session()` hands it back)."""
    _FLAGS["cpu_memory_reuse"] = True


def disable_cpu_memory_reuse() -> None:
    """Leave glibc's memory handling as it is (and undo Kestrel's change if made)."""
    _FLAGS["cpu_memory_reuse"] = False
    from kestrel.trainers import cpu_memory

    cpu_memory.release()


def is_cpu_memory_reuse_enabled() -> bool:
    return _FLAGS["cpu_memory_reuse"]


def enable_batch_norm_folding() -> None:
    """Run a convolution and the BatchNormalization reading it as one convolution in
    inference without gradients (`predict`, `evaluate`): one pass less over the activations
    (MobileNetV2's forward about 0.85x the time on the CPU). Off by default: the results
    differ from Keras' by float rounding, which a deep network with random weights can
    amplify (EfficientNetV2L's outputs then disagree completely)."""
    _FLAGS["batch_norm_folding"] = True


def disable_batch_norm_folding() -> None:
    _FLAGS["batch_norm_folding"] = False


def is_batch_norm_folding_enabled() -> bool:
    return _FLAGS["batch_norm_folding"]


def is_nnx_enabled() -> bool:
    """Flax NNX is a JAX feature; never enabled on torch."""
    return False


def max_epochs():
    """A cap on `fit(epochs=...)` for quick runs of real scripts (None: no cap)."""
    return _LIMITS["max_epochs"]


def set_max_epochs(max_epochs) -> None:
    _LIMITS["max_epochs"] = max_epochs


def max_steps_per_epoch():
    """A cap on the batches per epoch of `fit`/`evaluate` (None: no cap)."""
    return _LIMITS["max_steps_per_epoch"]


def set_max_steps_per_epoch(max_steps_per_epoch) -> None:
    _LIMITS["max_steps_per_epoch"] = max_steps_per_epoch
