"""Galleries of annotated images: `plot_bounding_box_gallery`, `plot_segmentation_mask_gallery`.

Both first map the images from `value_range` to [0, 255], draw on them, and hand the result to
`plot_image_gallery` with `value_range=(0, 255)` (Keras 3 draws before rescaling, which breaks
images in [0, 1]).
"""
from __future__ import annotations

import numpy as np

from kestrel.ops.core import convert_to_numpy
from kestrel.visualization._common import channels_last_batch, data_format_of, matplotlib_modules
from kestrel.visualization.draw_bounding_boxes import draw_bounding_boxes
from kestrel.visualization.draw_segmentation_masks import draw_segmentation_masks
from kestrel.visualization.plot_image_gallery import plot_image_gallery, to_pixel_range


def _pixels(name: str, images, value_range, data_format) -> np.ndarray:
    """Channels-last images in [0, 255] as float32."""
    images = channels_last_batch(name, images, data_format_of(name, data_format))
    return np.clip(to_pixel_range(images, value_range), 0, 255).astype("float32")


def plot_bounding_box_gallery(images, bounding_box_format, y_true=None, y_pred=None,
                              value_range=(0, 255), true_color=(0, 188, 212),
                              pred_color=(255, 235, 59), line_thickness=2, font_scale=1.0,
                              text_thickness=None, class_mapping=None, ground_truth_mapping=None,
                              prediction_mapping=None, legend=False, legend_handles=None,
                              rows=None, cols=None, data_format=None, **kwargs):
    """Plot images with ground-truth and/or predicted boxes drawn on them.

    Args:
        images: `(batch, height, width, channels)` (or channels first with `data_format`).
        bounding_box_format: format of the boxes, e.g. `"xyxy"` or `"rel_center_xywh"`.
        y_true: ground-truth dict (`boxes`, `labels`, optional `confidences`), as for
            `draw_bounding_boxes`; drawn in `true_color`.
        y_pred: predicted dict of the same form; drawn in `pred_color` over `y_true`.
        value_range: `(low, high)` of the pixel values.
        true_color: RGB of ground-truth boxes.
        pred_color: RGB of predicted boxes.
        line_thickness: outline width in pixels.
        font_scale: label size.
        text_thickness: label stroke; default `line_thickness`.
        class_mapping: dict `class id -> name` for both kinds of boxes.
        ground_truth_mapping: names for `y_true` only (default `class_mapping`).
        prediction_mapping: names for `y_pred` only (default `class_mapping`).
        legend: add a "Ground Truth" / "Prediction" color legend.
        legend_handles: your own legend artists (not with `legend=True`).
        rows: grid rows (see `plot_image_gallery`).
        cols: grid columns.
        data_format: `"channels_last"` or `"channels_first"`; default `image_data_format()`.
        **kwargs: passed on to `plot_image_gallery` (`path`, `show`, `scale`, `dpi`, ...).

    Returns:
        What `plot_image_gallery` returns: the `Figure`, or None when shown.

    Example:
        >>> import numpy as np
        >>> boxes = {"boxes": np.array([[[2, 2, 12, 12]]]), "labels": np.array([[1]])}
        >>> fig = plot_bounding_box_gallery(np.zeros((1, 16, 16, 3)), "xyxy", y_true=boxes,
        ...                                 legend=True, show=False)
        >>> len(fig.legends)
        1
    """
    name = "plot_bounding_box_gallery"
    _, _, Patch = matplotlib_modules(name)
    if legend and legend_handles:
        raise ValueError(f"{name}: pass `legend=True` or `legend_handles`, not both. "
                         f"Received: legend={legend}, {len(legend_handles)} legend_handles")
    images = _pixels(name, images, value_range, data_format)
    drawn = [(y_true, true_color, ground_truth_mapping or class_mapping),
             (y_pred, pred_color, prediction_mapping or class_mapping)]
    for boxes, color, mapping in drawn:
        if boxes is not None:
            images = draw_bounding_boxes(images, boxes, bounding_box_format, class_mapping=mapping,
                                         color=color, line_thickness=line_thickness,
                                         text_thickness=text_thickness, font_scale=font_scale,
                                         data_format="channels_last")
    if legend:
        legend_handles = [Patch(color=np.array(true_color) / 255.0, label="Ground Truth"),
                          Patch(color=np.array(pred_color) / 255.0, label="Prediction")]
    return plot_image_gallery(images, value_range=(0, 255), legend_handles=legend_handles,
                              rows=rows, cols=cols, data_format="channels_last", **kwargs)


def _masks_last(masks, data_format: str):
    """Masks with any channel axis moved last, to go with channels-last images."""
    masks = convert_to_numpy(masks)
    if data_format == "channels_first" and masks.ndim == 4:
        masks = masks.transpose(0, 2, 3, 1)
    return masks


def plot_segmentation_mask_gallery(images, num_classes, value_range=(0, 255), y_true=None,
                                   y_pred=None, color_mapping=None, blend=True, alpha=0.8,
                                   ignore_index=-1, data_format=None, **kwargs):
    """Plot one row per image: the image, then it with `y_true`, then with `y_pred` masks.

    Args:
        images: `(batch, height, width, channels)` (or channels first with `data_format`).
        num_classes: classes to paint (see `draw_segmentation_masks`).
        value_range: `(low, high)` of the pixel values.
        y_true: integer masks `(batch, height, width)` or with one channel axis.
        y_pred: predicted masks of the same shape.
        color_mapping: dict `class -> RGB`; default: a fixed palette.
        blend: mix masks with the image (True) or paint them opaque.
        alpha: mask opacity in [0, 1].
        ignore_index: mask value never painted.
        data_format: `"channels_last"` or `"channels_first"`; default `image_data_format()`.
        **kwargs: passed on to `plot_image_gallery` (`path`, `show`, `scale`, `dpi`, ...).

    Returns:
        What `plot_image_gallery` returns: the `Figure`, or None when shown.

    Example:
        >>> import numpy as np
        >>> masks = np.zeros((2, 8, 8), "int32")
        >>> fig = plot_segmentation_mask_gallery(np.zeros((2, 8, 8, 3)), 2, y_true=masks,
        ...                                      show=False)
        >>> len(fig.axes)
        4
    """
    name = "plot_segmentation_mask_gallery"
    data_format = data_format_of(name, data_format)
    images = _pixels(name, images, value_range, data_format)
    columns = [images]
    for masks in (y_true, y_pred):
        if masks is not None:
            columns.append(draw_segmentation_masks(
                images, _masks_last(masks, data_format).astype("int32"), num_classes=num_classes,
                color_mapping=color_mapping, alpha=alpha, blend=blend, ignore_index=ignore_index,
                data_format="channels_last"))
    gallery = np.stack(columns, axis=1).reshape((-1,) + images.shape[1:])
    return plot_image_gallery(gallery, value_range=(0, 255), rows=len(images), cols=len(columns),
                              data_format="channels_last", **kwargs)
