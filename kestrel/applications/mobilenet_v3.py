"""MobileNetV3Small/Large (Howard et al., 2019): inverted residuals, squeeze-excite, hard-swish."""
from __future__ import annotations

import warnings

from kestrel import layers
from kestrel.applications import _common, imagenet_utils
from kestrel.applications.mobilenet_v2 import make_divisible, spatial_shape
from kestrel.applications.weights import validate_weights_args

_ORIGIN = f"{_common.KERAS_APPS}mobilenet_v3/"
_HASHES = {
    "large_224_0.75_float": ("765b44a33ad4005b3ac83185abf1d0eb",
                             "40af19a13ebea4e2ee0c676887f69a2e"),
    "large_224_1.0_float": ("59e551e166be033d707958cf9e29a6a7",
                            "07fb09a5933dd0c8eaafa16978110389"),
    "large_minimalistic_224_1.0_float": ("675e7b876c45c57e9e63e6d90a36599c",
                                         "ec5221f64a2f6d1ef965a614bdae7973"),
    "small_224_0.75_float": ("cb65d4e5be93758266aa0a7f2c6708b7",
                             "ebdb5cc8e0b497cd13a7c275d475c819"),
    "small_224_1.0_float": ("8768d4c2e7dee89b9d02b2d03d65d862",
                            "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "small_minimalistic_224_1.0_float": ("99cd97fb2fcdad2bf028eb838de69e37",
                                         "cde8136e733e811080d9fcd8a252f7e4"),
}
# Blocks: (expansion, filters, kernel, stride, squeeze-excite, activation). Kernel "k",
# squeeze-excite "se" and activation "act" follow `minimalistic` (3 / none / relu, else
# 5 / 0.25 / hard-swish); fixed values stay fixed.
_STACKS = {
    "small": ((1, 16, 3, 2, "se", "relu"), (72 / 16, 24, 3, 2, None, "relu"),
              (88 / 24, 24, 3, 1, None, "relu"), (4, 40, "k", 2, "se", "act"),
              (6, 40, "k", 1, "se", "act"), (6, 40, "k", 1, "se", "act"),
              (3, 48, "k", 1, "se", "act"), (3, 48, "k", 1, "se", "act"),
              (6, 96, "k", 2, "se", "act"), (6, 96, "k", 1, "se", "act"),
              (6, 96, "k", 1, "se", "act")),
    "large": ((1, 16, 3, 1, None, "relu"), (4, 24, 3, 2, None, "relu"),
              (3, 24, 3, 1, None, "relu"), (3, 40, "k", 2, "se", "relu"),
              (3, 40, "k", 1, "se", "relu"), (3, 40, "k", 1, "se", "relu"),
              (6, 80, 3, 2, None, "act"), (2.5, 80, 3, 1, None, "act"),
              (2.3, 80, 3, 1, None, "act"), (2.3, 80, 3, 1, None, "act"),
              (6, 112, 3, 1, "se", "act"), (6, 112, 3, 1, "se", "act"),
              (6, 160, "k", 2, "se", "act"), (6, 160, "k", 1, "se", "act"),
              (6, 160, "k", 1, "se", "act")),
}
_LAST_POINT = {"small": 1024, "large": 1280}


def _relu(x):
    return layers.ReLU()(x)


def _hard_swish(x):
    return layers.Activation("hard_swish")(x)


def _hard_sigmoid(x):
    return layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def _bn(x, name):
    return layers.BatchNormalization(axis=_common.channel_axis(), epsilon=1e-3, momentum=0.999,
                                     name=name)(x)


def _squeeze_excite(inputs, filters, se_ratio, prefix):
    x = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(
        inputs)
    x = layers.Conv2D(make_divisible(filters * se_ratio), kernel_size=1, padding="same",
                      name=f"{prefix}squeeze_excite_conv")(x)
    x = layers.ReLU(name=f"{prefix}squeeze_excite_relu")(x)
    x = layers.Conv2D(filters, kernel_size=1, padding="same",
                      name=f"{prefix}squeeze_excite_conv_1")(x)
    return layers.Multiply(name=f"{prefix}squeeze_excite_mul")([inputs, _hard_sigmoid(x)])


def _inverted_res_block(x, expansion, filters, kernel, stride, se_ratio, activation, block_id):
    shortcut, infilters = x, x.shape[_common.channel_axis()]
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    if block_id:
        x = layers.Conv2D(make_divisible(infilters * expansion), kernel_size=1, padding="same",
                          use_bias=False, name=f"{prefix}expand")(x)
        x = activation(_bn(x, f"{prefix}expand_bn"))
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel),
                                 name=f"{prefix}depthwise_pad")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name=f"{prefix}depthwise")(x)
    x = activation(_bn(x, f"{prefix}depthwise_bn"))
    if se_ratio:
        x = _squeeze_excite(x, make_divisible(infilters * expansion), se_ratio, prefix)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", use_bias=False,
                      name=f"{prefix}project")(x)
    x = _bn(x, f"{prefix}project_bn")
    if stride == 1 and infilters == filters:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def _check_imagenet(alpha, minimalistic, rows, cols) -> None:
    if (alpha not in (0.75, 1.0)) if not minimalistic else alpha != 1.0:
        raise ValueError("If imagenet weights are being loaded, alpha can be one of `0.75`, "
                         "`1.0` for non minimalistic or `1.0` for minimalistic only.")
    if rows != cols or rows != 224:
        warnings.warn("`input_shape` is undefined or non-square, or `rows` is not 224. Weights "
                      "for input shape (224, 224) will be loaded as the default.", stacklevel=4)


