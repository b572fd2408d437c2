"""Quantized dtype policies: `"int8_from_float32"` = int8 weights, float32 compute."""
from __future__ import annotations

from kestrel.mixed_precision import DTypePolicy, global_policy

QUANTIZATION_MODES = ("int8", "float8", "int4", "gptq", "awq")  # Keras 3's names


class QuantizedDTypePolicy(DTypePolicy):
    """A float policy (`source_name`) whose layers store their kernels quantized (`mode`).

    Args:
        mode: the quantization mode, one of `QUANTIZATION_MODES` (Kestrel's layers run "int8").
        source_name: the float policy the compute and variable dtypes come from (default: the
            global policy).

    Example:
        >>> policy = QuantizedDTypePolicy("int8", "mixed_bfloat16")
        >>> policy.name, policy.compute_dtype, policy.quantization_mode
        ('int8_from_mixed_bfloat16', 'bfloat16', 'int8')
    """

    def __init__(self, mode: str, source_name: str | None = None):
        source_name = global_policy().name if source_name is None else source_name
        super().__init__(source_name)
        self.source_name = source_name
        if mode not in QUANTIZATION_MODES:
            raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. "
                             f"Received: mode={mode}")
        if mode == "int8" and self.compute_dtype == "float16":
            raise ValueError(f"Quantization mode='{mode}' doesn't work well with "
                             "compute_dtype='float16'.")
        self._name = f"{mode}_from_{source_name}"
        self._quantization_mode = mode

    def get_config(self) -> dict:
        return {"mode": self._quantization_mode, "source_name": self.source_name}


class QuantizedFloat8DTypePolicy(QuantizedDTypePolicy):
    """A float8 policy; `amax_history_length` is the window of the scale statistics."""

    default_amax_history_length = 1024

    def __init__(self, mode: str, source_name: str | None = None,
                 amax_history_length: int = 1024):
        super().__init__(mode, source_name)
        if not isinstance(amax_history_length, int) or isinstance(amax_history_length, bool):
            raise TypeError("`amax_history_length` must be an integer. "
                            f"Received: amax_history_length={amax_history_length!r}")
        self.amax_history_length = amax_history_length

    def get_config(self) -> dict:
        return {**super().get_config(), "amax_history_length": self.amax_history_length}


class _ParameterizedPolicy(QuantizedDTypePolicy):
    """A quantized policy whose mode carries integers: `"<mode>/<n>/..."` (Keras' names)."""

    _fields: tuple = ()  # (field, description of the allowed values, check)

    def __init__(self, mode: str, source_name: str | None = None):
        cls, base = type(self).__name__, self._base_mode
        parts = str(mode).split("/")
        expected = "'" + "/".join([base] + [f"<{f}>" for f, _, _ in self._fields]) + "'"
        if len(parts) != len(self._fields) + 1 or parts[0] != base:
            raise ValueError(f"Invalid mode for {cls}. Expected format {expected}, but got "
                             f"'{str(mode)[:100]}'.")
        try:
            values = [int(p) for p in parts[1:]]
        except ValueError:
            raise ValueError(f"Invalid mode for {cls}. The fields must be integers. Expected "
                             f"format {expected}, but got '{mode[:100]}'.") from None
        for (field, allowed, check), value in zip(self._fields, values):
            if not check(value):
                raise ValueError(f"Invalid {field} in mode. Supported values are {allowed}, "
                                 f"but got {value} from '{mode}'.")
            setattr(self, field, value)
        super().__init__(base, source_name)
        self._name = f"{mode}_from_{self.source_name}"

    def get_config(self) -> dict:
        mode = "/".join([self._quantization_mode]
                        + [str(getattr(self, f)) for f, _, _ in self._fields])
        return {"mode": mode, "source_name": self.source_name}


def _group(value: int) -> bool:
    return value == -1 or value > 0


class Int4DTypePolicy(_ParameterizedPolicy):
    """int4 weights in groups of `block_size` inputs (`"int4/128"`; -1: one per channel).

    Example:
        >>> Int4DTypePolicy("int4/128", "float32").block_size
        128
    """

    _base_mode = "int4"
    _fields = (("block_size", "-1 (per-channel) or a positive integer (sub-channel)", _group),)


class GPTQDTypePolicy(_ParameterizedPolicy):
    """GPTQ weights: `"gptq/<weight_bits>/<group_size>"`, e.g. `"gptq/4/128"`."""

    _base_mode = "gptq"
    _fields = (("weight_bits", "2, 3, 4, and 8", lambda v: v in (2, 3, 4, 8)),
               ("group_size", "-1 (whole-tensor) or a positive integer", _group))


class AWQDTypePolicy(_ParameterizedPolicy):
    """AWQ weights: `"awq/4/<group_size>"` (AWQ quantizes to 4 bits only)."""

    _base_mode = "awq"
    _fields = (("weight_bits", "4 (AWQ only supports 4-bit quantization)", lambda v: v == 4),
               ("group_size", "-1 (per-channel) or a positive integer", _group))


def from_name(name: str) -> QuantizedDTypePolicy:
    """The policy a name like `"int8_from_float32"` or `"int4/128_from_float32"` stands for."""
    parts = name.split("_from_")
    if len(parts) != 2:
        raise ValueError("Cannot convert `policy` into a valid pair (`mode`, `source_name`) to "
                         f"instantiate `QuantizedDTypePolicy`. Received: policy={name[:100]}")
    mode = parts[0]
    if mode.startswith("int4/"):
        return Int4DTypePolicy(*parts)
    cls = {"float8": QuantizedFloat8DTypePolicy, "gptq": GPTQDTypePolicy,
           "awq": AWQDTypePolicy}.get(mode.split("/")[0], QuantizedDTypePolicy)
    return cls(*parts)
