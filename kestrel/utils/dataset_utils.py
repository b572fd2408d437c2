"""Batched datasets over torch `Dataset`s, directory indexing and `split_dataset`.

`BatchDataset` is what the `*_dataset_from_directory` and `timeseries_dataset_from_array`
helpers return: an iterable of batches that `fit`/`evaluate`/`predict` consume directly, built
on a torch `DataLoader` (`.dataloader(num_workers=4, pin_memory=True)` gives one to use or
wrap), with Keras' `class_names` / `file_paths` attributes where Keras has them.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset, TensorDataset
from torch.utils.data import random_split
from torch.utils.data._utils.collate import default_collate

from kestrel.utils.dataset_pipeline import Pipeline


class StringBatch(np.ndarray):
    """A NumPy array of strings with tf.keras 2's `.numpy()` (its string batches were tensors:
    `text_batch.numpy()[i]`); `.numpy()` gives the plain array, of `str` rather than bytes."""

    def numpy(self) -> np.ndarray:
        return self.view(np.ndarray)


def collate(samples: list):
    """Stack samples into a batch: strings into a NumPy `str` array (a `StringBatch`), arrays
    and numbers into tensors; `(x, y)` tuples field by field."""
    first = samples[0]
    if isinstance(first, tuple):
        return tuple(collate(list(field)) for field in zip(*samples))
    if isinstance(first, (str, bytes)):
        return np.asarray(samples).view(StringBatch)
    return default_collate(samples)


def pad_collate(samples: list):
    """`collate`, zero-padding the first axis of the first field to the batch's longest."""
    if isinstance(samples[0], tuple):
        first = pad_collate([s[0] for s in samples])
        return (first,) + tuple(collate(list(f)) for f in list(zip(*samples))[1:])
    length = max(s.shape[0] for s in samples)
    return torch.stack([torch.nn.functional.pad(s, (0, 0) * (s.ndim - 1) + (0, length - len(s)))
                        for s in samples])


def ragged_collate(samples: list):
    """`collate`, keeping the first field as a list of tensors of different lengths."""
    if isinstance(samples[0], tuple):
        return ([s[0] for s in samples],) + tuple(
            collate(list(f)) for f in list(zip(*samples))[1:])
    return list(samples)


class BatchDataset(Pipeline):
    """An iterable of batches drawn from a map-style torch `Dataset` of samples.

    Args:
        samples: a torch `Dataset` returning one sample (or `(x, y)` tuple) per index.
        batch_size: samples per batch; None yields samples one by one.
        shuffle: draw a new order each epoch (reproducible from `seed`).
        seed: seed of the shuffling generator.
        collate_fn: how samples become a batch (default: `collate`).

    `len()` is the number of batches per epoch. Use `.dataloader(num_workers=..,
    pin_memory=..)` for a torch `DataLoader` with the same batches and order; `map`, `take`,
    `cache`, `prefetch` and `cardinality` chain as on a `tf.data.Dataset`.

    Example:
        >>> ds = BatchDataset(TensorDataset(torch.arange(5.0)), batch_size=2)
        >>> [b[0].tolist() for b in ds]
        [[0.0, 1.0], [2.0, 3.0], [4.0]]
    """

    def __init__(self, samples: Dataset, batch_size: int | None = 32, shuffle: bool = False,
                 seed: int | None = None, collate_fn=collate):
        self.samples = samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.collate_fn = collate_fn
        self.class_names = None
        self.file_paths = None
        self._generator = torch.Generator()
        self._generator.manual_seed(np.random.randint(1e6) if seed is None else seed)

    def __len__(self) -> int:
        n = len(self.samples)
        return n if self.batch_size is None else math.ceil(n / self.batch_size)

    def dataloader(self, **kwargs) -> DataLoader:
        """A torch `DataLoader` yielding this dataset's batches (extra `kwargs`, e.g.
        `num_workers`, `pin_memory`, `prefetch_factor`, go to `DataLoader`)."""
        sampler = RandomSampler(self.samples, generator=self._generator) if self.shuffle \
            else None
        if self.batch_size is None:
            return DataLoader(self.samples, batch_size=None, sampler=sampler, **kwargs)
        return DataLoader(self.samples, batch_size=self.batch_size, sampler=sampler,
                          collate_fn=self.collate_fn, **kwargs)

    def __iter__(self):
        return iter(self.dataloader())

    def __repr__(self) -> str:
        return (f"<BatchDataset: {len(self.samples)} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}>")


