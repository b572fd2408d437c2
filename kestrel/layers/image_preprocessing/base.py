"""The base of the image layers: data format, single or batched images, training, seeds.

Images are `(batch, height, width, channels)` (or `(height, width, channels)`), channels-first
when `data_format="channels_first"`. Random layers draw one value per image from the layer's
seeded `torch.Generator` (or torch's global RNG when unseeded) on the images' device, and
return their inputs unchanged at inference. A dict `{"images", "bounding_boxes",
"segmentation_masks"}` goes through `data.call_data`: one draw moves all three.
"""
from __future__ import annotations

import numpy as np
import torch

from kestrel import config, random
from kestrel.layers import shape_inference, training_mode
from kestrel.layers.image_preprocessing.data import call_data
from kestrel.layers.layer import Layer
from kestrel.layers.regularization.seeding import attach_seed_generator, check_seed
from kestrel.utils.bounding_boxes.formats import check_format


class ImageLayer(Layer):
    """Base class of the image preprocessing and augmentation layers.

    Args:
        data_format: `"channels_last"` (default: the global image data format) or
            `"channels_first"`.
        seed: int for a reproducible sequence of random transformations (random layers).
        bounding_box_format: format of the `"bounding_boxes"` of dict inputs (e.g. `"xyxy"`).
    """
    _keras_training_default = True  # Keras: `call(..., training=True)`, recorded by its nodes

    padding_rows = (-1.0,)  # box rows all of one of these values are padding (see data.py)
    padding_fill = -1.0  # ... and leave the layer filled with this value

    def __init__(self, data_format=None, bounding_box_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = config.standardize_data_format(data_format)
        self.bounding_box_format = None if bounding_box_format is None else check_format(
            bounding_box_format, where=f"{type(self).__name__} '{self.name}'")

    def call(self, inputs, training=None):
        if isinstance(inputs, dict):
            return call_data(self, inputs, training)
        images, single = self._as_batch(inputs)
        outputs = self.transform_images(images, self.get_transformation(images, training))
        return outputs.squeeze(0) if single else outputs

    # ------------------------------------------------ transformation (see data.py)
    def get_transformation(self, images: torch.Tensor, training=None):
        """The parameters shared by images, boxes and masks (None: nothing drawn)."""
        return None

    def transform_images(self, images: torch.Tensor, params) -> torch.Tensor:
        """A batch of images transformed with `params`."""
        return self.transform(images)

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """The transformed batch of `images` (rank 4, compute dtype)."""
        raise NotImplementedError

    def box_matrix(self, params, size):
        """`(batch, 3, 3)` maps of input to output box coordinates; None leaves boxes as they
        are (colour layers)."""
        return None

    def output_size(self, size) -> tuple:
        """(height, width) of the outputs for inputs of `size`."""
        return tuple(size)

    def transform_masks(self, masks: torch.Tensor, params) -> torch.Tensor:
        """Segmentation masks `(batch, h, w, 1)` moved as the images (nearest); colour layers
        leave them."""
        return masks

    # ------------------------------------------------------------------ helpers
    @property
    def _compute_dtype(self) -> torch.dtype:
        return self._autocast_dtype or self._variable_dtype

    def _spatial_axes(self, rank: int) -> tuple[int, int]:
        """The (height, width) axes of a rank-`rank` input."""
        if rank not in (3, 4):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': expected images of rank 3 (one image) "
                f"or 4 (a batch). Received: input rank={rank}")
        return (-3, -2) if self.data_format == "channels_last" else (-2, -1)

    def _size(self, shape) -> tuple:
        """(height, width) of an image or batch `shape`."""
        h, w = self._spatial_axes(len(shape))
        return shape[h], shape[w]

    def _as_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """`images` as a float batch in the compute dtype, and whether it was one image."""
        self._spatial_axes(images.dim())
        if images.dtype != self._compute_dtype:
            images = images.to(self._compute_dtype)
        single = images.dim() == 3
        return (images.unsqueeze(0) if single else images), single

    def _is_training(self, training) -> bool:
        """The argument, else the mode in force (training where a default claimed it, see
        training_mode.claim_default), else Keras' default for these layers: True."""
        if training is not None:
            return bool(training)
        return self.training or not training_mode.active() or training_mode.claimed() is True

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, *args, **kwargs):
        first = args[0] if args else next(iter(kwargs.values()))
        shape = self.compute_output_shape(tuple(first.shape))
        return shape_inference.shapes_to_keras_tensors(shape, self._output_dtype(first.dtype))

    def _output_dtype(self, input_dtype) -> str:
        return config.dtype_name(self._compute_dtype)

    def get_config(self):
        config_ = {**super().get_config(), "data_format": self.data_format}
        if self.bounding_box_format is not None:
            config_["bounding_box_format"] = self.bounding_box_format
        return config_


