"""MobileNet (Howard et al., 2017): depthwise separable convolutions with a width `alpha`."""
from __future__ import annotations

import warnings

from kestrel import activations, config, layers
from kestrel.applications import _common, imagenet_utils

_ORIGIN = f"{_common.KERAS_APPS}mobilenet/"
_SIZES = (128, 160, 192, 224)
# (pointwise filters, stride) of the 13 depthwise separable blocks
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
           (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}


def _rows_cols(input_shape):
    if config.image_data_format() == "channels_first":
        return input_shape[1], input_shape[2]
    return input_shape[0], input_shape[1]


def pretrained_size(input_shape, sizes) -> int:
    """The image size whose weights fit `input_shape` (224 unless a square known size)."""
    if input_shape is None:
        return 224
    rows, cols = _rows_cols(input_shape)
    return rows if rows == cols and rows in sizes else 224


def _separable(x, filters, alpha, depth_multiplier, stride, block_id):
    axis = _common.channel_axis()
    if stride != 1:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D((3, 3), padding="same" if stride == 1 else "valid",
                               depth_multiplier=depth_multiplier, strides=(stride, stride),
                               use_bias=False, name=f"conv_dw_{block_id}")(x)
    x = layers.BatchNormalization(axis=axis, name=f"conv_dw_{block_id}_bn")(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(int(filters * alpha), (1, 1), padding="same", use_bias=False,
                      strides=(1, 1), name=f"conv_pw_{block_id}")(x)
    x = layers.BatchNormalization(axis=axis, name=f"conv_pw_{block_id}_bn")(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


@_common.pretrained
def MobileNet(input_shape=None, alpha=1.0, depth_multiplier=1, dropout=1e-3, include_top=True,
              weights="imagenet", input_tensor=None, pooling=None, classes=1000,
              classifier_activation="softmax", name=None):
    """The MobileNet model.

    Args:
        input_shape: optional `(height, width, channels)`, at least 32x32.
        alpha: width multiplier of every layer (pretrained: 0.25, 0.5, 0.75 or 1.0).
        depth_multiplier: depthwise convolution channel multiplier (pretrained: 1).
        dropout: dropout rate before the classifier.
        include_top: whether to end with the 1x1 convolution classifier.
        weights: None, `"imagenet"` or the path of a weights file.
        input_tensor: optional symbolic tensor to use as the image input.
        pooling: `None`, `"avg"` or `"max"` global pooling without a top.
        classes: number of classes with a top.
        classifier_activation: activation of the `predictions` layer.
        name: model name; defaults to `mobilenet_{alpha:.2f}_{rows}`.

    Example:
        >>> MobileNet(weights=None, include_top=False, input_shape=(32, 32, 3)).output_shape
        (None, 1, 1, 1024)
    """
    default_size = pretrained_size(input_shape, _SIZES)
    x, inputs, shape = _common.start(weights, include_top, classes, input_tensor, input_shape,
                                     default_size=default_size)
    rows, cols = _rows_cols(shape)
    if weights == "imagenet":
        if depth_multiplier != 1:
            raise ValueError("If imagenet weights are being loaded, depth multiplier must be 1.  "
                             f"Received depth_multiplier={depth_multiplier}")
        if alpha not in _ALPHA_TEXT:
            raise ValueError("If imagenet weights are being loaded, alpha can be one of`0.25`, "
                             f"`0.50`, `0.75` or `1.0` only.  Received alpha={alpha}")
        if rows != cols or rows not in _SIZES:
            rows = 224
            warnings.warn("`input_shape` is undefined or non-square, or `rows` is not in "
                          "[128, 160, 192, 224]. Weights for input shape (224, 224) will be "
                          "loaded as the default.", stacklevel=2)
    axis = _common.channel_axis()
    x = layers.Conv2D(int(32 * alpha), (3, 3), padding="same", use_bias=False, strides=(2, 2),
                      name="conv1")(x)
    x = layers.BatchNormalization(axis=axis, name="conv1_bn")(x)
    x = layers.ReLU(6.0, name="conv1_relu")(x)
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = _separable(x, filters, alpha, depth_multiplier, stride, block_id)
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(classes, (1, 1), padding="same", name="conv_preds")(x)
        x = layers.Reshape((classes,), name="reshape_2")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    else:
        x = _common.pool(x, pooling, named=False)
    name = name if name is not None else f"mobilenet_{alpha:0.2f}_{rows}"
    file_name = (f"mobilenet_{_ALPHA_TEXT.get(alpha, '2_5')}_{rows}_tf"
                 f"{'' if include_top else '_no_top'}.h5")
    return _common.finish(inputs, x, name, weights, file_name=file_name,
                          origin=_ORIGIN + file_name)


def relu6(x):
    """`relu(x, max_value=6)`. Keras 2.0-2.1 scripts pass it and `DepthwiseConv2D` (then defined
    here) to `load_model(..., custom_objects=...)`."""
    return activations.relu(x, max_value=6.0)


DepthwiseConv2D = layers.DepthwiseConv2D


preprocess_input = imagenet_utils.preprocessor("tf")
decode_predictions = imagenet_utils.decode_predictions
