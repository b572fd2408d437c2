"""`plot_image_gallery`: a grid of images with optional label / prediction titles (matplotlib)."""
from __future__ import annotations

import math
import os

import numpy as np

from kestrel.ops.core import convert_to_numpy
from kestrel.visualization._common import (channels_last_batch, data_format_of,
                                           matplotlib_modules, to_uint8)

_NAME = "plot_image_gallery"


def to_pixel_range(images: np.ndarray, value_range) -> np.ndarray:
    """Images rescaled linearly from `value_range` to [0, 255] (float32; unchanged if equal)."""
    low, high = value_range
    if (low, high) == (0, 255):
        return images
    return (images.astype("float32") - np.float32(low)) / np.float32(high - low) * 255


def grid_shape(count: int, rows=None, cols=None):
    """`(rows, cols)`: given values kept; rows default to ceil(sqrt(count)), cols to fit."""
    rows = rows or max(math.ceil(math.sqrt(count)), 1)
    cols = cols or max(math.ceil(count / rows), 1)
    return int(rows), int(cols)


def _new_figure(show: bool, **kwargs):
    """A pyplot figure when it is to be shown, else a pyplot-free Agg figure."""
    Figure, FigureCanvasAgg, _ = matplotlib_modules(_NAME)
    if show:
        import matplotlib.pyplot as plt
        return plt.figure(**kwargs)
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def _title(index: int, y_true, y_pred, label_map) -> str:
    parts = []
    for prefix, labels in (("Label", y_true), ("Pred", y_pred)):
        if labels is not None and index < len(labels):
            key = labels[index].item() if hasattr(labels[index], "item") else labels[index]
            parts.append(f"{prefix}: {label_map.get(key, 'Unknown')}")
    return "  ".join(parts)


def plot_image_gallery(images, y_true=None, y_pred=None, label_map=None, rows=None, cols=None,
                       value_range=(0, 255), scale=2, path=None, show=None, transparent=True,
                       dpi=60, legend_handles=None, data_format=None):
    """Plot a batch of images as a `rows x cols` grid; save it to `path` or show it.

    The figure is `(cols * scale, rows * scale)` inches with one axis per cell; cells past the
    last image stay blank. Unlike Keras 3 (which computes `cols` as `ceil(count // rows)` and so
    drops images, e.g. 3 of 8), the default grid holds every image: `rows = ceil(sqrt(count))`,
    `cols = ceil(count / rows)`; extra images beyond an explicit `rows * cols` are left out.
    Single-channel images are drawn in gray.

    Args:
        images: `(batch, height, width, channels)` (NumPy or torch), or channels first with
            `data_format="channels_first"`.
        y_true: class ids shown as `"Label: <name>"` titles; needs `label_map`.
        y_pred: class ids shown as `"Pred: <name>"` titles; needs `label_map`.
        label_map: dict `class id -> name` (`"Unknown"` for ids it lacks).
        rows: grid rows; default from the image count.
        cols: grid columns; default from the image count and `rows`.
        value_range: `(low, high)` of the pixel values, mapped to [0, 255] for display.
        scale: inches per grid cell.
        path: file to save the figure to (format from the suffix) instead of showing it.
        show: show with `pyplot.show()`; default True when `path` is None. Not with `path`.
        transparent: save with a transparent background.
        dpi: resolution of the saved file.
        legend_handles: matplotlib artists (e.g. `Patch`) for a legend below the grid.
        data_format: `"channels_last"` or `"channels_first"`; default `image_data_format()`.

    Returns:
        The matplotlib `Figure`, or None when it was shown.

    Raises:
        ImportError: matplotlib is not installed (`pip install kestrel[viz]`).

    Example:
        >>> import numpy as np
        >>> fig = plot_image_gallery(np.zeros((5, 8, 8, 3)), show=False)
        >>> len(fig.axes), fig.get_size_inches().tolist()
        (6, [4.0, 6.0])
    """
    matplotlib_modules(_NAME)
    if path is not None and show:
        raise ValueError(f"{_NAME}: pass either `path` (to save) or `show=True`, not both. "
                         f"Received: show={show}")
    if (y_true is not None or y_pred is not None) and label_map is None:
        raise ValueError(f"{_NAME}: `y_true` or `y_pred` needs a `label_map`. "
                         "Received: label_map=None")
    show = path is None if show is None else bool(show)
    images = channels_last_batch(_NAME, images, data_format_of(_NAME, data_format))
    rows, cols = grid_shape(len(images), rows, cols)
    images = to_uint8(to_pixel_range(images[:rows * cols], value_range))
    y_true = None if y_true is None else convert_to_numpy(y_true).reshape(-1)
    y_pred = None if y_pred is None else convert_to_numpy(y_pred).reshape(-1)

    figure = _new_figure(show, figsize=(cols * scale, rows * scale), frameon=False,
                         layout="tight")
    axes = figure.subplots(rows, cols, squeeze=False, sharex="row", sharey="col")
    figure.subplots_adjust(wspace=0, hspace=0)
    if legend_handles is not None:
        figure.legend(handles=legend_handles, loc="lower center")
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= len(images):
            continue
        image = images[index]
        if image.shape[-1] == 1:
            axis.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            axis.imshow(image)
        axis.margins(x=0, y=0)
        title = _title(index, y_true, y_pred, label_map)
        if title:
            axis.set_title(title, fontsize=8)

    if path is not None:
        figure.savefig(os.fspath(path), pad_inches=0, bbox_inches="tight",
                       transparent=transparent, dpi=dpi)
    if show:
        import matplotlib.pyplot as plt
        plt.show()
        plt.close(figure)
        return None
    return figure
