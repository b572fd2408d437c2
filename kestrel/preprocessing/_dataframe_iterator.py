"""DataFrameIterator: image batches from file names and labels held in a pandas DataFrame."""
from __future__ import annotations

import os
import warnings

import numpy as np

from kestrel import config
from kestrel.preprocessing._image_iterators import BatchFromFilesMixin, Iterator

_NO_CLASSES = ("input", "multi_output", "raw", None)


class DataFrameIterator(BatchFromFilesMixin, Iterator):
    """Images named in `dataframe[x_col]` (relative to `directory`), labels from `y_col`.

    Labels per `class_mode`: "categorical" (strings or lists of strings: one/multi-hot),
    "binary"/"sparse" (strings), "raw" (any column values), "multi_output" (`y_col` a list of
    columns), "input" (the images), or None (no labels).
    """

    allowed_class_modes = ("binary", "categorical", "input", "multi_output", "raw", "sparse",
                           None)

    def __init__(self, dataframe, directory=None, image_data_generator=None, x_col="filename",
                 y_col="class", weight_col=None, target_size=(256, 256), color_mode="rgb",
                 classes=None, class_mode="categorical", batch_size=32, shuffle=True, seed=None,
                 data_format=None, save_to_dir=None, save_prefix="",
                 save_format="png", subset=None, interpolation="nearest",
                 keep_aspect_ratio=False, dtype=None, validate_filenames=True):
        self.set_processing_attrs(image_data_generator, target_size, color_mode, data_format,
                                  save_to_dir, save_prefix, save_format, subset, interpolation,
                                  keep_aspect_ratio)
        df = dataframe.copy()
        self.directory = directory or ""
        self.class_mode, self.dtype = class_mode, dtype or config.floatx()
        self._check_params(df, x_col, y_col, weight_col, classes)
        if validate_filenames:
            df = self._filter_valid_filepaths(df, x_col)
        if class_mode not in _NO_CLASSES:
            df, classes = self._filter_classes(df, y_col, classes)
            self.class_indices = {name: i for i, name in enumerate(classes)}
        if self.split:
            df = df.iloc[int(self.split[0] * len(df)):int(self.split[1] * len(df))]
        if class_mode not in _NO_CLASSES:
            self.classes = [[self.class_indices[c] for c in label]
                            if isinstance(label, (list, tuple)) else self.class_indices[label]
                            for label in df[y_col]]
        self.filenames = df[x_col].tolist()
        self._sample_weight = df[weight_col].values if weight_col else None
        if class_mode == "multi_output":
            self._targets = [np.array(df[col].tolist()) for col in y_col]
        elif class_mode == "raw":
            self._targets = df[y_col].values
        self.samples = len(self.filenames)
        checked = "validated" if validate_filenames else "non-validated"
        found = f"Found {self.samples} {checked} image filenames"
        print(found + "." if class_mode in _NO_CLASSES
              else f"{found} belonging to {len(self.class_indices)} classes.")
        self._filepaths = [os.path.join(self.directory, name) for name in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed)

    def _check_params(self, df, x_col, y_col, weight_col, classes):
        mode = self.class_mode
        if mode not in self.allowed_class_modes:
            raise ValueError(f"Invalid class_mode; expected one of {self.allowed_class_modes}. "
                             f"Received: class_mode={mode!r}")
        if mode == "multi_output" and not isinstance(y_col, list):
            raise TypeError('DataFrameIterator: with class_mode="multi_output", `y_col` must be '
                            f"a list. Received: type={type(y_col).__name__}")
        if not all(isinstance(v, str) for v in df[x_col]):
            raise TypeError(f"DataFrameIterator: all values in x_col={x_col!r} must be strings.")
        if mode in ("binary", "sparse") and not all(isinstance(v, str) for v in df[y_col]):
            raise TypeError(f'DataFrameIterator: with class_mode="{mode}", the y_col={y_col!r} '
                            "values must be strings.")
        if mode == "binary":
            count = len(set(classes)) if classes else df[y_col].nunique()
            if count != 2:
                raise ValueError('DataFrameIterator: class_mode="binary" needs exactly 2 '
                                 f"classes. Received: {count} classes")
        if mode == "categorical" and not all(isinstance(v, (str, list, tuple))
                                             for v in df[y_col]):
            raise TypeError(f'DataFrameIterator: with class_mode="categorical", the '
                            f"y_col={y_col!r} values must be strings, lists or tuples.")
        if classes and mode in _NO_CLASSES:
            warnings.warn(f'DataFrameIterator: `classes` is ignored with class_mode="{mode}".')
        if weight_col and not np.issubdtype(df[weight_col].dtype, np.number):
            raise TypeError(f"DataFrameIterator: column weight_col={weight_col!r} must be "
                            "numeric.")

    @staticmethod
    def _filter_classes(df, y_col, classes):
        """Drop labels not in `classes` (rows left without any); classes default to all, sorted."""
        df = df.copy()
        if not classes:
            found = set()
            for value in df[y_col]:
                found.update(value if isinstance(value, (list, tuple)) else [value])
            return df, sorted(found)
        classes = list(dict.fromkeys(classes))

        def keep(labels):
            if isinstance(labels, (list, tuple)):
                return [c for c in labels if c in classes] or None
            return labels if labels in classes else None

        df[y_col] = df[y_col].apply(keep)
        return df.dropna(subset=[y_col]), classes

    def _filter_valid_filepaths(self, df, x_col):
        paths = df[x_col].map(lambda name: os.path.join(self.directory, name))
        mask = paths.apply(lambda p: os.path.isfile(p)
                           and p.lower().endswith(self.white_list_formats))
        if (~mask).sum():
            warnings.warn(f"DataFrameIterator: found {(~mask).sum()} invalid image filename(s) "
                          f"in x_col={x_col!r}; they are ignored.")
        return df[mask]

    @property
    def filepaths(self):
        """Full paths of the images, in sample order."""
        return self._filepaths

    @property
    def labels(self):
        """Targets ("raw", "multi_output") or class indices."""
        return self._targets if self.class_mode in ("multi_output", "raw") else self.classes

    @property
    def sample_weight(self):
        return self._sample_weight
