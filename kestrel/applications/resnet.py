"""ResNet50/101/152 (He et al., 2015) and the ResNet builder that ResNetV2 shares."""
from __future__ import annotations

from kestrel import layers
from kestrel.applications import _common, imagenet_utils

_ORIGIN = f"{_common.KERAS_APPS}resnet/"
_FILTERS = (64, 128, 256, 512)
_EPS = 1.001e-5
# weights name -> (blocks per stack, (hash with top, hash without top))
DEPTHS = {
    "resnet50": ((3, 4, 6, 3), ("2cb95161c43110f7111970584f804107",
                                "4d473c1dd8becc155b73f8504c6f6626")),
    "resnet101": ((3, 4, 23, 3), ("f1aeb4b969a6efcfb50fad2f0c20cfc5",
                                  "88cf7a10940856eca736dc7b7e228a21")),
    "resnet152": ((3, 8, 36, 3), ("100835be76be38e30d865e96f2aaae62",
                                  "ee4c566cf9a93f14d82f913c2dc6dd0c")),
    "resnet50v2": ((3, 4, 6, 3), ("3ef43a0b657b3be2300d5770ece849e0",
                                  "fac2f116257151a9d068a22e544a4917")),
    "resnet101v2": ((3, 4, 23, 3), ("6343647c601c52e1368623803854d971",
                                    "c0ed64b8031c3730f411d2eb4eea35b5")),
    "resnet152v2": ((3, 8, 36, 3), ("a49b44d1979771252814e80f8ec446f9",
                                    "ed17cf2e0169df9d443503ef94b23b33")),
}


def _bn(x, name):
    return layers.BatchNormalization(axis=_common.channel_axis(), epsilon=_EPS, name=name)(x)


def _block_v1(x, filters, stride, conv_shortcut, name):
    """Bottleneck block, post-activation: 1x1, 3x3, 1x1 (x4 filters), add, relu."""
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = _bn(shortcut, f"{name}_0_bn")
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(_bn(x, f"{name}_1_bn"))
    x = layers.Conv2D(filters, 3, padding="SAME", name=f"{name}_2_conv")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(_bn(x, f"{name}_2_bn"))
    x = _bn(layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x), f"{name}_3_bn")
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _block_v2(x, filters, stride, conv_shortcut, name):
    """Bottleneck block, pre-activation; the stride sits on the 3x3 convolution."""
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(_bn(x, f"{name}_preact_bn"))
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    else:
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = layers.Conv2D(filters, 1, strides=1, use_bias=False, name=f"{name}_1_conv")(preact)
    x = layers.Activation("relu", name=f"{name}_1_relu")(_bn(x, f"{name}_1_bn"))
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(x)
    x = layers.Conv2D(filters, 3, strides=stride, use_bias=False, name=f"{name}_2_conv")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(_bn(x, f"{name}_2_bn"))
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return layers.Add(name=f"{name}_out")([shortcut, x])


def _stacks(x, depths, preact: bool):
    """The four stacks `conv2`..`conv5`; v1 strides the first block, v2 the last."""
    for index, (blocks, filters) in enumerate(zip(depths, _FILTERS)):
        name = f"conv{index + 2}"
        for b in range(1, blocks + 1):
            if preact:
                stride = 2 if b == blocks and index < 3 else 1
                x = _block_v2(x, filters, stride, b == 1, f"{name}_block{b}")
            else:
                stride = (1 if index == 0 else 2) if b == 1 else 1
                x = _block_v1(x, filters, stride, b == 1, f"{name}_block{b}")
    return x


@_common.pretrained
def build_resnet(weights_name, preact, include_top, weights, input_tensor, input_shape, pooling,
                 classes, classifier_activation, name):
    """ResNet (`preact=False`) or ResNetV2 (`preact=True`) of the depth `weights_name` names."""
    depths, hashes = DEPTHS[weights_name]
    x, inputs, _ = _common.start(weights, include_top, classes, input_tensor, input_shape)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(x)
    x = layers.Conv2D(64, 7, strides=2, use_bias=True, name="conv1_conv")(x)
    if not preact:
        x = layers.Activation("relu", name="conv1_relu")(_bn(x, "conv1_bn"))
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = _stacks(x, depths, preact)
    if preact:
        x = layers.Activation("relu", name="post_relu")(_bn(x, "post_bn"))
    x = _common.avg_top(x, include_top, pooling, classes, classifier_activation, weights)
    suffix = "" if include_top else "_notop"
    file_name = f"{weights_name}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"
    return _common.finish(inputs, x, name, weights, file_name=file_name,
                          origin=_ORIGIN + file_name, file_hash=hashes[0 if include_top else 1])


DOC = """The {title} model{what}.

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
        >>> model.output_shape
        (None, 1, 1, 2048)
    """


def export(title: str, weights_name: str, what: str):
    """The public model function `title` (default model name `weights_name`)."""
    def model(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name=weights_name):
        return build_resnet(weights_name, weights_name.endswith("v2"), include_top, weights,
                            input_tensor, input_shape, pooling, classes, classifier_activation,
                            name)
    model.__name__ = model.__qualname__ = title
    model.__doc__ = DOC.format(title=title, what=what)
    return model


ResNet50 = export("ResNet50", "resnet50", ": 3, 4, 6, 3 bottleneck blocks")
ResNet101 = export("ResNet101", "resnet101", ": 3, 4, 23, 3 bottleneck blocks")
ResNet152 = export("ResNet152", "resnet152", ": 3, 8, 36, 3 bottleneck blocks")


preprocess_input = imagenet_utils.preprocessor("caffe")
decode_predictions = imagenet_utils.decode_predictions
