"""Augmentations built from the others: RandomColorJitter, RandAugment, AugMix and Pipeline.

Each op acts on the whole batch with per-image random parameters; which ops run (RandAugment,
AugMix) is drawn on the host once per batch, as Keras does, so nothing waits on the device.
On dict inputs each chosen op draws once and moves images, masks and (RandAugment) boxes with
that draw; AugMix leaves boxes and RandomColorJitter boxes and masks as they are (as Keras).
"""
from __future__ import annotations

import torch

from kestrel.layers.config_order import keras_config_order
from kestrel.layers.image_preprocessing.base import (
    RandomImageLayer, check_value_range, parse_factor)
from kestrel.layers.image_preprocessing.color import RandomBrightness, RandomContrast
from kestrel.layers.image_preprocessing.filters import RandomSharpness
from kestrel.layers.image_preprocessing.geometric import (
    RandomRotation, RandomShear, RandomTranslation)
from kestrel.layers.image_preprocessing.hsv import RandomHue, RandomSaturation
from kestrel.layers.image_preprocessing.pointwise import (
    AutoContrast, Equalization, RandomColorDegeneration, RandomPosterization, Solarization)
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.masks import mask_of

# name -> builder(factor, value_range, interpolation, common kwargs), in Keras' order.
_OPS = {
    "random_shear": lambda f, v, i, kw: RandomShear(f, f, interpolation=i, **kw),
    "random_translation": lambda f, v, i, kw: RandomTranslation(f, f, interpolation=i, **kw),
    "random_rotation": lambda f, v, i, kw: RandomRotation(f, interpolation=i, **kw),
    "random_posterization": lambda f, v, i, kw: RandomPosterization(
        max(1, int(8 * f[1])), v, **kw),
    "solarization": lambda f, v, i, kw: Solarization(f, f, v, **kw),
    "auto_contrast": lambda f, v, i, kw: AutoContrast(v, data_format=kw["data_format"]),
    "equalization": lambda f, v, i, kw: Equalization(v, data_format=kw["data_format"]),
    "random_brightness": lambda f, v, i, kw: RandomBrightness(f, v, **kw),
    "random_color_degeneration": lambda f, v, i, kw: RandomColorDegeneration(f, v, **kw),
    "random_contrast": lambda f, v, i, kw: RandomContrast(f, v, **kw),
    "random_sharpness": lambda f, v, i, kw: RandomSharpness(f, v, **kw),
}
RAND_AUGMENT_OPS = ("random_shear", "random_translation", "random_rotation",
                    "random_brightness", "random_color_degeneration", "random_contrast",
                    "random_sharpness", "random_posterization", "solarization", "auto_contrast",
                    "equalization")
AUGMIX_OPS = tuple(_OPS)
AUGMIX_GEOMETRIC_OPS = AUGMIX_OPS[:7]


def _sub_seed(seed, index: int):
    return None if seed is None else seed + 1 + index