# ---------------------------------------------------------------------- directories
def index_directory(directory, labels, formats, class_names=None, shuffle=True, seed=None,
                    follow_links=False, verbose=True):
    """File paths, integer labels and class names of the files in `directory`.

    With `labels="inferred"`, each (sorted, non-hidden) subdirectory is a class; files are
    listed class by class in sorted order, then shuffled with `np.random.RandomState(seed)`
    when `shuffle` (the same order Keras produces).
    """
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(subdirs):
                raise ValueError("The `class_names` passed did not match the names of the "
                                 f"subdirectories of the target directory. Expected: {subdirs} "
                                 f"(or a subset of it), but received: class_names={class_names}")
            subdirs = list(class_names)
    else:
        if class_names is not None:
            raise ValueError("When `labels=None` (no labels), argument `class_names` cannot be "
                             "specified." if labels is None else
                             "When argument `labels` is specified, argument `class_names` "
                             "cannot be specified (the `class_names` will be the sorted list "
                             "of labels).")
        subdirs = [""]
    filenames, found = [], []
    for index, subdir in enumerate(subdirs):
        names = _files_under(os.path.join(directory, subdir), follow_links, formats)
        filenames += [os.path.join(subdir, name) if subdir else name for name in names]
        found += [index] * len(names)
    if labels == "inferred":
        class_names = subdirs
        labels = np.asarray(found, dtype="int32")
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError("Expected the lengths of `labels` to match the number of files in "
                             f"the target directory. len(labels) is {len(labels)} while we "
                             f"found {len(filenames)} files in directory {directory}.")
        class_names = [str(label) for label in sorted(set(labels))]
    if verbose:
        print(f"Found {len(filenames)} files." if labels is None else
              f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, name) for name in filenames]
    if shuffle:
        seed = np.random.randint(1e6) if seed is None else seed
        np.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    return file_paths, labels, class_names


def _files_under(root: str, follow_links: bool, formats) -> list[str]:
    """Relative paths of files ending in `formats` under `root`, folder by sorted folder."""
    found = []
    for path, _, files in sorted(os.walk(root, followlinks=follow_links), key=lambda w: w[0]):
        found += [os.path.relpath(os.path.join(path, f), root) for f in sorted(files)
                  if f.lower().endswith(formats)]
    return found


def check_validation_split_arg(validation_split, subset, shuffle, seed) -> None:
    """Keras' checks on `validation_split`/`subset`/`seed`."""
    if validation_split and not 0 < validation_split < 1:
        raise ValueError("`validation_split` must be between 0 and 1. Received: "
                         f"validation_split={validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError('`subset` must be either "training", "validation" or "both". '
                         f"Received: subset={subset}")
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide "
                         "a `seed` argument, to make sure that there is no overlap between the "
                         "training and validation subset.")


def training_or_validation_split(samples, labels, validation_split, subset):
    """The last `int(validation_split * n)` samples are the validation subset."""
    if not validation_split:
        return samples, labels
    num_val = int(validation_split * len(samples))
    if subset == "training":
        print(f"Using {len(samples) - num_val} files for training.")
        cut = slice(None, -num_val)
    elif subset == "validation":
        print(f"Using {num_val} files for validation.")
        cut = slice(-num_val, None)
    else:
        raise ValueError(f'`subset` must be either "training" or "validation". Received: '
                         f"subset={subset}")
    return samples[cut], None if labels is None else labels[cut]


