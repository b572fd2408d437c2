"""InceptionResNetV2 (Szegedy et al., 2017) with Keras' layer names and weight files."""
from __future__ import annotations

from kestrel import layers
from kestrel.applications import _common, imagenet_utils
from kestrel.applications._layers import CustomScaleLayer

_FILES = _common.tf_files("inception_resnet_v2",
                          "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels",
                          ("e693bd0210a403b3192acc6073ad2e96", "d19885ff4a710c122648d3b5c3b684e4"))

# block type -> branches, each a list of (filters, kernel_size) convolutions
_BLOCKS = {
    "block35": [[(32, 1)], [(32, 1), (32, 3)], [(32, 1), (48, 3), (64, 3)]],
    "block17": [[(192, 1)], [(128, 1), (160, (1, 7)), (192, (7, 1))]],
    "block8": [[(192, 1)], [(192, 1), (224, (1, 3)), (256, (3, 1))]],
}


def conv2d_bn(x, filters, kernel_size, strides=1, padding="same", activation="relu",
              use_bias=False, name=None):
    """Conv2D, then (without bias) BatchNormalization with no scale, then `activation`."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                      use_bias=use_bias, name=name)(x)
    if not use_bias:
        x = layers.BatchNormalization(axis=-1, scale=False,
                                      name=None if name is None else f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=None if name is None else f"{name}_ac")(x)
    return x


def _branches(x, branches):
    """Each branch: `(filters, kernel[, strides])` convolutions ('valid' when strided) or
    `"avg"` / `"max"` pooling (3x3; average keeps the size, max halves it)."""
    outputs = []
    for ops in branches:
        y = x
        for op in ops:
            if op == "avg":
                y = layers.AveragePooling2D(3, strides=1, padding="same")(y)
            elif op == "max":
                y = layers.MaxPooling2D(3, strides=2, padding="valid")(y)
            elif len(op) == 3:
                y = conv2d_bn(y, op[0], op[1], strides=op[2], padding="valid")
            else:
                y = conv2d_bn(y, *op)
        outputs.append(y)
    return outputs


def inception_resnet_block(x, scale, block_type, block_idx, activation="relu"):
    """One residual Inception block: `x + scale * conv(concat(branches))`, then `activation`."""
    if block_type not in _BLOCKS:
        raise ValueError('Unknown Inception-ResNet block type. Expects "block35", "block17" '
                         f'or "block8", but got: {block_type}')
    name = f"{block_type}_{block_idx}"
    mixed = layers.Concatenate(axis=-1, name=f"{name}_mixed")(_branches(x, _BLOCKS[block_type]))
    up = conv2d_bn(mixed, x.shape[-1], 1, activation=None, use_bias=True, name=f"{name}_conv")
    x = CustomScaleLayer(scale)([x, up])
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_ac")(x)
    return x


@_common.pretrained
def InceptionResNetV2(include_top=True, weights="imagenet", input_tensor=None,
                      input_shape=None, pooling=None, classes=1000,
                      classifier_activation="softmax", name="inception_resnet_v2"):
    """InceptionResNetV2 as a functional model (default input 299x299x3, at least 75x75).

    Args:
        include_top: add the `avg_pool` + `predictions` classifier.
        weights: None, "imagenet" or a weights file path.
        input_tensor, input_shape: the image input (tensor, or shape without batch).
        pooling: None, "avg" or "max" (only without the top).
        classes, classifier_activation: the classifier's size and activation.

    Example:
        >>> model = InceptionResNetV2(weights=None, include_top=False, input_shape=(75, 75, 3))
    """
    x, inputs, _ = _common.start(
        weights=weights, include_top=include_top, classes=classes, input_tensor=input_tensor,
        input_shape=input_shape, default_size=299, min_size=75)
    (x,) = _branches(x, [[(32, 3, 2), (32, 3, 1), (64, 3), "max", (80, 1, 1), (192, 3, 1),
                          "max"]])
    x = layers.Concatenate(axis=-1, name="mixed_5b")(_branches(
        x, [[(96, 1)], [(48, 1), (64, 5)], [(64, 1), (96, 3), (96, 3)], ["avg", (64, 1)]]))
    for index in range(1, 11):
        x = inception_resnet_block(x, 0.17, "block35", index)
    x = layers.Concatenate(axis=-1, name="mixed_6a")(_branches(
        x, [[(384, 3, 2)], [(256, 1), (256, 3), (384, 3, 2)], ["max"]]))
    for index in range(1, 21):
        x = inception_resnet_block(x, 0.1, "block17", index)
    x = layers.Concatenate(axis=-1, name="mixed_7a")(_branches(
        x, [[(256, 1), (384, 3, 2)], [(256, 1), (288, 3, 2)],
            [(256, 1), (288, 3), (320, 3, 2)], ["max"]]))
    for index in range(1, 10):
        x = inception_resnet_block(x, 0.2, "block8", index)
    x = inception_resnet_block(x, 1.0, "block8", 10, activation=None)
    x = conv2d_bn(x, 1536, 1, name="conv_7b")
    x = _common.top(x, include_top=include_top, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, weights=weights)
    return _common.finish_files(inputs, x, name=name, weights=weights, include_top=include_top,
                                files=_FILES)


preprocess_input = imagenet_utils.preprocessor("tf")
decode_predictions = imagenet_utils.decode_predictions
