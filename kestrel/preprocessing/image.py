"""Keras 2's `keras.preprocessing.image`: ImageDataGenerator, its iterators and image helpers."""
from __future__ import annotations

import math
import warnings

import numpy as np

from kestrel import config
from kestrel.preprocessing._affine import (apply_affine_transform, apply_brightness_shift,
                                           apply_channel_shift, flip_axis,
                                           transform_matrix_offset_center)
from kestrel.preprocessing._dataframe_iterator import DataFrameIterator
from kestrel.preprocessing import _image_io
from kestrel.preprocessing._image_io import array_to_img, img_to_array, save_img, smart_resize
from kestrel.preprocessing._image_iterators import (DirectoryIterator, Iterator,
                                                    NumpyArrayIterator)
from kestrel.preprocessing._random_transforms import (random_brightness, random_channel_shift,
                                                      random_rotation, random_shear,
                                                      random_shift, random_zoom)

__all__ = ["DataFrameIterator", "DirectoryIterator", "ImageDataGenerator", "Iterator",
           "NumpyArrayIterator", "apply_affine_transform", "apply_brightness_shift",
           "apply_channel_shift", "array_to_img", "img_to_array", "load_img", "save_img",
           "smart_resize", "transform_matrix_offset_center", "flip_axis", "random_brightness",
           "random_channel_shift", "random_rotation", "random_shear", "random_shift",
           "random_zoom"]


def load_img(path, grayscale=False, color_mode="rgb", target_size=None,
              interpolation="nearest", keep_aspect_ratio=False):
    """`kestrel.utils.load_img` with Keras 2's deprecated `grayscale` flag (the same as
    `color_mode="grayscale"`) as second argument."""
    if grayscale:
        warnings.warn('load_img: `grayscale` is deprecated; use `color_mode="grayscale"`.')
        color_mode = "grayscale"
    return _image_io.load_img(path, color_mode=color_mode, target_size=target_size,
                              interpolation=interpolation, keep_aspect_ratio=keep_aspect_ratio)


def _shift(spec, size: int) -> float:
    """A random shift from a `*_shift_range`: float (fraction if < 1), int or list of pixels."""
    if isinstance(spec, (int, np.integer)) or np.ndim(spec) == 1:
        shift = np.random.choice(spec) * np.random.choice([-1, 1])
    else:
        shift = np.random.uniform(-spec, spec)
    return shift * size if np.max(spec) < 1 else shift


