"""Keras 2's random single-image transforms (`keras.preprocessing.image.random_rotation`, ...):
one random draw from NumPy's global generator, then the matching `apply_*` function.

As in Keras 2, the image axes default to channels first (`row_axis=1, col_axis=2,
channel_axis=0`).
"""
from __future__ import annotations

import numpy as np

from kestrel.preprocessing._affine import (apply_affine_transform, apply_brightness_shift,
                                           apply_channel_shift)


def _affine(x, row_axis, col_axis, channel_axis, fill_mode, cval, order, **transform):
    """`apply_affine_transform` of one drawn `transform` with the caller's axes and filling."""
    return apply_affine_transform(x, row_axis=row_axis, col_axis=col_axis,
                                  channel_axis=channel_axis, fill_mode=fill_mode, cval=cval,
                                  order=order, **transform)


def random_rotation(x, rg, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest",
                    cval=0.0, interpolation_order=1):
    """Rotate by an angle drawn from `[-rg, rg]` degrees."""
    theta = np.random.uniform(-rg, rg)
    return _affine(x, row_axis, col_axis, channel_axis, fill_mode, cval,
                   interpolation_order, theta=theta)


def random_shift(x, wrg, hrg, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest",
                 cval=0.0, interpolation_order=1):
    """Shift by fractions drawn from `[-hrg, hrg]` of the height, `[-wrg, wrg]` of the width."""
    h, w = x.shape[row_axis], x.shape[col_axis]
    tx = np.random.uniform(-hrg, hrg) * h
    ty = np.random.uniform(-wrg, wrg) * w
    return _affine(x, row_axis, col_axis, channel_axis, fill_mode, cval,
                   interpolation_order, tx=tx, ty=ty)


def random_shear(x, intensity, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest",
                 cval=0.0, interpolation_order=1):
    """Shear by an angle drawn from `[-intensity, intensity]` degrees."""
    shear = np.random.uniform(-intensity, intensity)
    return _affine(x, row_axis, col_axis, channel_axis, fill_mode, cval,
                   interpolation_order, shear=shear)


def random_zoom(x, zoom_range, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest",
                cval=0.0, interpolation_order=1):
    """Zoom rows and columns by two factors drawn from `zoom_range` (a pair of floats)."""
    if len(zoom_range) != 2:
        raise ValueError("`zoom_range` should be a tuple or list of two floats. "
                         f"Received: zoom_range={zoom_range!r}")
    if zoom_range[0] == 1 and zoom_range[1] == 1:
        zx, zy = 1, 1
    else:
        zx, zy = np.random.uniform(zoom_range[0], zoom_range[1], 2)
    return _affine(x, row_axis, col_axis, channel_axis, fill_mode, cval,
                   interpolation_order, zx=zx, zy=zy)


def random_channel_shift(x, intensity_range, channel_axis=0):
    """Shift the channels by an amount drawn from `[-intensity_range, intensity_range]`."""
    intensity = np.random.uniform(-intensity_range, intensity_range)
    return apply_channel_shift(x, intensity, channel_axis=channel_axis)


def random_brightness(x, brightness_range, scale=True):
    """Scale brightness by a factor drawn from `brightness_range` (a pair of floats)."""
    if len(brightness_range) != 2:
        raise ValueError("`brightness_range` should be a tuple or list of two floats. "
                         f"Received: brightness_range={brightness_range!r}")
    return apply_brightness_shift(x, np.random.uniform(*brightness_range), scale)
