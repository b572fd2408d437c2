"""VGG19 (Simonyan & Zisserman, 2015): VGG16 with 16 convolutions."""
from kestrel.applications.vgg16 import decode_predictions, preprocess_input, vgg

__all__ = ["VGG19", "decode_predictions", "preprocess_input"]


def VGG19(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax", name="vgg19"):
    """The VGG19 model: 16 3x3 convolutions in 5 blocks; arguments as `VGG16`.

    Example:
        >>> VGG19(weights=None, include_top=False, input_shape=(32, 32, 3)).count_params()
        20024384
    """
    return vgg("vgg19", include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, name)