class ImageDataGenerator:
    """Real-time image augmentation and normalization for batches of images (Keras 2).

    Per image, in this order: a random affine warp (rotation, shifts, shear, zoom), channel
    shift, flips and brightness (`apply_transform`), then `preprocessing_function`, `rescale`,
    sample-wise and feature-wise normalization and ZCA whitening (`standardize`). Feature-wise
    statistics come from `fit(x)`.

    Args:
        featurewise_center / featurewise_std_normalization: subtract the per-channel mean /
            divide by the per-channel std found by `fit`.
        samplewise_center / samplewise_std_normalization: the same per image.
        zca_whitening: apply the ZCA matrix found by `fit` (`zca_epsilon` regularizes it).
        rotation_range: degrees; a rotation is drawn from `[-r, r]`.
        width_shift_range / height_shift_range: float (< 1: fraction of the size, else
            pixels), int or list of pixel shifts.
        brightness_range: `(low, high)` brightness factors.
        shear_range: shear angle in degrees.
        zoom_range: float `z` for `[1 - z, 1 + z]`, or `[low, high]`.
        channel_shift_range: intensity added to all channels, drawn from `[-r, r]`.
        fill_mode: "constant", "nearest", "reflect" or "wrap"; `cval` fills "constant".
        horizontal_flip / vertical_flip: flip half of the images.
        rescale: factor multiplied in first (after `preprocessing_function`).
        preprocessing_function: callable on each image (rank-3 array), run first.
        data_format: "channels_last" (default from the config) or "channels_first".
        validation_split: fraction kept for `subset="validation"` in `flow*`.
        interpolation_order: 0 (nearest) or 1 (bilinear) for the affine warp.
        dtype: dtype of the produced arrays (default `floatx()`).

    Example:
        >>> gen = ImageDataGenerator(rescale=1 / 255)
        >>> x, y = gen.flow(np.full((4, 8, 8, 3), 255.0), np.arange(4), shuffle=False)[0]
        >>> float(x.max()), y.tolist()
        (1.0, [0, 1, 2, 3])
    """

    def __init__(self, featurewise_center=False, samplewise_center=False,
                 featurewise_std_normalization=False, samplewise_std_normalization=False,
                 zca_whitening=False, zca_epsilon=1e-6, rotation_range=0, width_shift_range=0.0,
                 height_shift_range=0.0, brightness_range=None, shear_range=0.0, zoom_range=0.0,
                 channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None,
                 data_format=None, validation_split=0.0, interpolation_order=1, dtype=None):
        self.data_format = config.standardize_data_format(data_format)
        self.dtype = dtype or config.floatx()
        self.featurewise_center = featurewise_center or zca_whitening or \
            featurewise_std_normalization
        self.featurewise_std_normalization = featurewise_std_normalization and not zca_whitening
        self.samplewise_center = samplewise_center or samplewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        for flag, implied in ((zca_whitening, featurewise_center),
                              (featurewise_std_normalization, featurewise_center),
                              (samplewise_std_normalization, samplewise_center)):
            if flag and not implied:
                warnings.warn("ImageDataGenerator: zca_whitening / *_std_normalization turn on "
                              "the matching *_center option.")
        if zca_whitening and featurewise_std_normalization:
            warnings.warn("ImageDataGenerator: zca_whitening overrides "
                          "featurewise_std_normalization.")
        self.zca_whitening, self.zca_epsilon = zca_whitening, zca_epsilon
        self.rotation_range = rotation_range
        self.width_shift_range, self.height_shift_range = width_shift_range, height_shift_range
        self.shear_range, self.channel_shift_range = shear_range, channel_shift_range
        self.fill_mode, self.cval = fill_mode, cval
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.rescale, self.preprocessing_function = rescale, preprocessing_function
        self.interpolation_order = interpolation_order
        self.channel_axis, self.row_axis, self.col_axis = (
            (3, 1, 2) if self.data_format == "channels_last" else (1, 2, 3))
        if validation_split and not 0 < validation_split < 1:
            raise ValueError("ImageDataGenerator: `validation_split` must be strictly between 0 "
                             f"and 1. Received: validation_split={validation_split}")
        self._validation_split = validation_split
        if isinstance(zoom_range, (float, int)):
            self.zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif len(zoom_range) == 2 and all(isinstance(v, (float, int)) for v in zoom_range):
            self.zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError("ImageDataGenerator: `zoom_range` must be a float or two floats. "
                             f"Received: zoom_range={zoom_range}")
        if brightness_range is not None and (not isinstance(brightness_range, (tuple, list))
                                             or len(brightness_range) != 2):
            raise ValueError("ImageDataGenerator: `brightness_range` must be two floats. "
                             f"Received: brightness_range={brightness_range}")
        self.brightness_range = brightness_range
        self.mean = self.std = self.zca_whitening_matrix = None

    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None,
             save_to_dir=None, save_prefix="", save_format="png", ignore_class_split=False,
             subset=None):
        """Batches of augmented images from arrays: a `NumpyArrayIterator` for `fit`."""
        return NumpyArrayIterator(
            x, y, self, batch_size=batch_size, shuffle=shuffle, sample_weight=sample_weight,
            seed=seed, data_format=self.data_format, save_to_dir=save_to_dir,
            save_prefix=save_prefix, save_format=save_format,
            ignore_class_split=ignore_class_split, subset=subset, dtype=self.dtype)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb",
                            classes=None, class_mode="categorical", batch_size=32, shuffle=True,
                            seed=None, save_to_dir=None, save_prefix="", save_format="png",
                            follow_links=False, subset=None, interpolation="nearest",
                            keep_aspect_ratio=False):
        """Batches from `directory/<class>/<image>` files: a `DirectoryIterator` for `fit`."""
        return DirectoryIterator(
            directory, self, target_size=target_size, color_mode=color_mode, classes=classes,
            class_mode=class_mode, batch_size=batch_size, shuffle=shuffle, seed=seed,
            data_format=self.data_format, save_to_dir=save_to_dir, save_prefix=save_prefix,
            save_format=save_format, follow_links=follow_links, subset=subset,
            interpolation=interpolation, keep_aspect_ratio=keep_aspect_ratio, dtype=self.dtype)

    def flow_from_dataframe(self, dataframe, directory=None, x_col="filename", y_col="class",
                            weight_col=None, target_size=(256, 256), color_mode="rgb",
                            classes=None, class_mode="categorical", batch_size=32, shuffle=True,
                            seed=None, save_to_dir=None, save_prefix="", save_format="png",
                            subset=None, interpolation="nearest", validate_filenames=True,
                            **kwargs):
        """Batches from files listed in a pandas DataFrame: a `DataFrameIterator` for `fit`."""
        for old in ("has_ext", "sort", "drop_duplicates"):
            if old in kwargs:
                warnings.warn(f"flow_from_dataframe: `{old}` is deprecated and ignored.",
                              DeprecationWarning)
        if class_mode == "other":
            warnings.warn('flow_from_dataframe: class_mode="other" is deprecated; use "raw".',
                          DeprecationWarning)
            class_mode = "raw"
        return DataFrameIterator(
            dataframe, directory, self, x_col=x_col, y_col=y_col, weight_col=weight_col,
            target_size=target_size, color_mode=color_mode, classes=classes,
            class_mode=class_mode, data_format=self.data_format, batch_size=batch_size,
            shuffle=shuffle, seed=seed, save_to_dir=save_to_dir, save_prefix=save_prefix,
            save_format=save_format, subset=subset, interpolation=interpolation,
            validate_filenames=validate_filenames, dtype=self.dtype)

    def standardize(self, x):
        """Apply the normalization options to one image or a batch (in place when it can)."""
        if self.preprocessing_function:
            x = self.preprocessing_function(x)
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= np.mean(x, keepdims=True)
        if self.samplewise_std_normalization:
            x /= np.std(x, keepdims=True) + 1e-6
        for enabled, stat, name in ((self.featurewise_center, self.mean, "featurewise_center"),
                                    (self.featurewise_std_normalization, self.std,
                                     "featurewise_std_normalization"),
                                    (self.zca_whitening, self.zca_whitening_matrix,
                                     "zca_whitening")):
            if not enabled:
                continue
            if stat is None:
                warnings.warn(f"ImageDataGenerator: `{name}` is set but the generator has not "
                              "been fit; call `.fit(numpy_data)` first.")
            elif name == "featurewise_center":
                x -= stat
            elif name == "featurewise_std_normalization":
                x /= stat + 1e-6
            else:
                flat = x.reshape(-1, math.prod(x.shape[-3:]))
                x = np.reshape(flat @ stat, x.shape)
        return x

    def get_random_transform(self, img_shape, seed=None):
        """Draw the parameters of one random transform for an image of shape `img_shape`."""
        if seed is not None:
            np.random.seed(seed)
        theta = (np.random.uniform(-self.rotation_range, self.rotation_range)
                 if self.rotation_range else 0)
        tx = _shift(self.height_shift_range, img_shape[self.row_axis - 1]) \
            if self.height_shift_range else 0
        ty = _shift(self.width_shift_range, img_shape[self.col_axis - 1]) \
            if self.width_shift_range else 0
        shear = np.random.uniform(-self.shear_range, self.shear_range) if self.shear_range else 0
        if self.zoom_range[0] == 1 and self.zoom_range[1] == 1:
            zx, zy = 1, 1
        else:
            zx, zy = np.random.uniform(self.zoom_range[0], self.zoom_range[1], 2)
        flip_horizontal = (np.random.random() < 0.5) * self.horizontal_flip
        flip_vertical = (np.random.random() < 0.5) * self.vertical_flip
        channel_shift = (np.random.uniform(-self.channel_shift_range, self.channel_shift_range)
                         if self.channel_shift_range != 0 else None)
        brightness = (np.random.uniform(*self.brightness_range)
                      if self.brightness_range is not None else None)
        return {"theta": theta, "tx": tx, "ty": ty, "shear": shear, "zx": zx, "zy": zy,
                "flip_horizontal": flip_horizontal, "flip_vertical": flip_vertical,
                "channel_shift_intensity": channel_shift, "brightness": brightness}

    def apply_transform(self, x, transform_parameters):
        """Apply the transform described by `transform_parameters` to one 3D image."""
        params = transform_parameters
        row, col, channel = self.row_axis - 1, self.col_axis - 1, self.channel_axis - 1
        x = apply_affine_transform(
            x, params.get("theta", 0), params.get("tx", 0), params.get("ty", 0),
            params.get("shear", 0), params.get("zx", 1), params.get("zy", 1), row_axis=row,
            col_axis=col, channel_axis=channel, fill_mode=self.fill_mode, cval=self.cval,
            order=self.interpolation_order)
        if params.get("channel_shift_intensity") is not None:
            x = apply_channel_shift(x, params["channel_shift_intensity"], channel)
        if params.get("flip_horizontal", False):
            x = flip_axis(x, col)
        if params.get("flip_vertical", False):
            x = flip_axis(x, row)
        if params.get("brightness") is not None:
            x = apply_brightness_shift(x, params["brightness"], False)
        return x

    def random_transform(self, x, seed=None):
        """One randomly transformed copy of the 3D image `x`."""
        return self.apply_transform(x, self.get_random_transform(x.shape, seed))

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Compute the feature-wise mean, std and ZCA matrix from sample images `x` (rank 4).

        Args:
            x: sample images.
            augment: fit on `rounds` randomly transformed copies of `x` instead.
            seed: NumPy seed for the augmentation.
        """
        x = np.array(x, dtype=self.dtype)  # a copy: rescale below works in place
        if x.ndim != 4:
            raise ValueError("ImageDataGenerator.fit: `x` must have rank 4. "
                             f"Received: shape={x.shape}")
        if x.shape[self.channel_axis] not in (1, 3, 4):
            warnings.warn(f"ImageDataGenerator.fit: expected 1, 3 or 4 channels on axis "
                          f"{self.channel_axis} ({self.data_format}). Received: "
                          f"shape={x.shape}")
        if seed is not None:
            np.random.seed(seed)
        if self.rescale:
            x *= self.rescale
        if augment:
            x = np.stack([self.random_transform(image) for _ in range(rounds) for image in x])
            x = x.astype(self.dtype, copy=False)
        stat_shape = [1, 1, 1]
        stat_shape[self.channel_axis - 1] = x.shape[self.channel_axis]
        axes = (0, self.row_axis, self.col_axis)
        if self.featurewise_center:
            self.mean = np.reshape(np.mean(x, axis=axes), stat_shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = np.reshape(np.std(x, axis=axes), stat_shape)
            x /= self.std + 1e-6
        if self.zca_whitening:
            flat = np.reshape(x, (len(x), -1))
            u, s, _ = np.linalg.svd(flat.T, full_matrices=False)
            scale = (np.sqrt(len(x)) / (s + self.zca_epsilon)).astype(x.dtype)
            self.zca_whitening_matrix = (u * scale) @ u.T
