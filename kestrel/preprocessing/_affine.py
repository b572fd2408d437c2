"""Per-image NumPy transforms behind ImageDataGenerator: affine warps, channel and brightness shifts.

The affine warp reproduces `scipy.ndimage.affine_transform` (spline order 0 or 1) with its
`nearest`, `reflect`, `wrap` and `constant` boundary modes, which Keras 2 called per channel.
"""
from __future__ import annotations

import numpy as np

FILL_MODES = ("nearest", "reflect", "wrap", "constant")


def transform_matrix_offset_center(matrix, x, y):
    """Conjugate a 3x3 homogeneous `matrix` so that it acts about the centre of an x-by-y image."""
    o_x, o_y = float(x) / 2 - 0.5, float(y) / 2 - 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return offset @ matrix @ reset


def _map_coordinates(coords, size: int, mode: str):
    """Fold coordinates into the image along one axis; also return where they fell outside."""
    outside = (coords < 0) | (coords > size - 1)
    if mode == "reflect":  # half-sample symmetric: d c b a | a b c d | d c b a
        folded = np.mod(coords + 0.5, 2 * size) - 0.5
        coords = np.where(folded > size - 0.5, 2 * size - 1 - folded, folded)
    elif mode == "wrap":  # scipy's legacy wrap: period size - 1, in-range points untouched
        if size == 1:
            return np.zeros_like(coords), outside
        period = size - 1
        coords = np.where(coords > period, np.mod(coords, period),
                          np.where(coords < 0, period - np.mod(-coords, period), coords))
    return coords, outside


def _sample(channels, rows, cols, order: int, mode: str, cval: float):
    """Interpolate `channels` (c, h, w) at float coordinates `rows`/`cols` (each (h, w))."""
    height, width = channels.shape[1:]
    rows, out_r = _map_coordinates(rows, height, mode)
    cols, out_c = _map_coordinates(cols, width, mode)
    if order == 0:
        r = np.clip(np.floor(rows + 0.5).astype(np.int64), 0, height - 1)
        c = np.clip(np.floor(cols + 0.5).astype(np.int64), 0, width - 1)
        out = channels[:, r, c].astype(np.float64)
    else:
        r0, c0 = np.floor(rows), np.floor(cols)
        wr, wc = rows - r0, cols - c0
        r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
        r1, c1 = (np.clip(r0 + 1, 0, height - 1), np.clip(c0 + 1, 0, width - 1))
        r0, c0 = np.clip(r0, 0, height - 1), np.clip(c0, 0, width - 1)
        out = ((1 - wr) * (1 - wc) * channels[:, r0, c0] + (1 - wr) * wc * channels[:, r0, c1]
               + wr * (1 - wc) * channels[:, r1, c0] + wr * wc * channels[:, r1, c1])
    if mode == "constant":
        out = np.where(out_r | out_c, cval, out)
    return out


def apply_affine_transform(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, row_axis=1, col_axis=2,
                           channel_axis=0, fill_mode="nearest", cval=0.0, order=1):
    """Rotate (degrees), shift, shear (degrees) and zoom one 3D image about its centre.

    Args:
        x: 3D array; `row_axis`, `col_axis`, `channel_axis` say which axis is which
            (channels first or last).
        theta: rotation angle in degrees.
        tx / ty: shift along rows / columns, in pixels.
        shear: shear angle in degrees.
        zx / zy: zoom along rows / columns (values > 1 zoom out).
        fill_mode: `"nearest"`, `"reflect"`, `"wrap"` or `"constant"` (fills with `cval`).
        order: interpolation order, 0 (nearest) or 1 (bilinear).

    Example:
        >>> apply_affine_transform(np.ones((4, 4, 1)), theta=90, row_axis=0, col_axis=1,
        ...                        channel_axis=2).shape
        (4, 4, 1)
    """
    if sorted((row_axis, col_axis, channel_axis)) != [0, 1, 2]:
        raise ValueError("apply_affine_transform: `row_axis`, `col_axis` and `channel_axis` "
                         "must be 0, 1 and 2 in some order. Received: "
                         f"{(row_axis, col_axis, channel_axis)}")
    if np.ndim(x) != 3:
        raise ValueError("apply_affine_transform: expected a 3D image (one multi-channel "
                         f"image). Received: shape={np.shape(x)}")
    if channel_axis not in (0, 2):
        raise ValueError("apply_affine_transform: channels must be the first or last axis. "
                         f"Received: channel_axis={channel_axis}")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"apply_affine_transform: `fill_mode` must be one of {FILL_MODES}. "
                         f"Received: fill_mode={fill_mode!r}")
    if order not in (0, 1):
        raise ValueError(f"apply_affine_transform: `order` must be 0 or 1. Received: {order}")
    theta, shear = np.deg2rad(theta), np.deg2rad(shear)
    parts = [
        (theta != 0, [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                      [0, 0, 1]]),
        (tx != 0 or ty != 0, [[1, 0, tx], [0, 1, ty], [0, 0, 1]]),
        (shear != 0, [[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]]),
        (zx != 1 or zy != 1, [[zx, 0, 0], [0, zy, 0], [0, 0, 1]]),
    ]
    matrices = [np.array(m, dtype=np.float64) for active, m in parts if active]
    if not matrices:
        return x
    matrix = matrices[0]
    for other in matrices[1:]:
        matrix = matrix @ other
    height, width = x.shape[row_axis], x.shape[col_axis]
    matrix = transform_matrix_offset_center(matrix, height, width)
    channels = np.moveaxis(x, channel_axis, 0)
    if col_axis > row_axis:  # Keras 2's matrix is (col, row)-ordered for (row, col) images
        matrix = matrix[[1, 0, 2]][:, [1, 0, 2]]
    grid_a, grid_b = np.meshgrid(np.arange(channels.shape[1], dtype=np.float64),
                                 np.arange(channels.shape[2], dtype=np.float64), indexing="ij")
    src_a = matrix[0, 0] * grid_a + matrix[0, 1] * grid_b + matrix[0, 2]
    src_b = matrix[1, 0] * grid_a + matrix[1, 1] * grid_b + matrix[1, 2]
    out = _sample(channels, src_a, src_b, order, fill_mode, cval).astype(x.dtype, copy=False)
    return np.moveaxis(out, 0, channel_axis)


def flip_axis(x, axis):
    """Reverse `x` along `axis` (a copy)."""
    return np.flip(x, axis).copy()


def apply_channel_shift(x, intensity, channel_axis=0):
    """Add `intensity` to every channel, clipped to the image's original min and max.

    `channel_axis` is accepted for Keras 2 compatibility; the shift is the same on every axis.
    """
    return np.clip(x + intensity, np.min(x), np.max(x))


def apply_brightness_shift(x, brightness, scale=True):
    """Scale brightness by `brightness` as PIL's `ImageEnhance.Brightness` does (0 = black).

    The image goes through 8-bit RGB, as in Keras 2; values outside [0, 255] are rescaled to
    that range and, when `scale` is False, mapped back afterwards.
    """
    from kestrel.preprocessing._image_io import array_to_img, img_to_array, require_pil

    enhance = require_pil("apply_brightness_shift", "ImageEnhance")
    x_min, x_max = np.min(x), np.max(x)
    local_scale = x_min < 0 or x_max > 255
    img = array_to_img(x, data_format="channels_last", scale=local_scale or scale)
    out = img_to_array(enhance.Brightness(img).enhance(brightness), data_format="channels_last")
    if not scale and local_scale:
        out = out / 255 * (x_max - x_min) + x_min
    return out