@_common.pretrained
def build_mobilenet_v3(model_type, input_shape, alpha, minimalistic, include_top, weights,
                       input_tensor, classes, pooling, dropout_rate, classifier_activation,
                       include_preprocessing, name):
    """MobileNetV3 of `model_type` `"small"` or `"large"`."""
    if input_shape is None and input_tensor is None:
        input_shape = (None, None, 3) if _common.channel_axis() == -1 else (3, None, None)
    shape = spatial_shape(input_tensor, input_shape)
    rows, cols = (shape[1], shape[2]) if _common.channel_axis() == 1 else shape[:2]
    if rows and cols and (rows < 32 or cols < 32):
        raise ValueError(f"Input size must be at least 32x32; Received `input_shape={shape}`")
    validate_weights_args(weights, include_top, classes)
    if weights == "imagenet":
        _check_imagenet(alpha, minimalistic, rows, cols)
    x, inputs = imagenet_utils.image_input(input_tensor, shape)
    kernel, act, se = (3, _relu, None) if minimalistic else (5, _hard_swish, 0.25)
    if include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0)(x)
    x = layers.Conv2D(16, kernel_size=3, strides=(2, 2), padding="same", use_bias=False,
                      name="conv")(x)
    x = act(_bn(x, "conv_bn"))
    for block_id, (expansion, filters, k, stride, has_se, a) in enumerate(_STACKS[model_type]):
        x = _inverted_res_block(x, expansion, make_divisible(filters * alpha),
                                kernel if k == "k" else k, stride, se if has_se else None,
                                act if a == "act" else _relu, block_id)
    last_point = _LAST_POINT[model_type]
    if alpha > 1.0:
        last_point = make_divisible(last_point * alpha)
    x = layers.Conv2D(make_divisible(x.shape[_common.channel_axis()] * 6), kernel_size=1,
                      padding="same", use_bias=False, name="conv_1")(x)
    x = act(_bn(x, "conv_1_bn"))
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = act(layers.Conv2D(last_point, kernel_size=1, padding="same", use_bias=True,
                              name="conv_2")(x))
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate)(x)
        x = layers.Conv2D(classes, kernel_size=1, padding="same", name="logits")(x)
        x = layers.Flatten()(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    else:
        x = _common.pool(x, pooling)
    key = f"{model_type}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
    file_name = f"weights_mobilenet_v3_{key}{'' if include_top else '_no_top_v2'}.h5"
    return _common.finish(inputs, x, name, weights, file_name=file_name,
                          origin=_ORIGIN + file_name,
                          file_hash=_HASHES.get(key, (None, None))[0 if include_top else 1])


DOC = """The {title} model; it takes pixels in [0, 255] (rescaling is built in).

    Args:
        input_shape: optional `(height, width, channels)`, at least 32x32.
        alpha: width multiplier (pretrained: 0.75 or 1.0; 1.0 when minimalistic).
        minimalistic: 3x3 kernels, ReLU and no squeeze-excite (faster, for small devices).
        include_top: whether to end with the 1x1 convolution classifier.
        weights: None, `"imagenet"` or the path of a weights file.
        input_tensor: optional symbolic tensor to use as the image input.
        classes: number of classes with a top.
        pooling: `None`, `"avg"` or `"max"` global pooling without a top.
        dropout_rate: dropout before the logits.
        classifier_activation: activation of the `predictions` layer.
        include_preprocessing: whether to start with a `Rescaling` layer to [-1, 1].
        name: model name.

    Example:
        >>> model = {title}(weights=None, include_top=False, input_shape=(32, 32, 3))
        >>> model.output_shape[-1]
        {channels}
    """


def _export(title: str, model_type: str, channels: int):
    def model(input_shape=None, alpha=1.0, minimalistic=False, include_top=True,
              weights="imagenet", input_tensor=None, classes=1000, pooling=None,
              dropout_rate=0.2, classifier_activation="softmax", include_preprocessing=True,
              name=title):
        return build_mobilenet_v3(model_type, input_shape, alpha, minimalistic, include_top,
                                  weights, input_tensor, classes, pooling, dropout_rate,
                                  classifier_activation, include_preprocessing, name)
    model.__name__ = model.__qualname__ = title
    model.__doc__ = DOC.format(title=title, channels=channels)
    return model


MobileNetV3Small = _export("MobileNetV3Small", "small", 576)
MobileNetV3Large = _export("MobileNetV3Large", "large", 960)


preprocess_input = imagenet_utils.preprocessor(None)
decode_predictions = imagenet_utils.decode_predictions