def encode_labels(labels, label_mode: str | None, num_classes: int):
    """int32 labels (`"int"`), float32 one-hot rows (`"categorical"`) or `(n, 1)` float32
    (`"binary"`), as a tensor."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if label_mode == "categorical":
        return torch.nn.functional.one_hot(labels, num_classes).float()
    if label_mode == "binary":
        return labels.float().unsqueeze(-1)
    return labels.int()


# ---------------------------------------------------------------------- split_dataset
def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None,
                  preferred_backend=None):
    """Split a dataset into two torch `Subset`s (e.g. train / test).

    Args:
        dataset: a torch `Dataset`, a NumPy array, a tensor, a list/tuple of equally long
            arrays, or a `BatchDataset` (its samples are split).
        left_size, right_size: a fraction in `(0, 1)` or a number of samples; either may be
            None (the complement of the other).
        shuffle: shuffle before splitting (with `seed`: the same split Keras' torch path
            gives); otherwise the left part is the first samples.
        seed: seed of the shuffle.
        preferred_backend: accepted for Keras compatibility; the result is always torch.

    Example:
        >>> left, right = split_dataset(np.arange(10), left_size=0.8)
        >>> len(left), len(right)
        (8, 2)
    """
    del preferred_backend
    dataset = _as_torch_dataset(dataset)
    if left_size is None and right_size is None:
        raise ValueError("split_dataset: at least one of `left_size` or `right_size` must be "
                         "specified. Received: left_size=None and right_size=None")
    left, right = _split_sizes(left_size, right_size, len(dataset))
    if not shuffle:
        return Subset(dataset, range(left)), Subset(dataset, range(left, left + right))
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return tuple(random_split(dataset, [left, right], generator=generator))


def _as_torch_dataset(dataset) -> Dataset:
    if isinstance(dataset, BatchDataset):
        return dataset.samples
    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, (np.ndarray, torch.Tensor)):
        return TensorDataset(torch.as_tensor(dataset))
    if isinstance(dataset, (list, tuple)) and dataset and all(
            isinstance(x, (np.ndarray, torch.Tensor)) for x in dataset):
        return TensorDataset(*(torch.as_tensor(x) for x in dataset))
    raise TypeError("split_dataset: `dataset` must be a torch Dataset, a BatchDataset, an "
                    "array or a list/tuple of arrays. Received: dataset of type "
                    f"{type(dataset).__name__}")


def _split_sizes(left_size, right_size, total: int) -> tuple[int, int]:
    """Keras' size rules: fractions round, integers count, None is the complement."""
    sizes = []
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if size is not None and type(size) not in (int, float):
            raise TypeError(f"split_dataset: `{name}` should be an int or a float. Received: "
                            f"{name}={size} of type {type(size).__name__}")
        if (type(size) is int and not 0 < size < total) or (
                type(size) is float and not 0 < size < 1):
            raise ValueError(f"split_dataset: `{name}` should be a fraction in (0, 1) or a "
                             f"count in (0, {total}). Received: {name}={size}")
        sizes.append(round(size * total) if type(size) is float else size)
    if type(left_size) is float and type(right_size) is float and left_size + right_size > 1:
        raise ValueError("split_dataset: the sum of `left_size` and `right_size` should be at "
                         f"most 1. Received: left_size={left_size}, right_size={right_size}")
    left, right = sizes
    left = total - right if left is None else left
    right = total - left if right is None else right
    if left + right > total:
        raise ValueError(f"split_dataset: the sizes exceed the {total} samples. Received: "
                         f"left_size={left_size}, right_size={right_size}")
    if left == 0 or right == 0:
        raise ValueError("split_dataset: both splits must hold at least one sample. Received: "
                         f"left_size={left_size}, right_size={right_size}")
    return int(left), int(right)
