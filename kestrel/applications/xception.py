"""Xception (Chollet, 2017) with Keras' layer names and weight files."""
from __future__ import annotations

from kestrel import layers
from kestrel.applications import _common, imagenet_utils

_FILES = _common.tf_files("xception", "xception_weights_tf_dim_ordering_tf_kernels",
                          ("0a58e3b7378bc2990ea3b43d5981f1f6", "b0042744bf5b25fce3cb969f33bebb97"))


def _sepconv_bn(x, filters, name, act_before=True):
    """(ReLU) -> SeparableConv2D 3x3 -> BatchNormalization, named `{name}`, `{name}_bn`."""
    if act_before:
        x = layers.Activation("relu", name=f"{name}_act")(x)
    x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(axis=-1, name=f"{name}_bn")(x)


def _downsampling_block(x, block, filters, first_act=True):
    """Two separable convolutions and a 3x3/2 max pool, plus a strided 1x1 shortcut."""
    residual = layers.Conv2D(filters[1], (1, 1), strides=(2, 2), padding="same",
                             use_bias=False)(x)
    residual = layers.BatchNormalization(axis=-1)(residual)
    x = _sepconv_bn(x, filters[0], f"block{block}_sepconv1", act_before=first_act)
    if not first_act:  # block 2 activates after its first separable convolution
        x = layers.Activation("relu", name=f"block{block}_sepconv2_act")(x)
    x = _sepconv_bn(x, filters[1], f"block{block}_sepconv2", act_before=first_act)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
    return layers.add([x, residual])


@_common.pretrained
def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax", name="xception"):
    """Xception as a functional model (default input 299x299x3, at least 71x71).

    Args:
        include_top: add the `avg_pool` + `predictions` classifier.
        weights: None, "imagenet" or a weights file path.
        input_tensor, input_shape: the image input (tensor, or shape without batch).
        pooling: None, "avg" or "max" (only without the top).
        classes, classifier_activation: the classifier's size and activation.

    Example:
        >>> model = Xception(weights=None, include_top=False, input_shape=(71, 71, 3))
    """
    x, inputs, _ = _common.start(
        weights=weights, include_top=include_top, classes=classes, input_tensor=input_tensor,
        input_shape=input_shape, default_size=299, min_size=71)
    for index, (filters, strides) in enumerate(((32, (2, 2)), (64, (1, 1))), start=1):
        x = layers.Conv2D(filters, (3, 3), strides=strides, use_bias=False,
                          name=f"block1_conv{index}")(x)
        x = layers.BatchNormalization(axis=-1, name=f"block1_conv{index}_bn")(x)
        x = layers.Activation("relu", name=f"block1_conv{index}_act")(x)
    x = _downsampling_block(x, 2, (128, 128), first_act=False)
    x = _downsampling_block(x, 3, (256, 256))
    x = _downsampling_block(x, 4, (728, 728))
    for block in range(5, 13):
        residual = x
        for conv in range(1, 4):
            x = _sepconv_bn(x, 728, f"block{block}_sepconv{conv}")
        x = layers.add([x, residual])
    x = _downsampling_block(x, 13, (728, 1024))
    for conv, filters in ((1, 1536), (2, 2048)):
        x = _sepconv_bn(x, filters, f"block14_sepconv{conv}", act_before=False)
        x = layers.Activation("relu", name=f"block14_sepconv{conv}_act")(x)
    x = _common.top(x, include_top=include_top, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, weights=weights)
    return _common.finish_files(inputs, x, name=name, weights=weights, include_top=include_top,
                                files=_FILES)


preprocess_input = imagenet_utils.preprocessor("tf")
decode_predictions = imagenet_utils.decode_predictions
