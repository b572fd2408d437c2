"""Batch iterators behind ImageDataGenerator.flow*: PyDatasets that `fit` consumes directly."""
from __future__ import annotations

import os
import threading

import numpy as np

from kestrel import config
from kestrel.preprocessing._image_io import array_to_img, img_to_array, load_img
from kestrel.utils.py_dataset import PyDataset

IMAGE_FORMATS = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")
_CHANNELS = {"rgb": 3, "rgba": 4, "grayscale": 1}


class Iterator(PyDataset):
    """Batches of `n` samples by index (`it[i]`) or endlessly (`next(it)`), reshuffled per epoch.

    Subclasses define `_get_batches_of_transformed_samples(index_array)`.
    """

    white_list_formats = IMAGE_FORMATS

    def __init__(self, n, batch_size, shuffle, seed, **kwargs):
        super().__init__(**kwargs)
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.batch_index = 0
        self.total_batches_seen = 0
        self.index_array = None
        self.lock = threading.Lock()

    def _set_index_array(self):
        self.index_array = np.random.permutation(self.n) if self.shuffle else np.arange(self.n)

    def _seed_next_batch(self):
        if self.seed is not None:
            np.random.seed(self.seed + self.total_batches_seen)
        self.total_batches_seen += 1

    def __getitem__(self, idx):
        if idx >= len(self):
            raise ValueError(f"{type(self).__name__}: batch {idx} requested, but there are "
                             f"{len(self)} batches.")
        self._seed_next_batch()
        if self.index_array is None:
            self._set_index_array()
        return self._get_batches_of_transformed_samples(
            self.index_array[self.batch_size * idx:self.batch_size * (idx + 1)])

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def on_epoch_end(self):
        self._set_index_array()

    def reset(self):
        """Restart the endless iteration at the first batch."""
        self.batch_index = 0

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            if self.seed is not None:
                np.random.seed(self.seed + self.total_batches_seen)
            if self.batch_index == 0:
                self._set_index_array()
            start = (self.batch_index * self.batch_size) % self.n if self.n else 0
            self.batch_index = self.batch_index + 1 if self.n > start + self.batch_size else 0
            self.total_batches_seen += 1
            index_array = self.index_array[start:start + self.batch_size]
        return self._get_batches_of_transformed_samples(index_array)

    def _transform(self, x):
        gen = self.image_data_generator
        if gen is None:
            return x
        return gen.standardize(gen.apply_transform(x, gen.get_random_transform(x.shape)))

    def _save_batch(self, batch_x, index_array, hash_range):
        for i, j in enumerate(index_array):
            img = array_to_img(batch_x[i], self.data_format, scale=True)
            name = f"{self.save_prefix}_{j}_{np.random.randint(hash_range)}.{self.save_format}"
            img.save(os.path.join(self.save_to_dir, name))


def _split_subset(subset, validation_split):
    """(start, stop) fractions for a subset: validation takes the first `validation_split`."""
    if subset is None:
        return None
    if subset not in ("training", "validation"):
        raise ValueError('Invalid subset name; expected "training" or "validation". '
                         f"Received: subset={subset!r}")
    return (0, validation_split) if subset == "validation" else (validation_split, 1)


class NumpyArrayIterator(Iterator):
    """Batches of transformed images from a rank-4 array `x` (with optional `y`, weights).

    `x` may be `(images, extra)` or `(images, [extras...])`: extra arrays are batched alongside.
    """

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False,
                 sample_weight=None, seed=None, data_format=None, save_to_dir=None,
                 save_prefix="", save_format="png", subset=None, ignore_class_split=False,
                 dtype=None):
        self.dtype = dtype = dtype or config.floatx()
        x_misc = []
        if isinstance(x, (tuple, list)):
            x_misc = [np.asarray(a) for a in (x[1] if isinstance(x[1], list) else [x[1]])]
            x = x[0]
            if any(len(a) != len(x) for a in x_misc):
                raise ValueError("NumpyArrayIterator: all arrays in `x` must have the same "
                                 f"length. Received: lengths {[len(x)] + [len(a) for a in x_misc]}")
        for name, other in (("y", y), ("sample_weight", sample_weight)):
            if other is not None and len(other) != len(x):
                raise ValueError(f"NumpyArrayIterator: `x` and `{name}` must have the same "
                                 f"length. Received: len(x)={len(x)}, len({name})={len(other)}")
        split = _split_subset(subset, image_data_generator._validation_split)
        if split is not None:
            cut = int(len(x) * image_data_generator._validation_split)
            if (y is not None and not ignore_class_split
                    and not np.array_equal(np.unique(y[:cut]), np.unique(y[cut:]))):
                raise ValueError("NumpyArrayIterator: training and validation subsets have "
                                 "different classes after the split; shuffle arrays sorted by "
                                 "label (or pass ignore_class_split=True).")
            part = slice(None, cut) if subset == "validation" else slice(cut, None)
            x, x_misc = x[part], [a[part] for a in x_misc]
            y = None if y is None else y[part]
            sample_weight = None if sample_weight is None else sample_weight[part]
        self.x = np.asarray(x, dtype=dtype)
        if self.x.ndim != 4:
            raise ValueError("NumpyArrayIterator: `x` must have rank 4. "
                             f"Received: shape={self.x.shape}")
        self.x_misc = x_misc
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.image_data_generator = image_data_generator
        self.data_format = config.standardize_data_format(data_format)
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, save_format
        super().__init__(self.x.shape[0], batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, index_array):
        batch_x = np.stack([self._transform(self.x[j].copy()) for j in index_array]).astype(
            self.dtype, copy=False) if len(index_array) else self.x[:0].copy()
        if self.save_to_dir:
            self._save_batch(batch_x, index_array, 10**4)
        inputs = [batch_x] + [a[index_array] for a in self.x_misc] if self.x_misc else batch_x
        if self.y is None:
            return inputs
        if self.sample_weight is None:
            return inputs, self.y[index_array]
        return inputs, self.y[index_array], self.sample_weight[index_array]


