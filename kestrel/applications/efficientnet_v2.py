"""EfficientNetV2 B0-B3, S, M, L (Tan & Le, 2021) with Keras' layer names and weight files.

With `include_preprocessing=True` (the default) the models scale their input themselves:
feed pixels in [0, 255]; `preprocess_input` is the identity.
"""
from __future__ import annotations

import math

from kestrel import initializers, layers
from kestrel.applications import _common, imagenet_utils
from kestrel.applications.efficientnet import (CONV_KERNEL_INITIALIZER,
                                               DENSE_KERNEL_INITIALIZER, squeeze_excite)

BASE_WEIGHTS_PATH = _common.KERAS_APPS + "efficientnet_v2/"

# stages: (repeats, input_filters, output_filters, expand_ratio, se_ratio, strides, fused);
# every kernel is 3x3
_B = [(1, 32, 16, 1, 0, 1, True), (2, 16, 32, 4, 0, 2, True), (2, 32, 48, 4, 0, 2, True),
      (3, 48, 96, 4, 0.25, 2, False), (5, 96, 112, 6, 0.25, 1, False),
      (8, 112, 192, 6, 0.25, 2, False)]
DEFAULT_BLOCKS_ARGS = {
    **{f"efficientnetv2-b{i}": _B for i in range(4)},
    "efficientnetv2-s": [
        (2, 24, 24, 1, 0, 1, True), (4, 24, 48, 4, 0, 2, True), (4, 48, 64, 4, 0, 2, True),
        (6, 64, 128, 4, 0.25, 2, False), (9, 128, 160, 6, 0.25, 1, False),
        (15, 160, 256, 6, 0.25, 2, False)],
    "efficientnetv2-m": [
        (3, 24, 24, 1, 0, 1, True), (5, 24, 48, 4, 0, 2, True), (5, 48, 80, 4, 0, 2, True),
        (7, 80, 160, 4, 0.25, 2, False), (14, 160, 176, 6, 0.25, 1, False),
        (18, 176, 304, 6, 0.25, 2, False), (5, 304, 512, 6, 0.25, 1, False)],
    "efficientnetv2-l": [
        (4, 32, 32, 1, 0, 1, True), (7, 32, 64, 4, 0, 2, True), (7, 64, 96, 4, 0, 2, True),
        (10, 96, 192, 4, 0.25, 2, False), (19, 192, 224, 6, 0.25, 1, False),
        (25, 224, 384, 6, 0.25, 2, False), (7, 384, 640, 6, 0.25, 1, False)],
}

# function suffix -> (width, depth, default size, weights key, top md5, notop md5)
_VARIANTS = {
    "B0": (1.0, 1.0, 224, "b0", "21ecbf6da12460d5c40bb2f29ceb2188",
           "893217f2bb855e2983157299931e43ff"),
    "B1": (1.0, 1.1, 240, "b1", "069f0534ff22adf035c89e2d9547a9dc",
           "0e80663031ca32d657f9caa404b6ec37"),
    "B2": (1.1, 1.2, 260, "b2", "424e49f28180edbde1e94797771950a7",
           "1dfe2e7a5d45b6632553a8961ea609eb"),
    "B3": (1.2, 1.4, 300, "b3", "1f1fc43bd98a6e4fd8fdfd551e02c7a0",
           "f6abf7b5849ac99a89b50dd3fd532856"),
    "S": (1.0, 1.0, 384, "-s", "e1d88a8495beba45748fedd0cecbe016",
          "af0682fb74e8c54910f2d4393339c070"),
    "M": (1.0, 1.0, 480, "-m", "a3bf6aa3276309f4fc6a34aa114c95cd",
          "1b8dc055df72dde80d614482840fe342"),
    "L": (1.0, 1.0, 480, "-l", "27e6d408b53c7ebc868fefa357689935",
          "b0b66b5c863aef5b46e8608fe1711615"),
}


