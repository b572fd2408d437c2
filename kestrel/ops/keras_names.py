"""Keras 3 writes each op node of a functional graph as an instance of its op class
(`{"module": "keras.src.ops.numpy", "class_name": "Mean", "config": {"name", "axis", ...}}`).
This module maps those class names to Kestrel's registered ops and back."""
from __future__ import annotations

import functools

from kestrel.ops.dispatch import OPS, get_op

KERAS_OPS_MODULE = "keras.src.ops."

# Keras class names that are not the CamelCase of the op's name (acronyms, short forms).
_CLASS_NAMES = {
    "allclose": "AllClose", "isin": "IsIn", "searchsorted": "SearchSorted", "ctc_loss": "CTCLoss",
    "ctc_decode": "CTCDecode", "psnr": "PSNR", "cdist": "CDist", "fft": "FFT", "fft2": "FFT2",
    "ifft2": "IFFT2", "rfft": "RFFT", "irfft": "IRFFT", "stft": "STFT", "istft": "ISTFT",
    "svd": "SVD", "jvp": "JVP", "image.rgb_to_grayscale": "RGBToGrayscale",
    "image.rgb_to_hsv": "RGBToHSV", "image.hsv_to_rgb": "HSVToRGB", "image.ssim": "SSIM",
    "batch_normalization": "BatchNorm", "rms_normalization": "RMSNorm",
    "layer_normalization": "LayerNorm", "activations.relu": "ReLU",
}

# Op families without a Keras op class: Keras 2 `K` functions, and loss functions (Keras 3
# records the ops inside them; Kestrel records one node, saved under its own name).
_NO_OP_CLASS = ("backend.", "losses.")
_FAMILIES = ("image", "activations")  # op classes whose names other families share (ReLU)


def keras_class_name(op_name: str) -> str:
    """`"get_item"` -> `"GetItem"`, `"image.rgb_to_hsv"` -> `"RGBToHSV"`."""
    if op_name in _CLASS_NAMES:
        return _CLASS_NAMES[op_name]
    return "".join(part[:1].upper() + part[1:] for part in op_name.split(".")[-1].split("_"))


def keras_module(op_name: str) -> str | None:
    """The Keras module of the op's class (`keras.src.ops.numpy`, `.nn`, `.image`, ...), or
    None for ops Keras does not have (Keras 2 `backend.*` functions)."""
    if op_name.startswith("activations."):  # ReLU, Mish: classes of Keras' activations
        return "keras.src.activations.activations"
    module = get_op(op_name).raw.__module__
    if not module.startswith("kestrel.ops."):
        return None
    return KERAS_OPS_MODULE + module.rsplit(".", 1)[1].split("_")[0]


@functools.cache
def _by_class() -> dict:
    get_op("mean")  # loads every op family
    table = {}
    for op_name in OPS:
        if op_name.startswith(_NO_OP_CLASS):
            continue
        family = op_name.split(".")[0] if "." in op_name else ""
        table[(family, keras_class_name(op_name).lower())] = op_name
    return table


def op_name_for(class_name: str, module: str) -> str:
    """The Kestrel op for Keras' op class `class_name` in `module`."""
    family = next((name for name in _FAMILIES if module.endswith("." + name)), "")
    op_name = _by_class().get((family, str(class_name).lower()))
    if op_name is None:
        raise ValueError(f"Unknown Keras op class {str(class_name)[:80]!r} (module "
                         f"{str(module)[:80]!r}): Kestrel has no op of that name.")
    return op_name
