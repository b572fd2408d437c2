"""MobileNetV2 (Sandler et al., 2018): inverted residual blocks with linear bottlenecks."""
from __future__ import annotations

import warnings

from kestrel import config, layers
from kestrel.applications import _common, imagenet_utils
from kestrel.applications.mobilenet import pretrained_size
from kestrel.layers.node import KerasTensor

_ORIGIN = f"{_common.KERAS_APPS}mobilenet_v2/"
_SIZES = (96, 128, 160, 192, 224)
_ALPHAS = (0.35, 0.50, 0.75, 1.0, 1.3, 1.4)
# (filters, stride, expansion, repeats) of the inverted residual stages
_STAGES = ((16, 1, 1, 1), (24, 2, 6, 2), (32, 2, 6, 3), (64, 2, 6, 4), (96, 1, 6, 3),
           (160, 2, 6, 3), (320, 1, 6, 1))


def make_divisible(value, divisor=8, min_value=None) -> int:
    """`value` rounded to a multiple of `divisor`, never below 90% of it."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _bn(x, name):
    return layers.BatchNormalization(axis=_common.channel_axis(), epsilon=1e-3, momentum=0.999,
                                     name=name)(x)


def _inverted_res_block(inputs, expansion, stride, alpha, filters, block_id):
    axis = _common.channel_axis()
    in_channels = inputs.shape[axis]
    pointwise = make_divisible(int(filters * alpha), 8)
    x, prefix = inputs, f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, kernel_size=1, padding="same",
                          use_bias=False, activation=None, name=f"{prefix}expand")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(_bn(x, f"{prefix}expand_BN"))
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3),
                                 name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(kernel_size=3, strides=stride, activation=None, use_bias=False,
                               padding="same" if stride == 1 else "valid",
                               name=f"{prefix}depthwise")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(_bn(x, f"{prefix}depthwise_BN"))
    x = layers.Conv2D(pointwise, kernel_size=1, padding="same", use_bias=False, activation=None,
                      name=f"{prefix}project")(x)
    x = _bn(x, f"{prefix}project_BN")
    if in_channels == pointwise and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def spatial_shape(input_tensor, input_shape):
    """`input_shape`, or the image shape of a symbolic `input_tensor` (checked against it)."""
    if input_tensor is None or not isinstance(input_tensor, KerasTensor):
        return input_shape
    first = config.image_data_format() == "channels_first"
    if input_shape is None:
        return tuple(input_tensor.shape[1:])
    if input_tensor.shape[2 if not first else 1] != input_shape[1]:
        raise ValueError("input_tensor.shape[2] must equal input_shape[1]; Received "
                         f"`input_tensor.shape={input_tensor.shape}`, "
                         f"`input_shape={input_shape}`")
    return input_shape


@_common.pretrained
def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet",
                input_tensor=None, pooling=None, classes=1000,
                classifier_activation="softmax", name=None):
    """The MobileNetV2 model.

    Args:
        input_shape: optional `(height, width, channels)`, at least 32x32.
        alpha: width multiplier (pretrained: 0.35, 0.5, 0.75, 1.0, 1.3 or 1.4).
        include_top: whether to end with global pooling and the `predictions` layer.
        weights: None, `"imagenet"` or the path of a weights file.
        input_tensor: optional symbolic tensor to use as the image input.
        pooling: `None`, `"avg"` or `"max"` global pooling without a top.
        classes: number of classes with a top.
        classifier_activation: activation of the `predictions` layer.
        name: model name; defaults to `mobilenetv2_{alpha:.2f}_{rows}`.

    Example:
        >>> MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3)).output_shape
        (None, 1, 1, 1280)
    """
    probe = spatial_shape(input_tensor, input_shape)
    default_size = pretrained_size(probe, _SIZES)
    x, inputs, shape = _common.start(weights, include_top, classes, input_tensor, input_shape,
                                     default_size=default_size)
    rows, cols = (shape[1], shape[2]) if _common.channel_axis() == 1 else shape[:2]
    if weights == "imagenet":
        if alpha not in _ALPHAS:
            raise ValueError("If imagenet weights are being loaded, alpha must be one of "
                             "`0.35`, `0.50`, `0.75`, `1.0`, `1.3` or `1.4` only; Received "
                             f"`alpha={alpha}`")
        if rows != cols or rows not in _SIZES:
            rows = 224
            warnings.warn("`input_shape` is undefined or non-square, or `rows` is not in "
                          "[96, 128, 160, 192, 224]. Weights for input shape (224, 224) will "
                          "be loaded as the default.", stacklevel=2)
    x = layers.Conv2D(make_divisible(32 * alpha, 8), kernel_size=3, strides=(2, 2),
                      padding="same", use_bias=False, name="Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(_bn(x, "bn_Conv1"))
    block_id = 0
    for filters, stride, expansion, repeats in _STAGES:
        for r in range(repeats):
            x = _inverted_res_block(x, expansion, stride if r == 0 else 1, alpha, filters,
                                    block_id)
            block_id += 1
    last = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last, kernel_size=1, use_bias=False, name="Conv_1")(x)
    x = layers.ReLU(6.0, name="out_relu")(_bn(x, "Conv_1_bn"))
    x = _common.avg_top(x, include_top, pooling, classes, classifier_activation, weights,
                        named=False)
    name = name if name is not None else f"mobilenetv2_{alpha:0.2f}_{rows}"
    file_name = (f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}"
                 f"{'' if include_top else '_no_top'}.h5")
    return _common.finish(inputs, x, name, weights, file_name=file_name,
                          origin=_ORIGIN + file_name)


preprocess_input = imagenet_utils.preprocessor("tf")
decode_predictions = imagenet_utils.decode_predictions