def round_filters(filters, width_coefficient, min_depth, depth_divisor):
    """Scale a channel count by the width, rounded to a multiple of `depth_divisor`."""
    filters *= width_coefficient
    return int(max(min_depth or depth_divisor,
                   int(filters + depth_divisor / 2) // depth_divisor * depth_divisor))


def _conv_bn(x, filters, kernel_size, strides, momentum, name, activation=None):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=-1, momentum=momentum, name=f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_activation")(x)
    return x


def _block(x, *, input_filters, output_filters, expand_ratio, se_ratio, strides, fused,
           bn_momentum, activation, survival_probability, name, kernel_size=3):
    """One MBConv (expand 1x1, depthwise) or FusedMBConv (expand kxk) block."""
    inputs, filters = x, input_filters * expand_ratio
    if expand_ratio != 1:
        x = _conv_bn(x, filters, kernel_size if fused else 1, strides if fused else 1,
                     bn_momentum, f"{name}expand", activation)
    if not fused:
        x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding="same",
                                   use_bias=False, depthwise_initializer=CONV_KERNEL_INITIALIZER,
                                   name=f"{name}dwconv2")(x)
        x = layers.BatchNormalization(axis=-1, momentum=bn_momentum, name=f"{name}bn")(x)
        x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        x = squeeze_excite(x, filters, max(1, int(input_filters * se_ratio)), activation, name)
    whole = fused and expand_ratio == 1  # a fused block without expansion convolves once
    x = _conv_bn(x, output_filters, kernel_size if whole else 1, strides if whole else 1,
                 bn_momentum, f"{name}project", activation if whole else None)
    if strides == 1 and input_filters == output_filters:
        if survival_probability:  # Keras passes the survival probability as the drop rate
            x = layers.Dropout(survival_probability, noise_shape=(None, 1, 1, 1),
                               name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


@_common.pretrained
def EfficientNetV2(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2,
                   drop_connect_rate=0.2, depth_divisor=8, min_depth=8, bn_momentum=0.9,
                   activation="swish", blocks_args="default", name="efficientnetv2",
                   include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax",
                   include_preprocessing=True, weights_name=None):
    """An EfficientNetV2 scaled by width and depth; `blocks_args` lists the stages as
    `(repeats, input_filters, output_filters, expand_ratio, se_ratio, strides, fused)`."""
    stages = DEFAULT_BLOCKS_ARGS[name] if blocks_args == "default" else blocks_args
    x, inputs, input_shape = _common.start(
        weights=weights, include_top=include_top, classes=classes, input_tensor=input_tensor,
        input_shape=input_shape, default_size=default_size, min_size=32)
    if include_preprocessing:
        if name.split("-")[-1].startswith("b") and input_shape[-1] == 3:
            x = layers.Rescaling(scale=1.0 / 255)(x)
            x = layers.Normalization(mean=[0.485, 0.456, 0.406],
                                     variance=[0.229**2, 0.224**2, 0.225**2], axis=-1)(x)
        else:
            x = layers.Rescaling(scale=1.0 / 128.0, offset=-1)(x)

    def width(filters):
        return round_filters(filters, width_coefficient, min_depth, depth_divisor)

    x = _conv_bn(x, width(stages[0][1]), 3, 2, bn_momentum, "stem", activation)
    total = float(sum(stage[0] for stage in stages))
    done = 0
    for i, (count, filters_in, filters_out, expand, se_ratio, strides, fused) in enumerate(
            stages):
        if count <= 0:
            raise ValueError("The number of repeats in `EfficientNetV2` must be > 0. "
                             f"Received: num_repeat={count}")
        filters_in, filters_out = width(filters_in), width(filters_out)
        for j in range(int(math.ceil(depth_coefficient * count))):
            x = _block(x, input_filters=filters_in if j == 0 else filters_out,
                       output_filters=filters_out, expand_ratio=expand, se_ratio=se_ratio,
                       strides=strides if j == 0 else 1, fused=fused,
                       bn_momentum=bn_momentum, activation=activation,
                       survival_probability=drop_connect_rate * done / total,
                       name=f"block{i + 1}{chr(j + 97)}_")
            done += 1
    x = _conv_bn(x, width(1280), 1, 1, bn_momentum, "top", activation)
    x = _common.top(x, include_top=include_top, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, weights=weights,
                    pool_names=("avg_pool", "max_pool"), dropout=dropout_rate,
                    kernel_initializer=DENSE_KERNEL_INITIALIZER,
                    bias_initializer=initializers.Constant(0.0))
    hashes = next((v[4:] for v in _VARIANTS.values() if v[3] == weights_name), (None, None))
    files = tuple((f"{name}{suffix}.h5", f"{BASE_WEIGHTS_PATH}{name}{suffix}.h5", digest)
                  for suffix, digest in zip(("", "_notop"), hashes))
    return _common.finish_files(inputs, x, name=name, weights=weights, include_top=include_top,
                                files=files)


def _variant(suffix: str):
    width, depth, size, key = _VARIANTS[suffix][:4]

    def build(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax",
              include_preprocessing=True, name=f"efficientnetv2-{key.lstrip('-')}"):
        return EfficientNetV2(width, depth, size, name=name, include_top=include_top,
                              weights=weights, input_tensor=input_tensor,
                              input_shape=input_shape, pooling=pooling, classes=classes,
                              classifier_activation=classifier_activation,
                              include_preprocessing=include_preprocessing, weights_name=key)

    build.__name__ = build.__qualname__ = f"EfficientNetV2{suffix}"
    build.__doc__ = (f"EfficientNetV2{suffix}: input {size}x{size}x3 by default (at least "
                     "32x32), pixels in [0, 255] with `include_preprocessing` (else [-1, 1]).")
    return build


EfficientNetV2B0, EfficientNetV2B1, EfficientNetV2B2, EfficientNetV2B3, EfficientNetV2S, \
    EfficientNetV2M, EfficientNetV2L = (_variant(suffix) for suffix in _VARIANTS)


preprocess_input = imagenet_utils.preprocessor(None)
decode_predictions = imagenet_utils.decode_predictions
