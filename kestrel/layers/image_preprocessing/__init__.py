"""Image preprocessing and augmentation layers: batched torch ops on the images' device."""
from kestrel.layers.image_preprocessing.affine import affine_transform
from kestrel.layers.image_preprocessing.color import RandomBrightness, RandomContrast
from kestrel.layers.image_preprocessing.flip import RandomFlip
from kestrel.layers.image_preprocessing.geometric import (
    RandomRotation, RandomShear, RandomTranslation, RandomZoom)
from kestrel.layers.image_preprocessing.rescaling import Rescaling
from kestrel.layers.image_preprocessing.sizing import CenterCrop, RandomCrop, Resizing

__all__ = ["CenterCrop", "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip",
           "RandomRotation", "RandomShear", "RandomTranslation", "RandomZoom", "Rescaling",
           "Resizing"]
