"""VGG16 (Simonyan & Zisserman, 2015) and the VGG builder VGG19 shares."""
from __future__ import annotations

from kestrel import layers
from kestrel.applications import _common, imagenet_utils

_FILTERS = (64, 128, 256, 512, 512)
# model name -> (convolutions per block, (hash with top, hash without top))
_VARIANTS = {
    "vgg16": ((2, 2, 3, 3, 3), ("64373286793e3c8b2b4e3219cbf3544b",
                                "6d6bbae143d832006294945121d1f1fc")),
    "vgg19": ((2, 2, 4, 4, 4), ("cbe5617147190e668d6c5d5026f83318",
                                "253f8cb515780f3b799900260a226db6")),
}


@_common.pretrained
def vgg(variant: str, include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name):
    """Build VGG16 or VGG19 (`variant` names the weights) with Keras' layer names."""
    convs, hashes = _VARIANTS[variant]
    x, inputs, _ = _common.start(weights, include_top, classes, input_tensor, input_shape)
    for block, (count, filters) in enumerate(zip(convs, _FILTERS), start=1):
        for k in range(1, count + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same",
                              name=f"block{block}_conv{k}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = _common.classify(x, classes, classifier_activation, weights)
    else:
        x = _common.pool(x, pooling, named=False)
    file_name = f"{variant}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    return _common.finish(inputs, x, name, weights, file_name=file_name,
                          origin=f"{_common.KERAS_APPS}{variant}/{file_name}",
                          file_hash=hashes[0 if include_top else 1])


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax", name="vgg16"):
    """The VGG16 model: 13 3x3 convolutions in 5 blocks, then (optionally) 3 dense layers.

    Args:
        include_top: whether to end with the flatten + 3 dense layers classifier.
        weights: None, `"imagenet"` or the path of a weights file.
        input_tensor: optional symbolic tensor to use as the image input.
        input_shape: optional `(height, width, channels)` (at least 32x32) without a top.
        pooling: `None`, `"avg"` or `"max"` global pooling without a top.
        classes: number of classes with a top.
        classifier_activation: activation of the `predictions` layer.
        name: model name.

    Example:
        >>> VGG16(weights=None, include_top=False, input_shape=(32, 32, 3)).output_shape
        (None, 1, 1, 512)
    """
    return vgg("vgg16", include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, name)


preprocess_input = imagenet_utils.preprocessor("caffe")
decode_predictions = imagenet_utils.decode_predictions
