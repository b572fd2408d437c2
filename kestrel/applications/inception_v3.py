"""InceptionV3 (Szegedy et al., 2016) with Keras' layer names and weight files."""
from __future__ import annotations

from kestrel import layers
from kestrel.applications import _common, imagenet_utils

_FILES = _common.tf_files("inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels",
                          ("9a0d58056eeedaa3f26cb7ebd46da564", "bcbd6486424b2319ff4ef7d526e38f63"))


def conv2d_bn(x, filters, num_row, num_col, padding="same", strides=(1, 1), name=None):
    """Conv2D (no bias) -> BatchNormalization (no scale) -> ReLU."""
    x = layers.Conv2D(filters, (num_row, num_col), strides=strides, padding=padding,
                      use_bias=False, name=None if name is None else f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=-1, scale=False,
                                  name=None if name is None else f"{name}_bn")(x)
    return layers.Activation("relu", name=name)(x)


def _branch(x, ops):
    """Run one branch: each op is `(filters, rows, cols[, strides])` (a stride of 2 means
    'valid' padding), `"avg"` (3x3 same average pool) or `"max"` (3x3/2 max pool)."""
    for op in ops:
        if op == "avg":
            x = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x)
        elif op == "max":
            x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
        else:
            filters, rows, cols, *stride = op
            valid = bool(stride)
            x = conv2d_bn(x, filters, rows, cols, strides=(2, 2) if valid else (1, 1),
                          padding="valid" if valid else "same")
    return x


def _mixed(x, branches, name):
    return layers.concatenate([_branch(x, ops) for ops in branches], axis=-1, name=name)


def _block_a(pool):
    return [[(64, 1, 1)], [(48, 1, 1), (64, 5, 5)], [(64, 1, 1), (96, 3, 3), (96, 3, 3)],
            ["avg", (pool, 1, 1)]]


def _block_c(mid):
    return [[(192, 1, 1)], [(mid, 1, 1), (mid, 1, 7), (192, 7, 1)],
            [(mid, 1, 1), (mid, 7, 1), (mid, 1, 7), (mid, 7, 1), (192, 1, 7)],
            ["avg", (192, 1, 1)]]


def _block_e(x, index):
    """The last two blocks: two branches split into parallel 1x3 and 3x1 convolutions."""
    branch1x1 = conv2d_bn(x, 320, 1, 1)
    b3 = conv2d_bn(x, 384, 1, 1)
    b3 = layers.concatenate([conv2d_bn(b3, 384, 1, 3), conv2d_bn(b3, 384, 3, 1)], axis=-1,
                            name=f"mixed9_{index}")
    dbl = conv2d_bn(conv2d_bn(x, 448, 1, 1), 384, 3, 3)
    dbl = layers.concatenate([conv2d_bn(dbl, 384, 1, 3), conv2d_bn(dbl, 384, 3, 1)], axis=-1)
    pool = _branch(x, ["avg", (192, 1, 1)])
    return layers.concatenate([branch1x1, b3, dbl, pool], axis=-1, name=f"mixed{9 + index}")


@_common.pretrained
def InceptionV3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax",
                name="inception_v3"):
    """InceptionV3 as a functional model (default input 299x299x3, at least 75x75).

    Args:
        include_top: add the `avg_pool` + `predictions` classifier.
        weights: None, "imagenet" or a weights file path.
        input_tensor, input_shape: the image input (tensor, or shape without batch).
        pooling: None, "avg" or "max" (only without the top).
        classes, classifier_activation: the classifier's size and activation.

    Example:
        >>> model = InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    """
    x, inputs, _ = _common.start(
        weights=weights, include_top=include_top, classes=classes, input_tensor=input_tensor,
        input_shape=input_shape, default_size=299, min_size=75)
    x = _branch(x, [(32, 3, 3, 2)])
    x = conv2d_bn(x, 32, 3, 3, padding="valid")
    x = _branch(x, [(64, 3, 3), "max"])
    x = conv2d_bn(x, 80, 1, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, 3, padding="valid")
    x = _branch(x, ["max"])
    for index, pool in enumerate((32, 64, 64)):
        x = _mixed(x, _block_a(pool), f"mixed{index}")
    x = _mixed(x, [[(384, 3, 3, 2)], [(64, 1, 1), (96, 3, 3), (96, 3, 3, 2)], ["max"]],
               "mixed3")
    for index, mid in enumerate((128, 160, 160, 192)):
        x = _mixed(x, _block_c(mid), f"mixed{4 + index}")
    x = _mixed(x, [[(192, 1, 1), (320, 3, 3, 2)],
                   [(192, 1, 1), (192, 1, 7), (192, 7, 1), (192, 3, 3, 2)], ["max"]], "mixed8")
    for index in range(2):
        x = _block_e(x, index)
    x = _common.top(x, include_top=include_top, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, weights=weights)
    return _common.finish_files(inputs, x, name=name, weights=weights, include_top=include_top,
                                files=_FILES)


preprocess_input = imagenet_utils.preprocessor("tf")
decode_predictions = imagenet_utils.decode_predictions