class RandomImageLayer(ImageLayer):
    """An augmentation: `transform(images, generator)` in training, identity at inference."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        check_seed(self, seed)
        self.seed = seed
        # Keras' SeedGenerator: unseeded, it takes a seed from Python's `random` (so the
        # initializers of later layers get Keras' seeds); the draws below advance it as Keras'
        attach_seed_generator(self, seed)

    def call(self, inputs, training=None):
        if not isinstance(inputs, dict) and not self._is_training(training):
            return inputs if inputs.dtype == self._compute_dtype \
                else inputs.to(self._compute_dtype)
        return super().call(inputs, training)

    def get_transformation(self, images, training=None):
        """True in training (`transform` draws); geometric layers return their draws."""
        return True if self._is_training(training) else None

    def transform_images(self, images, params):
        return images if params is None else self.transform(images)

    def uniform(self, shape, low, high, like: torch.Tensor) -> torch.Tensor:
        """Uniform draws in `[low, high)` of `shape` from the layer's `seed_generator` (Keras'
        numbers for a seed), on `like`'s device, in its dtype."""
        draws = random.uniform(shape, low, high, seed=self.seed_generator)
        return draws.to(device=like.device, dtype=like.dtype)

    def normal(self, shape, like: torch.Tensor) -> torch.Tensor:
        """Standard normal draws of `shape` from `seed_generator`, on `like`'s device and dtype."""
        draws = random.normal(shape, seed=self.seed_generator)
        return draws.to(device=like.device, dtype=like.dtype)

    def randint(self, shape, low: int, high: int, like: torch.Tensor) -> torch.Tensor:
        """Integer draws in `[low, high)` of `shape` from `seed_generator`, on `like`'s device."""
        draws = random.randint(shape, low, high, dtype="int64", seed=self.seed_generator)
        return draws.to(like.device)

    def apply_mask(self, factor, like: torch.Tensor) -> torch.Tensor:
        """`(batch, 1, 1, 1)` booleans: each image is picked with a probability drawn in
        `factor` = `(low, high)` (Keras' "threshold < probability" draw, probability first)."""
        shape = (like.shape[0], 1, 1, 1)
        probability = self.uniform(shape, *factor, like)
        return self.uniform(shape, 0.0, 1.0, like) < probability

    def host_rng(self) -> np.random.Generator:
        """A NumPy generator for the few per-batch draws made on the host (op choices, Beta and
        Dirichlet weights): seeded by `seed`, else by torch's global RNG on first use."""
        rng = self.__dict__.get("_host_rng")
        if rng is None:
            seed = self.seed if self.seed is not None else int(torch.randint(2 ** 62, ()))
            rng = self.__dict__["_host_rng"] = np.random.default_rng(seed)
        return rng

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def check_value_range(layer, value_range) -> list:
    """`value_range` as a sorted `[low, high]`, or a ValueError naming `layer`."""
    if not isinstance(value_range, (list, tuple)) or len(value_range) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': value_range must be a pair of "
                         f"numbers. Received: value_range={value_range!r}")
    return sorted(value_range)


def rescale(images: torch.Tensor, source, target) -> torch.Tensor:
    """Map values linearly from the range `source` to `target` (identity when equal)."""
    if tuple(source) == tuple(target):
        return images
    images = (images - source[0]) / (source[1] - source[0])
    return images * (target[1] - target[0]) + target[0]


def parse_factor(layer, factor, arg: str = "factor", bounds=(-1.0, 1.0)) -> tuple[float, float]:
    """`(lower, upper)` of a factor given as one number or a pair within `bounds`.

    One number `f` means `(max(-|f|, bounds[0]), |f|)` as Keras reads it.
    """
    def fail():
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': {arg} must be a number or a pair of numbers "
            f"in [{bounds[0]}, {bounds[1]}]. Received: {arg}={factor!r}")

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(number(v) for v in factor):
            fail()
        lower, upper = sorted(float(v) for v in factor)
        if lower < bounds[0] or upper > bounds[1]:
            fail()
        return lower, upper
    if not number(factor) or not bounds[0] <= factor <= bounds[1]:
        fail()
    factor = abs(float(factor))
    return max(-factor, bounds[0]), factor