class BatchFromFilesMixin:
    """Reads image files into transformed batches with labels per `class_mode`."""

    def set_processing_attrs(self, image_data_generator, target_size, color_mode, data_format,
                             save_to_dir, save_prefix, save_format, subset, interpolation,
                             keep_aspect_ratio):
        if color_mode not in _CHANNELS:
            raise ValueError('Invalid color_mode; expected "rgb", "rgba", or "grayscale". '
                             f"Received: color_mode={color_mode!r}")
        self.image_data_generator = image_data_generator
        self.target_size = tuple(target_size)
        self.color_mode = color_mode
        self.data_format = config.standardize_data_format(data_format)
        channels = (_CHANNELS[color_mode],)
        self.image_shape = (self.target_size + channels if self.data_format == "channels_last"
                            else channels + self.target_size)
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, save_format
        self.interpolation, self.keep_aspect_ratio = interpolation, keep_aspect_ratio
        validation_split = getattr(image_data_generator, "_validation_split", 0.0)
        self.split = _split_subset(subset, validation_split)
        self.subset = subset

    def _get_batches_of_transformed_samples(self, index_array):
        batch_x = np.zeros((len(index_array),) + self.image_shape, dtype=self.dtype)
        for i, j in enumerate(index_array):
            img = load_img(self.filepaths[j], color_mode=self.color_mode,
                           target_size=self.target_size, interpolation=self.interpolation,
                           keep_aspect_ratio=self.keep_aspect_ratio)
            batch_x[i] = self._transform(img_to_array(img, data_format=self.data_format,
                                                      dtype=self.dtype))
            img.close()
        if self.save_to_dir:
            self._save_batch(batch_x, index_array, 10**7)
        mode = self.class_mode
        if mode == "input":
            batch_y = batch_x.copy()
        elif mode in ("binary", "sparse"):
            batch_y = np.asarray([self.classes[j] for j in index_array], dtype=self.dtype)
        elif mode == "categorical":
            batch_y = np.zeros((len(batch_x), len(self.class_indices)), dtype=self.dtype)
            for i, j in enumerate(index_array):
                batch_y[i, self.classes[j]] = 1.0
        elif mode == "multi_output":
            batch_y = [output[index_array] for output in self.labels]
        elif mode == "raw":
            batch_y = self.labels[index_array]
        else:
            return batch_x
        if self.sample_weight is None:
            return batch_x, batch_y
        return batch_x, batch_y, self.sample_weight[index_array]


def _list_files(directory, formats, follow_links):
    """Image files under `directory` (recursively), folders and names sorted."""
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links),
                                 key=lambda entry: entry[0]):
        for name in sorted(files):
            if name.lower().endswith(formats):
                yield os.path.join(root, name)


class DirectoryIterator(BatchFromFilesMixin, Iterator):
    """Images from `directory/<class>/...`: classes are the sorted sub-folder names."""

    allowed_class_modes = ("categorical", "binary", "sparse", "input", None)

    def __init__(self, directory, image_data_generator, target_size=(256, 256), color_mode="rgb",
                 classes=None, class_mode="categorical", batch_size=32, shuffle=True, seed=None,
                 data_format=None, save_to_dir=None, save_prefix="",
                 save_format="png", follow_links=False, subset=None, interpolation="nearest",
                 keep_aspect_ratio=False, dtype=None):
        self.set_processing_attrs(image_data_generator, target_size, color_mode, data_format,
                                  save_to_dir, save_prefix, save_format, subset, interpolation,
                                  keep_aspect_ratio)
        if class_mode not in self.allowed_class_modes:
            raise ValueError(f"Invalid class_mode; expected one of {self.allowed_class_modes}. "
                             f"Received: class_mode={class_mode!r}")
        self.directory, self.class_mode = directory, class_mode
        self.dtype = dtype or config.floatx()
        if not classes:
            classes = [d for d in sorted(os.listdir(directory))
                       if os.path.isdir(os.path.join(directory, d))]
        self.num_classes = len(classes)
        self.class_indices = {name: i for i, name in enumerate(classes)}
        self.filenames, labels = [], []
        for name in classes:
            folder = os.path.join(directory, name)
            files = list(_list_files(folder, self.white_list_formats, follow_links))
            if self.split:
                files = files[int(self.split[0] * len(files)):int(self.split[1] * len(files))]
            self.filenames += [os.path.join(name, os.path.relpath(f, folder)) for f in files]
            labels += [self.class_indices[name]] * len(files)
        self.classes = np.asarray(labels, dtype="int32")
        self.samples = len(self.filenames)
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(directory, name) for name in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed)

    @property
    def filepaths(self):
        """Full paths of the images, in sample order."""
        return self._filepaths

    @property
    def labels(self):
        """Class index of each image."""
        return self.classes

    @property
    def sample_weight(self):
        return None
