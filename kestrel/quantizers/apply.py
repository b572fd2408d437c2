"""`layer.quantize(mode)` / `model.quantize(mode)`: quantize every leaf layer that can."""
from __future__ import annotations

import re
import warnings


def quantize(layer, mode=None, *, type_check=True, config=None, filters=None) -> None:
    """Quantize `layer`'s leaf layers (itself if it has none) that support `mode`.

    A leaf without quantization raises NotImplementedError when quantized alone and is
    skipped with a warning inside a model, as Keras does. `filters` (a regex on layer
    names, a list of them, or a predicate) picks the leaves.

    Example:
        >>> model.quantize("int8")  # doctest: +SKIP
    """
    from kestrel.layers.layer import Layer
    from kestrel.quantizers.config import resolve
    from kestrel.quantizers.layer_mixin import _calibrated_message, check_quantize_args

    config = resolve(mode, config)
    mode = config.mode
    if mode in ("gptq", "awq"):
        raise NotImplementedError(_calibrated_message(layer, mode))
    leaves = [m for m in layer.modules() if isinstance(m, Layer) and not m._sublayers()]
    if leaves == [layer]:
        check_quantize_args(layer, mode)
        raise NotImplementedError(
            f"Layer {type(layer).__name__} does not have a `quantize` method implemented.")
    if filters is not None and not isinstance(filters, (str, list, tuple)) \
            and not callable(filters):
        raise ValueError("The `filters` argument must be a regex string, a list of regex "
                         f"strings, or a callable. Received: {type(filters).__name__}")
    for leaf in leaves:
        if not _selected(leaf, filters):
            continue
        try:
            leaf.quantize(mode, type_check=type_check, config=config)
        except NotImplementedError as error:
            warnings.warn(str(error), stacklevel=2)


def _selected(layer, filters) -> bool:
    if filters is None:
        return True
    if isinstance(filters, str):
        return bool(re.search(filters, layer.name))
    if isinstance(filters, (list, tuple)):
        return any(re.search(pattern, layer.name) for pattern in filters)
    return bool(filters(layer))
