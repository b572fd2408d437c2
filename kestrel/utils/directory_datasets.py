"""`image_/text_/audio_dataset_from_directory`: labelled batches from a folder per class.

Each returns a `BatchDataset` (or a `(training, validation)` pair for `subset="both"`) with
`class_names` and `file_paths`; files are indexed, shuffled and split exactly as Keras does
(so the same seed selects the same files), then loaded lazily by a torch `DataLoader`
(`ds.dataloader(num_workers=4)` loads in parallel).
"""
from __future__ import annotations

import functools
import wave

import numpy as np
import torch
from torch.utils.data import Dataset

from kestrel.utils import dataset_utils as du

IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_CHANNELS = {"rgb": 3, "rgba": 4, "grayscale": 1}
_PIL_MODES = {3: "RGB", 4: "RGBA"}


class FileSamples(Dataset):
    """Sample `i` is `load(paths[i])`, paired with `labels[i]` when there are labels."""

    def __init__(self, paths: list[str], labels: torch.Tensor | None, load):
        self.paths, self.labels, self.load = list(paths), labels, load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        x = self.load(self.paths[index])
        return x if self.labels is None else (x, self.labels[index])


def load_image(path, image_size, num_channels, interpolation, data_format,
               crop_to_aspect_ratio=False, pad_to_aspect_ratio=False) -> torch.Tensor:
    """A float32 image resized to `image_size` (Keras' PIL-based loader)."""
    from PIL import Image

    from kestrel.ops.image_basic import resize

    with Image.open(path) as img:
        if num_channels == 1:
            img = img if img.mode in ("L", "I;16", "I") else img.convert("L")
        elif img.mode != _PIL_MODES[num_channels]:
            img = img.convert(_PIL_MODES[num_channels])
        x = torch.from_numpy(np.array(img, dtype="float32"))
    if x.ndim == 2:
        x = x.unsqueeze(-1)
    if data_format == "channels_first":
        x = x.permute(2, 0, 1)
    return resize(x, tuple(image_size), interpolation=interpolation,
                  crop_to_aspect_ratio=crop_to_aspect_ratio,
                  pad_to_aspect_ratio=pad_to_aspect_ratio, data_format=data_format)


