"""DenseNet121/169/201 (Huang et al., 2017): densely connected convolutional networks."""
from __future__ import annotations

from kestrel import config, layers
from kestrel.applications import _common, imagenet_utils

_ORIGIN = f"{_common.KERAS_APPS}densenet/"
_EPS = 1.001e-5
_GROWTH = 32
# weights name -> (blocks per dense block, (hash with top, hash without top))
_DEPTHS = {
    "densenet121": ((6, 12, 24, 16), ("9d60b8095a5708f2dcce2bca79d332c7",
                                      "30ee3e1110167f948a6b9946edeeb738")),
    "densenet169": ((6, 12, 32, 32), ("d699b8f76981ab1b30698df4c175e90b",
                                      "b8c4d4c20dd625c148057b9ff1c1176b")),
    "densenet201": ((6, 12, 48, 32), ("1ceb130c1ea1b78c3bf6114dbdfd8807",
                                      "c13680b51ded0fb44dff2d8f86ac8bb1")),
}


def _bn_relu(x, prefix):
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{prefix}bn")(x)
    return layers.Activation("relu", name=f"{prefix}relu")(x)


def _conv_block(x, name):
    """BN-ReLU-1x1 (4 x growth), BN-ReLU-3x3 (growth), concatenated to the input."""
    y = _bn_relu(x, f"{name}_0_")
    y = layers.Conv2D(4 * _GROWTH, 1, use_bias=False, name=f"{name}_1_conv")(y)
    y = _bn_relu(y, f"{name}_1_")
    y = layers.Conv2D(_GROWTH, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    return layers.Concatenate(axis=3, name=f"{name}_concat")([x, y])


def _transition(x, name):
    """BN-ReLU-1x1 convolution halving the channels, then 2x2 average pooling."""
    x = _bn_relu(x, f"{name}_")
    x = layers.Conv2D(int(x.shape[3] * 0.5), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


@_common.pretrained
def build_densenet(weights_name, include_top, weights, input_tensor, input_shape, pooling,
                   classes, classifier_activation, name):
    """DenseNet of the depth `weights_name` names (channels-last only, as in Keras)."""
    if config.image_data_format() == "channels_first":
        raise ValueError("DenseNet does not support the `channels_first` image data format. "
                         "Switch to `channels_last` with "
                         "`kestrel.config.set_image_data_format('channels_last')`.")
    depths, hashes = _DEPTHS[weights_name]
    x, inputs, _ = _common.start(weights, include_top, classes, input_tensor, input_shape)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(x)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = _bn_relu(x, "conv1_")
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, blocks in enumerate(depths, start=2):
        for b in range(1, blocks + 1):
            x = _conv_block(x, f"conv{stage}_block{b}")
        if stage < 5:
            x = _transition(x, f"pool{stage}")
    x = _bn_relu(x, "")
    x = _common.avg_top(x, include_top, pooling, classes, classifier_activation, weights)
    suffix = "" if include_top else "_notop"
    file_name = f"{weights_name}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"
    return _common.finish(inputs, x, name, weights, file_name=file_name,
                          origin=_ORIGIN + file_name, file_hash=hashes[0 if include_top else 1])


DOC = """The {title} model: dense blocks of {blocks} convolution blocks.

    Args:
        include_top: whether to end with global average pooling and the `predictions` layer.
        weights: None, `"imagenet"` or the path of a weights file.
        input_tensor: optional symbolic tensor to use as the image input.
        input_shape: optional `(height, width, channels)` (at least 32x32) without a top.
        pooling: `None`, `"avg"` or `"max"` global pooling without a top.
        classes: number of classes with a top.
        classifier_activation: activation of the `predictions` layer.
        name: model name.

    Example:
        >>> model = {title}(weights=None, include_top=False, input_shape=(32, 32, 3))
        >>> len(model.output_shape)
        4
    """


def _export(title: str, weights_name: str):
    def model(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name=weights_name):
        return build_densenet(weights_name, include_top, weights, input_tensor, input_shape,
                              pooling, classes, classifier_activation, name)
    model.__name__ = model.__qualname__ = title
    model.__doc__ = DOC.format(title=title, blocks=", ".join(map(str, _DEPTHS[weights_name][0])))
    return model


DenseNet121 = _export("DenseNet121", "densenet121")
DenseNet169 = _export("DenseNet169", "densenet169")
DenseNet201 = _export("DenseNet201", "densenet201")


preprocess_input = imagenet_utils.preprocessor("torch")
decode_predictions = imagenet_utils.decode_predictions
