"""Shared input handling for `kestrel.visualization`: NumPy conversion, layouts, matplotlib."""
from __future__ import annotations

import numpy as np

from kestrel import config
from kestrel.ops.core import convert_to_numpy


def data_format_of(name: str, data_format) -> str:
    """`data_format`, or the global `image_data_format()` when None; checked."""
    data_format = data_format or config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{name}: `data_format` must be 'channels_last' or 'channels_first'. "
                         f"Received: data_format={data_format!r}")
    return data_format


def channels_last_batch(name: str, images, data_format: str) -> np.ndarray:
    """`images` (NumPy or torch) as a channels-last 4D NumPy array."""
    images = convert_to_numpy(images)
    if images.ndim != 4:
        raise ValueError(f"{name}: `images` must be a batched 4D array. "
                         f"Received: images.shape={images.shape}")
    return images.transpose(0, 2, 3, 1) if data_format == "channels_first" else images


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Pixel values clipped to [0, 255] as uint8 (floats are truncated, as a cast does)."""
    return np.clip(images, 0, 255).astype("uint8")


def matplotlib_modules(name: str):
    """`(pyplot-free Figure class, Agg canvas class, Patch class)`, or a clear ImportError."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise ImportError(f"{name} needs matplotlib: `pip install kestrel[viz]` (or "
                          "`pip install matplotlib`).") from None
    return Figure, FigureCanvasAgg, Patch