def load_text(path, max_length=None) -> str:
    """The file's text, cut to its first `max_length` bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    return (raw if max_length is None else raw[:max_length]).decode("utf-8", errors="ignore")


def load_wav(path, sampling_rate=None, output_sequence_length=None) -> torch.Tensor:
    """float32 `(samples, channels)` in [-1, 1] from a PCM WAV file (stdlib `wave`), cut or
    zero-padded to `output_sequence_length`, linearly resampled to `sampling_rate`."""
    try:
        with wave.open(str(path), "rb") as f:
            rate, width, channels = f.getframerate(), f.getsampwidth(), f.getnchannels()
            raw = f.readframes(f.getnframes())
    except (wave.Error, EOFError) as error:
        raise ValueError(f"audio_dataset_from_directory: cannot decode {path!r} as PCM WAV "
                         f"(8, 16 or 32-bit): {error}") from error
    if width == 1:
        audio = (np.frombuffer(raw, np.uint8).astype("float32") - 128.0) / 128.0
    elif width in (2, 4):
        audio = np.frombuffer(raw, f"<i{width}").astype("float32") / float(2 ** (8 * width - 1))
    else:
        raise ValueError(f"audio_dataset_from_directory: {width * 8}-bit WAV is not supported "
                         f"(8, 16 or 32-bit PCM). Received: file {path!r}")
    x = torch.from_numpy(audio.reshape(-1, channels).copy())
    if sampling_rate is not None and sampling_rate != rate:
        length = max(1, round(x.shape[0] * sampling_rate / rate))
        x = torch.nn.functional.interpolate(x.T[None], size=length, mode="linear",
                                            align_corners=False)[0].T.contiguous()
    if output_sequence_length is not None:
        x = x[:output_sequence_length]
        x = torch.nn.functional.pad(x, (0, 0, 0, output_sequence_length - x.shape[0]))
    return x


def _check_labels(labels, label_mode, class_names):
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError("`labels` argument should be a list/tuple of integer labels, of "
                             "the same size as the number of files in the target directory, "
                             '"inferred" or None. Received: labels of type '
                             f"{type(labels).__name__}")
        if class_names:
            raise ValueError('You can only pass `class_names` if `labels="inferred"`. '
                             f"Received: class_names={class_names}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", '
                         f"or None. Received: label_mode={label_mode}")


def _from_directory(what, directory, formats, load, *, labels, label_mode, class_names,
                    batch_size, shuffle, seed, validation_split, subset, follow_links,
                    verbose, collate_fn=du.collate):
    """The indexing, splitting and batching the three helpers share."""
    _check_labels(labels, label_mode, class_names)
    if labels is None or label_mode is None:
        labels = label_mode = None
    du.check_validation_split_arg(validation_split, subset, shuffle, seed)
    seed = np.random.randint(1e6) if seed is None else seed
    paths, labels, class_names = du.index_directory(
        directory, labels, formats=formats, class_names=class_names, shuffle=shuffle,
        seed=seed, follow_links=follow_links, verbose=verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 '
                         f"class_names. Received: class_names={class_names}")
    parts = [("training", shuffle), ("validation", False)] if subset == "both" \
        else [(subset, shuffle)]
    datasets = []
    for part, part_shuffle in parts:
        part_paths, part_labels = du.training_or_validation_split(
            paths, labels, validation_split, part)
        if not part_paths:
            raise ValueError(f"No {part + ' ' if subset == 'both' else ''}{what} found in "
                             f"directory {directory}. Allowed formats: {formats}")
        encoded = None if label_mode is None else du.encode_labels(
            part_labels, label_mode, len(class_names))
        ds = du.BatchDataset(FileSamples(part_paths, encoded, load), batch_size, part_shuffle,
                             seed, collate_fn)
        ds.class_names, ds.file_paths = class_names, list(part_paths)
        datasets.append(ds)
    return tuple(datasets) if subset == "both" else datasets[0]


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, format="tf",
                                 verbose=True):
    """Batches of float32 images `(batch, height, width, channels)` (and labels) from
    `directory/<class>/*.png|jpg|jpeg|bmp|gif`.

    Arguments are Keras'; `format` is accepted and ignored (the result is a torch-backed
    `BatchDataset`). Labels: `"int"` int32, `"categorical"` float32 one-hot, `"binary"`
    float32 `(batch, 1)`.

    Example:
        >>> train, val = image_dataset_from_directory(
        ...     "flowers", image_size=(64, 64), validation_split=0.2, subset="both",
        ...     seed=1)  # doctest: +SKIP
        >>> model.fit(train, validation_data=val)  # doctest: +SKIP
    """
    from kestrel import config

    if color_mode not in _CHANNELS:
        raise ValueError('`color_mode` must be one of {"rgb", "rgba", "grayscale"}. '
                         f"Received: color_mode={color_mode}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    elif not isinstance(image_size, (list, tuple)) or len(image_size) != 2:
        raise ValueError("Invalid `image_size` value. Expected a tuple of 2 integers. "
                         f"Received: image_size={image_size}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set "
                         "to `True`.")
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')
    load = functools.partial(load_image, image_size=tuple(image_size),
                             num_channels=_CHANNELS[color_mode],
                             interpolation=interpolation.lower(),
                             data_format=data_format or config.image_data_format(),
                             crop_to_aspect_ratio=crop_to_aspect_ratio,
                             pad_to_aspect_ratio=pad_to_aspect_ratio)
    return _from_directory("images", directory, IMAGE_FORMATS, load, labels=labels,
                           label_mode=label_mode, class_names=class_names,
                           batch_size=batch_size, shuffle=shuffle, seed=seed,
                           validation_split=validation_split, subset=subset,
                           follow_links=follow_links, verbose=verbose)


def text_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                class_names=None, batch_size=32, max_length=None, shuffle=True,
                                seed=None, validation_split=None, subset=None,
                                follow_links=False, format="tf", verbose=True):
    """Batches of texts (a NumPy `str` array per batch) and labels from
    `directory/<class>/*.txt`; `max_length` keeps each file's first bytes.

    Example:
        >>> ds = text_dataset_from_directory("reviews", batch_size=8)  # doctest: +SKIP
    """
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')
    load = functools.partial(load_text, max_length=max_length)
    return _from_directory("text files", directory, (".txt",), load, labels=labels,
                           label_mode=label_mode, class_names=class_names,
                           batch_size=batch_size, shuffle=shuffle, seed=seed,
                           validation_split=validation_split, subset=subset,
                           follow_links=follow_links, verbose=verbose)


def audio_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, batch_size=32, sampling_rate=None,
                                 output_sequence_length=None, ragged=False, shuffle=True,
                                 seed=None, validation_split=None, subset=None,
                                 follow_links=False, verbose=True):
    """Batches of float32 audio `(batch, samples, channels)` and labels from
    `directory/<class>/*.wav` (PCM, read with the stdlib `wave` module).

    Without `output_sequence_length`, each batch is zero-padded to its longest clip;
    `ragged=True` gives a list of tensors instead. `sampling_rate` resamples linearly
    (Keras uses tensorflow-io's band-limited resampler: values differ slightly).

    Example:
        >>> ds = audio_dataset_from_directory(
        ...     "speech", output_sequence_length=16000)  # doctest: +SKIP
    """
    if ragged and output_sequence_length is not None:
        raise ValueError("Cannot set both `ragged` and `output_sequence_length`")
    if sampling_rate is not None and (not isinstance(sampling_rate, int) or sampling_rate <= 0):
        raise ValueError("`sampling_rate` should be a positive integer. Received: "
                         f"sampling_rate={sampling_rate}")
    load = functools.partial(load_wav, sampling_rate=sampling_rate,
                             output_sequence_length=output_sequence_length)
    collate_fn = du.ragged_collate if ragged else (
        du.pad_collate if output_sequence_length is None else du.collate)
    return _from_directory("audio files", directory, (".wav",), load, labels=labels,
                           label_mode=label_mode, class_names=class_names,
                           batch_size=batch_size, shuffle=shuffle, seed=seed,
                           validation_split=validation_split, subset=subset,
                           follow_links=follow_links, verbose=verbose, collate_fn=collate_fn)
