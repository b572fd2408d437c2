"""NASNet-A Mobile and Large (Zoph et al., 2018) with Keras' layer names and weight files."""
from __future__ import annotations

from kestrel import config, layers
from kestrel.applications import _common, imagenet_utils

BASE_WEIGHTS_PATH = _common.KERAS_APPS + "nasnet/"
# default size -> (top file, notop file), each (cache name, published name, md5)
_FILES = {
    224: (("nasnet_mobile.h5", "NASNet-mobile.h5", "020fb642bf7360b370c678b08e0adf61"),
          ("nasnet_mobile_no_top.h5", "NASNet-mobile-no-top.h5",
           "1ed92395b5b598bdda52abe5c0dbfd63")),
    331: (("nasnet_large.h5", "NASNet-large.h5", "11577c9a518f0070763c2b964a382f17"),
          ("nasnet_large_no_top.h5", "NASNet-large-no-top.h5",
           "d81d89dc07e6e56530c4e77faddd61b5")),
}


def _bn(name):
    return layers.BatchNormalization(axis=-1, momentum=0.9997, epsilon=1e-3, name=name)


def _conv1x1(filters, name):
    return layers.Conv2D(filters, (1, 1), padding="same", use_bias=False, name=name,
                         kernel_initializer="he_normal")


def _separable_conv_block(ip, filters, kernel_size=(3, 3), strides=(1, 1), block_id=None):
    """Twice ReLU -> SeparableConv2D -> BatchNormalization; the first may be strided."""
    x = layers.Activation("relu")(ip)
    padding = "same"
    if strides == (2, 2):
        x = layers.ZeroPadding2D(imagenet_utils.correct_pad(x, kernel_size),
                                 name=f"separable_conv_1_pad_{block_id}")(x)
        padding = "valid"
    x = layers.SeparableConv2D(filters, kernel_size, strides=strides, padding=padding,
                               use_bias=False, name=f"separable_conv_1_{block_id}")(x)
    x = _bn(f"separable_conv_1_bn_{block_id}")(x)
    x = layers.Activation("relu")(x)
    x = layers.SeparableConv2D(filters, kernel_size, padding="same", use_bias=False,
                               name=f"separable_conv_2_{block_id}")(x)
    return _bn(f"separable_conv_2_bn_{block_id}")(x)