class _OpsLayer(RandomImageLayer):
    """Holds named augmentation sub-layers (`self.ops`), each with its own derived seed."""

    def __init__(self, names, factor, value_range, interpolation, seed, data_format, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = parse_factor(self, factor, bounds=(0.0, 1.0))
        self.value_range = value_range
        self._range = check_value_range(self, value_range)
        self.interpolation = interpolation
        self.ops = torch.nn.ModuleList(
            _OPS[name](self.factor, self._range, interpolation,
                       {"seed": _sub_seed(seed, k), "data_format": self.data_format})
            for k, name in enumerate(names))

    def draw_chain(self, images, indices) -> list:
        """`[(op, params)]`: the ops at `indices`, each with one draw of its parameters."""
        chain = [self.ops[int(index)] for index in indices if index < len(self.ops)]
        return [(op, op.get_transformation(images, True)) for op in chain]

    @staticmethod
    def run_chain(chain, images, masks: bool = False) -> torch.Tensor:
        """`images` (or segmentation masks) through the ops of a drawn chain."""
        for op, params in chain:
            images = op.transform_masks(images, params) if masks \
                else op.transform_images(images, params)
        return images

    def transform(self, images):
        return self.transform_images(images, self.get_transformation(images, True))

    def get_config(self):
        return {**super().get_config(), "value_range": list(self.value_range),
                "factor": list(self.factor), "interpolation": self.interpolation}


@register_layer()
@keras_config_order("value_range", "num_ops", "factor", "interpolation", "seed")
class RandAugment(_OpsLayer):
    """Applies `num_ops` augmentations, each picked at random per batch from 11 (shear,
    translation, rotation, brightness, colour degeneration, contrast, sharpness, posterization,
    solarization, auto-contrast, equalization), in training.

    Args:
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        num_ops: how many augmentations to chain (default 2).
        factor: strength: a number `f` in [0, 1] means `(0, f)` for every op (default 0.5).
        interpolation: `"bilinear"` (default) or `"nearest"` for the geometric ops.
        seed, data_format: as in the other augmentation layers.

    Example:
        >>> RandAugment(seed=0)(torch.rand(2, 8, 8, 3) * 255, training=True).shape
        torch.Size([2, 8, 8, 3])
    """

    def __init__(self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear",
                 seed=None, data_format=None, **kwargs):
        super().__init__(RAND_AUGMENT_OPS, factor, value_range, interpolation, seed,
                         data_format, **kwargs)
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
            raise ValueError(f"RandAugment '{self.name}': num_ops must be an integer >= 0. "
                             f"Received: num_ops={num_ops!r}")
        self.num_ops = num_ops

    def get_transformation(self, images, training=None):
        if not self._is_training(training):
            return None
        return self.draw_chain(images, self.host_rng().integers(0, len(self.ops), self.num_ops))

    def transform_images(self, images, chain):
        return images if chain is None else self.run_chain(chain, images)

    def transform_masks(self, masks, chain):
        return masks if chain is None else self.run_chain(chain, masks, masks=True)

    def box_matrix(self, chain, size):
        """The geometric ops' box maps, composed in order (None: no geometric op ran)."""
        result = None
        for op, params in chain or ():
            matrix = op.box_matrix(params, size)
            if matrix is not None:
                result = matrix if result is None else matrix.to(result.dtype) @ result
        return result

    def get_config(self):
        return {**super().get_config(), "num_ops": self.num_ops}


@register_layer()
@keras_config_order(
    "value_range", "num_chains", "chain_depth", "factor", "alpha", "all_ops", "interpolation", "seed")
class AugMix(_OpsLayer):
    """AugMix in training: `num_chains` chains of up to `chain_depth` random augmentations,
    mixed with Dirichlet(`alpha`) weights, then blended with the input by a Beta(`alpha`,
    `alpha`) weight, clipped to `value_range` (one draw of each per batch, as Keras).

    Args:
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        num_chains: number of chains (default 3).
        chain_depth: the most ops per chain; each step may also be skipped (default 3).
        factor: strength: a number `f` in [0, 1] means `(0, f)` for every op (default 0.3).
        alpha: the Dirichlet and Beta parameter (default 1.0).
        all_ops: also use brightness, colour degeneration, contrast and sharpness
            (default True).
        interpolation, seed, data_format: as `RandAugment`.

    Example:
        >>> AugMix(seed=0)(torch.rand(2, 8, 8, 3) * 255, training=True).shape
        torch.Size([2, 8, 8, 3])
    """

    def __init__(self, value_range=(0, 255), num_chains=3, chain_depth=3, factor=0.3,
                 alpha=1.0, all_ops=True, interpolation="bilinear", seed=None,
                 data_format=None, **kwargs):
        super().__init__(AUGMIX_OPS if all_ops else AUGMIX_GEOMETRIC_OPS, factor, value_range,
                         interpolation, seed, data_format, **kwargs)
        for arg, value in (("num_chains", num_chains), ("chain_depth", chain_depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"AugMix '{self.name}': {arg} must be an integer >= 1. "
                                 f"Received: {arg}={value!r}")
        self.num_chains, self.chain_depth = num_chains, chain_depth
        self.alpha, self.all_ops = alpha, all_ops

    def get_transformation(self, images, training=None):
        """`(chain weights, keep weight, chains)`; an index past the ops skips a step."""
        if not self._is_training(training):
            return None
        rng = self.host_rng()
        chain_weights = rng.dirichlet([self.alpha] * self.num_chains)
        keep = float(rng.beta(self.alpha, self.alpha))
        chains = [self.draw_chain(images, rng.integers(0, len(self.ops) + 1, self.chain_depth))
                  for _ in chain_weights]
        return chain_weights, keep, chains

    def transform_images(self, images, params, masks: bool = False):
        if params is None:
            return images
        chain_weights, keep, chains = params
        mixed = torch.zeros_like(images)
        for weight, chain in zip(chain_weights, chains):
            mixed = mixed + self.run_chain(chain, images, masks) * float(weight)
        mixed = keep * images + (1 - keep) * mixed
        return mixed if masks else mixed.clamp(*self._range)

    def transform_masks(self, masks, params):
        """Masks mixed through the same chains (geometric ops move them); boxes stay, as
        Keras leaves them."""
        return self.transform_images(masks, params, masks=True)

    def get_config(self):
        return {**super().get_config(), "num_chains": self.num_chains,
                "chain_depth": self.chain_depth, "alpha": self.alpha, "all_ops": self.all_ops}


@register_layer()
@keras_config_order(
    "value_range", "brightness_factor", "contrast_factor", "saturation_factor", "hue_factor", "seed")
class RandomColorJitter(RandomImageLayer):
    """Random brightness, contrast, saturation and hue changes, in that order, in training;
    an op runs only when its factor is given.

    Args:
        value_range: `(low, high)` of the pixel values (default `(0, 255)`).
        brightness_factor, contrast_factor, saturation_factor, hue_factor: the `factor` of
            `RandomBrightness`, `RandomContrast`, `RandomSaturation` and `RandomHue`.
        seed, data_format: as in the other augmentation layers.

    Example:
        >>> jitter = RandomColorJitter(brightness_factor=0.2, hue_factor=0.1, seed=0)
        >>> jitter(torch.rand(2, 8, 8, 3) * 255, training=True).shape
        torch.Size([2, 8, 8, 3])
    """

    _PARTS = (("brightness_factor", RandomBrightness), ("contrast_factor", RandomContrast),
              ("saturation_factor", RandomSaturation), ("hue_factor", RandomHue))

    def __init__(self, value_range=(0, 255), brightness_factor=None, contrast_factor=None,
                 saturation_factor=None, hue_factor=None, seed=None, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range = check_value_range(self, value_range)
        factors = (brightness_factor, contrast_factor, saturation_factor, hue_factor)
        for (arg, _), factor in zip(self._PARTS, factors):
            setattr(self, arg, factor)
        self.ops = torch.nn.ModuleList(
            cls(factor, self.value_range, seed=_sub_seed(seed, k), data_format=self.data_format)
            for k, ((_, cls), factor) in enumerate(zip(self._PARTS, factors))
            if factor is not None)
        for op in self.ops:  # as Keras, every part draws from the jitter's own SeedGenerator
            op.__dict__["seed_generator"] = self.seed_generator

    def transform(self, images):
        for op in self.ops:
            images = op.transform(images)
        return images

    def get_config(self):
        return {**super().get_config(), "value_range": list(self.value_range),
                **{arg: getattr(self, arg) for arg, _ in self._PARTS}}


@register_layer()
class Pipeline(Layer):
    """Applies a list of layers in order, passing `training` on to each.

    Unlike `Sequential`, it is a layer (not a model) and may hold layers that take dicts.

    Args:
        layers: the layers to apply.
        name: the layer's name.

    Example:
        >>> from kestrel.layers.image_preprocessing import RandomFlip
        >>> Pipeline([RandomFlip(), AutoContrast()])(torch.rand(2, 4, 4, 3)).shape
        torch.Size([2, 4, 4, 3])
    """
    _keras_training_default = True  # Keras: `call(..., training=True)`, recorded by its nodes
    _keras_converts_inputs = False  # see node_arguments


    def __init__(self, layers, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if not isinstance(layers, (list, tuple)) or not all(
                isinstance(layer, torch.nn.Module) for layer in layers):
            raise ValueError(f"Pipeline '{self.name}': layers must be a list of layers. "
                             f"Received: layers type={type(layers).__name__}")
        self._pipeline_layers = torch.nn.ModuleList(layers)

    @property
    def layers(self) -> list:
        return list(self._pipeline_layers)

    def call(self, inputs, training=None, mask=None):
        """Each layer in turn, as Keras: a given `mask` goes to the first layer (where its
        `call` takes one), each later layer gets the mask its input carries."""
        for layer in self._pipeline_layers:
            kwargs = {} if training is None else {"training": training}
            if mask is not None and getattr(layer, "_call_accepts_mask", False):
                kwargs["mask"] = mask
            inputs = layer(inputs, **kwargs)
            mask = mask_of(inputs)
        return inputs

    def compute_output_shape(self, input_shape):
        for layer in self._pipeline_layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    def get_config(self):
        from kestrel.layers.serialization import serialize
        return {"layers": [serialize(layer) for layer in self._pipeline_layers],
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        from kestrel.layers.serialization import deserialize
        layers = config.get("layers")
        if not isinstance(layers, (list, tuple)):
            raise ValueError("Pipeline.from_config: the config needs a 'layers' list. "
                             f"Received: layers type={type(layers).__name__}")
        return cls(**{**config, "layers": [deserialize(layer) for layer in layers]})
