"""EfficientNet B0-B7 (Tan & Le, 2019) with Keras' layer names and weight files.

The models rescale and normalize their input themselves (Rescaling + Normalization layers, as
in Keras): feed pixels in [0, 255]; `preprocess_input` is the identity.
"""
from __future__ import annotations

import math

from kestrel import layers
from kestrel.applications import _common, imagenet_utils

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/keras-applications/"
IMAGENET_STDDEV_RGB = [0.229, 0.224, 0.225]
CONV_KERNEL_INITIALIZER = {"class_name": "VarianceScaling", "config": {
    "scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
DENSE_KERNEL_INITIALIZER = {"class_name": "VarianceScaling", "config": {
    "scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}

# stages: (kernel_size, repeats, filters_in, filters_out, expand_ratio, strides); all have
# squeeze-excitation ratio 0.25 and identity skips
DEFAULT_BLOCKS_ARGS = [(3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2),
                       (3, 3, 40, 80, 6, 2), (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2),
                       (3, 1, 192, 320, 6, 1)]

# variant -> (width, depth, default size, dropout, top weights md5, notop weights md5)
_VARIANTS = {
    "b0": (1.0, 1.0, 224, 0.2, "902e53a9f72be733fc0bcb005b3ebbac",
           "50bc09e76180e00e4465e1a485ddc09d"),
    "b1": (1.0, 1.1, 240, 0.2, "1d254153d4ab51201f1646940f018540",
           "74c4e6b3e1f6a1eea24c589628592432"),
    "b2": (1.1, 1.2, 260, 0.3, "b15cce36ff4dcbd00b6dd88e7857a6ad",
           "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "b3": (1.2, 1.4, 300, 0.3, "ffd1fdc53d0ce67064dc6a9c7960ede0",
           "af6d107764bb5b1abb91932881670226"),
    "b4": (1.4, 1.8, 380, 0.4, "18c95ad55216b8f92d7e70b3a046e2fc",
           "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "b5": (1.6, 2.2, 456, 0.4, "ace28f2a6363774853a83a0b21b9421a",
           "38879255a25d3c92d5e44e04ae6cec6f"),
    "b6": (1.8, 2.6, 528, 0.5, "165f6e37dce68623721b423839de8be5",
           "9ecce42647a20130c1f39a5d4cb75743"),
    "b7": (2.0, 3.1, 600, 0.5, "8c03f828fec3ef71311cd463b6759d99",
           "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}


def _conv(filters, kernel_size, name, **kwargs):
    return layers.Conv2D(filters, kernel_size, padding=kwargs.pop("padding", "same"),
                         kernel_initializer=CONV_KERNEL_INITIALIZER, name=name, **kwargs)


def squeeze_excite(x, filters, filters_se, activation, name):
    """Channel attention: global pool -> 1x1 reduce -> 1x1 sigmoid expand -> multiply."""
    se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
    se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
    se = _conv(filters_se, 1, f"{name}se_reduce", activation=activation)(se)
    se = _conv(filters, 1, f"{name}se_expand", activation="sigmoid")(se)
    return layers.multiply([x, se], name=f"{name}se_excite")


def block(inputs, activation="swish", drop_rate=0.0, name="", filters_in=32, filters_out=16,
          kernel_size=3, strides=1, expand_ratio=1, se_ratio=0.0, id_skip=True):
    """One inverted residual block (MBConv): expand, depthwise, squeeze-excite, project."""
    filters = filters_in * expand_ratio
    x = inputs
    if expand_ratio != 1:
        x = _conv(filters, 1, f"{name}expand_conv", use_bias=False)(x)
        x = layers.BatchNormalization(axis=-1, name=f"{name}expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(x)
    padding = "same"
    if strides == 2:
        x = layers.ZeroPadding2D(imagenet_utils.correct_pad(x, kernel_size),
                                 name=f"{name}dwconv_pad")(x)
        padding = "valid"
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=padding, use_bias=False,
                               depthwise_initializer=CONV_KERNEL_INITIALIZER,
                               name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(axis=-1, name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        x = squeeze_excite(x, filters, max(1, int(filters_in * se_ratio)), activation, name)
    x = _conv(filters_out, 1, f"{name}project_conv", use_bias=False)(x)
    x = layers.BatchNormalization(axis=-1, name=f"{name}project_bn")(x)
    if id_skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def round_filters(filters, width, divisor=8):
    """Scale a channel count by `width`, rounded to a multiple of `divisor` (at most -10%)."""
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * filters else new)


@_common.pretrained
def EfficientNet(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2,
                 drop_connect_rate=0.2, depth_divisor=8, activation="swish",
                 blocks_args="default", name="efficientnet", include_top=True,
                 weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                 classes=1000, classifier_activation="softmax", weights_name=None):
    """An EfficientNet scaled by width and depth; `blocks_args` lists the stages as
    `(kernel_size, repeats, filters_in, filters_out, expand_ratio, strides)`."""
    stages = DEFAULT_BLOCKS_ARGS if blocks_args == "default" else blocks_args
    x, inputs, _ = _common.start(
        weights=weights, include_top=include_top, classes=classes, input_tensor=input_tensor,
        input_shape=input_shape, default_size=default_size, min_size=32)
    x = layers.Rescaling(1.0 / 255.0)(x)
    x = layers.Normalization(axis=-1)(x)
    if weights == "imagenet":  # the published weights hold variances, not deviations
        x = layers.Rescaling([1.0 / math.sqrt(s) for s in IMAGENET_STDDEV_RGB])(x)
    x = layers.ZeroPadding2D(imagenet_utils.correct_pad(x, 3), name="stem_conv_pad")(x)
    x = _conv(round_filters(32, width_coefficient, depth_divisor), 3, "stem_conv", strides=2,
              padding="valid", use_bias=False)(x)
    x = layers.BatchNormalization(axis=-1, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    def repeats(n):
        return int(math.ceil(depth_coefficient * n))

    total = float(sum(repeats(stage[1]) for stage in stages))
    done = 0
    for i, (kernel_size, count, filters_in, filters_out, expand, strides) in enumerate(stages):
        if count <= 0:
            raise ValueError("The number of repeats in `EfficientNet` must be > 0. "
                             f"Received: repeats={count}")
        filters_in = round_filters(filters_in, width_coefficient, depth_divisor)
        filters_out = round_filters(filters_out, width_coefficient, depth_divisor)
        for j in range(repeats(count)):
            x = block(x, activation, drop_connect_rate * done / total,
                      name=f"block{i + 1}{chr(j + 97)}_",
                      filters_in=filters_in if j == 0 else filters_out,
                      filters_out=filters_out, kernel_size=kernel_size,
                      strides=strides if j == 0 else 1, expand_ratio=expand, se_ratio=0.25)
            done += 1
    x = _conv(round_filters(1280, width_coefficient, depth_divisor), 1, "top_conv",
              use_bias=False)(x)
    x = layers.BatchNormalization(axis=-1, name="top_bn")(x)
    x = layers.Activation(activation, name="top_activation")(x)
    x = _common.top(x, include_top=include_top, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, weights=weights,
                    pool_names=("avg_pool", "max_pool"), dropout=dropout_rate,
                    kernel_initializer=DENSE_KERNEL_INITIALIZER)
    top_hash, notop_hash = _VARIANTS[weights_name][4:] if weights_name else (None, None)
    files = tuple((f"{name}{suffix}.h5", f"{BASE_WEIGHTS_PATH}{name}{suffix}.h5", digest)
                  for suffix, digest in (("", top_hash), ("_notop", notop_hash)))
    return _common.finish_files(inputs, x, name=name, weights=weights, include_top=include_top,
                                files=files)


def _variant(key: str):
    width, depth, size, dropout = _VARIANTS[key][:4]

    def build(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax",
              name=f"efficientnet{key}"):
        return EfficientNet(width, depth, size, dropout, name=name, include_top=include_top,
                            weights=weights, input_tensor=input_tensor,
                            input_shape=input_shape, pooling=pooling, classes=classes,
                            classifier_activation=classifier_activation, weights_name=key)

    build.__name__ = build.__qualname__ = f"EfficientNet{key.upper()}"
    build.__doc__ = (f"EfficientNet{key.upper()}: input {size}x{size}x3 by default (at least "
                     "32x32), pixels in [0, 255]; the arguments of every application.")
    return build


EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3, EfficientNetB4, \
    EfficientNetB5, EfficientNetB6, EfficientNetB7 = (_variant(key) for key in _VARIANTS)


preprocess_input = imagenet_utils.preprocessor(None)
decode_predictions = imagenet_utils.decode_predictions
