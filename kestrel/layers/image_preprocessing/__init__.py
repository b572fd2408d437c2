"""Image preprocessing and augmentation layers: batched torch ops on the images' device."""
from kestrel.layers.image_preprocessing.affine import affine_transform
from kestrel.layers.image_preprocessing.clahe import ContrastLimitedAdaptiveHistogramEqualization
from kestrel.layers.image_preprocessing.color import RandomBrightness, RandomContrast
from kestrel.layers.image_preprocessing.composite import (
    AugMix, Pipeline, RandAugment, RandomColorJitter)
from kestrel.layers.image_preprocessing.filters import RandomGaussianBlur, RandomSharpness
from kestrel.layers.image_preprocessing.flip import RandomFlip
from kestrel.layers.image_preprocessing.geometric import (
    RandomRotation, RandomShear, RandomTranslation, RandomZoom)
from kestrel.layers.image_preprocessing.hsv import RandomHue, RandomSaturation
from kestrel.layers.image_preprocessing.max_num_bounding_boxes import MaxNumBoundingBoxes
from kestrel.layers.image_preprocessing.mixing import CutMix, MixUp, RandomErasing
from kestrel.layers.image_preprocessing.pointwise import (
    AutoContrast, Equalization, RandomColorDegeneration, RandomGrayscale, RandomInvert,
    RandomPosterization, Solarization)
from kestrel.layers.image_preprocessing.rescaling import Rescaling
from kestrel.layers.image_preprocessing.sizing import CenterCrop, RandomCrop, Resizing
from kestrel.layers.image_preprocessing.warps import RandomElasticTransform, RandomPerspective

__all__ = ["AugMix", "AutoContrast", "CenterCrop", "ContrastLimitedAdaptiveHistogramEqualization",
           "CutMix", "Equalization", "MaxNumBoundingBoxes", "MixUp", "Pipeline", "RandAugment", "RandomBrightness", "RandomColorDegeneration",
           "RandomColorJitter", "RandomContrast", "RandomCrop", "RandomElasticTransform",
           "RandomErasing", "RandomFlip", "RandomGaussianBlur", "RandomGrayscale", "RandomHue",
           "RandomInvert", "RandomPerspective", "RandomPosterization", "RandomRotation",
           "RandomSaturation", "RandomSharpness", "RandomShear", "RandomTranslation",
           "RandomZoom", "Rescaling", "Resizing", "Solarization"]