def _adjust_block(p, ip, filters, block_id=None):
    """Match the previous cell's output `p` to `ip`'s size (factorized reduction) or to
    `filters` channels (1x1 projection)."""
    if p is None:
        return ip
    if p.shape[-2] != ip.shape[-2]:
        p = layers.Activation("relu", name=f"adjust_relu_1_{block_id}")(p)
        halves = []
        for index, shifted in ((1, False), (2, True)):
            y = p
            if shifted:  # the second path samples the odd pixels
                y = layers.ZeroPadding2D(padding=((0, 1), (0, 1)))(y)
                y = layers.Cropping2D(cropping=((1, 0), (1, 0)))(y)
            y = layers.AveragePooling2D((1, 1), strides=(2, 2), padding="valid",
                                        name=f"adjust_avg_pool_{index}_{block_id}")(y)
            halves.append(_conv1x1(filters // 2, f"adjust_conv_{index}_{block_id}")(y))
        p = layers.concatenate(halves, axis=-1)
        return _bn(f"adjust_bn_{block_id}")(p)
    if p.shape[-1] != filters:
        p = layers.Activation("relu")(p)
        p = _conv1x1(filters, f"adjust_conv_projection_{block_id}")(p)
        return _bn(f"adjust_bn_{block_id}")(p)
    return p


def _cell_input(ip, p, filters, kind, block_id):
    p = _adjust_block(p, ip, filters, block_id)
    h = layers.Activation("relu")(ip)
    h = _conv1x1(filters, f"{kind}_conv_1_{block_id}")(h)
    return p, _bn(f"{kind}_bn_1_{block_id}")(h)


def _avg3(name, strides=(1, 1), padding="same"):
    return layers.AveragePooling2D((3, 3), strides=strides, padding=padding, name=name)


def _normal_a_cell(ip, p, filters, block_id=None):
    """The normal cell: five pairwise combinations of `h` (this input) and `p` (the last)."""
    p, h = _cell_input(ip, p, filters, "normal", block_id)
    def sep(x, kernel, side):
        return _separable_conv_block(x, filters, kernel, block_id=f"normal_{side}_{block_id}")

    x1 = layers.add([sep(h, (5, 5), "left1"), sep(p, (3, 3), "right1")],
                    name=f"normal_add_1_{block_id}")
    x2 = layers.add([sep(p, (5, 5), "left2"), sep(p, (3, 3), "right2")],
                    name=f"normal_add_2_{block_id}")
    x3 = layers.add([_avg3(f"normal_left3_{block_id}")(h), p], name=f"normal_add_3_{block_id}")
    x4 = layers.add([_avg3(f"normal_left4_{block_id}")(p),
                     _avg3(f"normal_right4_{block_id}")(p)], name=f"normal_add_4_{block_id}")
    x5 = _separable_conv_block(h, filters, block_id=f"normal_left5_{block_id}")
    x5 = layers.add([x5, h], name=f"normal_add_5_{block_id}")
    x = layers.concatenate([p, x1, x2, x3, x4, x5], axis=-1, name=f"normal_concat_{block_id}")
    return x, ip


def _reduction_a_cell(ip, p, filters, block_id=None):
    """The reduction cell: like the normal cell, with stride 2 on every path."""
    p, h = _cell_input(ip, p, filters, "reduction", block_id)
    h3 = layers.ZeroPadding2D(imagenet_utils.correct_pad(h, 3),
                              name=f"reduction_pad_1_{block_id}")(h)

    def sep(x, kernel, side):
        return _separable_conv_block(x, filters, kernel, strides=(2, 2),
                                     block_id=f"reduction_{side}_{block_id}")

    def max_pool(name):
        return layers.MaxPooling2D((3, 3), strides=(2, 2), padding="valid", name=name)(h3)

    x1 = layers.add([sep(h, (5, 5), "left1"), sep(p, (7, 7), "right1")],
                    name=f"reduction_add_1_{block_id}")
    x2 = layers.add([max_pool(f"reduction_left2_{block_id}"), sep(p, (7, 7), "right2")],
                    name=f"reduction_add_2_{block_id}")
    x3_1 = _avg3(f"reduction_left3_{block_id}", (2, 2), "valid")(h3)
    x3 = layers.add([x3_1, sep(p, (5, 5), "right3")], name=f"reduction_add3_{block_id}")
    x4 = layers.add([x2, _avg3(f"reduction_left4_{block_id}")(x1)])
    x5_1 = _separable_conv_block(x1, filters, (3, 3), block_id=f"reduction_left4_{block_id}")
    x5 = layers.add([x5_1, max_pool(f"reduction_right5_{block_id}")],
                    name=f"reduction_add4_{block_id}")
    x = layers.concatenate([x2, x3, x4, x5], axis=-1, name=f"reduction_concat_{block_id}")
    return x, ip


@_common.pretrained
def NASNet(input_shape=None, penultimate_filters=4032, num_blocks=6, stem_block_filters=96,
           skip_reduction=True, filter_multiplier=2, include_top=True, weights="imagenet",
           input_tensor=None, pooling=None, classes=1000, default_size=None,
           classifier_activation="softmax", name="NASNet"):
    """A NASNet-A: `num_blocks` normal cells between reductions, `penultimate_filters`
    channels at the end (a multiple of `24 * filter_multiplier ** 2`)."""
    if config.image_data_format() == "channels_first":
        raise ValueError("NASNet does not support the `channels_first` image data format. "
                         "Switch to `channels_last` by editing your local config file at "
                         "~/.keras/keras.json")
    if isinstance(input_shape, tuple) and None in input_shape and weights == "imagenet":
        raise ValueError("When specifying the input shape of a NASNet and loading `ImageNet` "
                         "weights, the input_shape argument must be static (no None entries). "
                         f"Got: `input_shape={input_shape}`.")
    default_size = default_size or 331
    if weights == "imagenet" and default_size not in _FILES:
        raise ValueError("ImageNet weights can only be loaded with NASNetLarge or NASNetMobile")
    x, inputs, _ = _common.start(
        weights=weights, include_top=include_top, classes=classes, input_tensor=input_tensor,
        input_shape=input_shape, default_size=default_size, min_size=32)
    if penultimate_filters % (24 * (filter_multiplier**2)) != 0:
        raise ValueError("For NASNet-A models, the `penultimate_filters` must be a multiple of "
                         "24 * (`filter_multiplier` ** 2). "
                         f"Current value: {penultimate_filters}")
    filters = penultimate_filters // 24
    x = layers.Conv2D(stem_block_filters, (3, 3), strides=(2, 2), padding="valid",
                      use_bias=False, name="stem_conv1", kernel_initializer="he_normal")(x)
    x = _bn("stem_bn1")(x)
    p = None
    x, p = _reduction_a_cell(x, p, filters // (filter_multiplier**2), block_id="stem_1")
    x, p = _reduction_a_cell(x, p, filters // filter_multiplier, block_id="stem_2")
    for stage in range(3):
        if stage:
            x, p0 = _reduction_a_cell(x, p, filters * filter_multiplier**stage,
                                      block_id=f"reduce_{stage * num_blocks}")
            p = p if skip_reduction else p0
        for i in range(num_blocks):
            x, p = _normal_a_cell(x, p, filters * filter_multiplier**stage,
                                  block_id=f"{stage * num_blocks + i + 1 if stage else i}")
    x = layers.Activation("relu")(x)
    x = _common.top(x, include_top=include_top, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, weights=weights, gap_name=None)
    files = ((None, None, None),) * 2
    if default_size in _FILES:
        files = tuple((cache, BASE_WEIGHTS_PATH + published, digest)
                      for cache, published, digest in _FILES[default_size])
    return _common.finish_files(inputs, x, name=name, weights=weights, include_top=include_top,
                                files=files)


def NASNetMobile(input_shape=None, include_top=True, weights="imagenet", input_tensor=None,
                 pooling=None, classes=1000, classifier_activation="softmax",
                 name="nasnet_mobile"):
    """NASNet-A Mobile (4 @ 1056): input 224x224x3 by default (at least 32x32).

    Keras 3 refuses this model on its torch backend; Kestrel builds it.

    Example:
        >>> model = NASNetMobile(weights=None, include_top=False, input_shape=(32, 32, 3))
    """
    if not include_top and input_shape is None:
        input_shape = (224, 224, 3)
    return NASNet(input_shape, penultimate_filters=1056, num_blocks=4, stem_block_filters=32,
                  skip_reduction=False, filter_multiplier=2, include_top=include_top,
                  weights=weights, input_tensor=input_tensor, pooling=pooling, classes=classes,
                  default_size=224, classifier_activation=classifier_activation, name=name)


def NASNetLarge(input_shape=None, include_top=True, weights="imagenet", input_tensor=None,
                pooling=None, classes=1000, classifier_activation="softmax",
                name="nasnet_large"):
    """NASNet-A Large (6 @ 4032): input 331x331x3 by default (at least 32x32)."""
    return NASNet(input_shape, penultimate_filters=4032, num_blocks=6, stem_block_filters=96,
                  skip_reduction=True, filter_multiplier=2, include_top=include_top,
                  weights=weights, input_tensor=input_tensor, pooling=pooling, classes=classes,
                  default_size=331, classifier_activation=classifier_activation, name=name)


preprocess_input = imagenet_utils.preprocessor("tf")
decode_predictions = imagenet_utils.decode_predictions
