"""The steps every application shares: checked input, pooled or classifier top, weights."""
from __future__ import annotations

import functools
import inspect

from kestrel import config, layers
from kestrel.applications import imagenet_utils
from kestrel.applications.weights import load_application_weights, validate_weights_args
from kestrel.layers.initialization import initializers_skipped
from kestrel.models.functional import Functional

KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"


def pretrained(builder):
    """`builder` (an application's model function) skips the weight initializers when its
    `weights` argument names weights to load ("imagenet" or a file), which overwrite them
    all: ConvNeXtXLarge's 350M random draws cost seconds."""
    signature = inspect.signature(builder)

    @functools.wraps(builder)
    def build(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.arguments.get("weights") is None:
            return builder(*args, **kwargs)
        with initializers_skipped():
            return builder(*args, **kwargs)
    return build


def channel_axis() -> int:
    """The channel axis of image tensors under the global data format (batch included)."""
    return -1 if config.image_data_format() == "channels_last" else 1


def start(weights, include_top, classes, input_tensor, input_shape, *, default_size=224,
          min_size=32):
    """Check the arguments; return (tensor to build on, model inputs, resolved input shape)."""
    validate_weights_args(weights, include_top, classes)
    shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=min_size,
        data_format=config.image_data_format(), require_flatten=include_top, weights=weights)
    x, inputs = imagenet_utils.image_input(input_tensor, shape)
    return x, inputs, shape


def pool(x, pooling, named: bool = True):
    """Global average / max pooling for `pooling="avg"` / `"max"`; `x` unchanged for None."""
    names = ("avg_pool", "max_pool") if named else (None, None)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=names[0])(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=names[1])(x)
    return x


def classify(x, classes, classifier_activation, weights):
    """The `predictions` Dense layer (pretrained weights allow only softmax or None)."""
    imagenet_utils.validate_activation(classifier_activation, weights)
    return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def avg_top(x, include_top, pooling, classes, classifier_activation, weights, named=True):
    """Global average pooling + `predictions` with a top, else the requested pooling."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool" if named else None)(x)
        return classify(x, classes, classifier_activation, weights)
    return pool(x, pooling, named)


def top(x, *, include_top, pooling, classes, classifier_activation, weights,
        gap_name="avg_pool", pool_names=(None, None), dropout=0.0, **dense_kwargs):
    """The classifier (global average pool, optional dropout, `predictions` Dense) or, without
    it, the optional `pooling` ("avg" or "max", layers named by `pool_names`)."""
    if not include_top:
        if pooling == "avg":
            return layers.GlobalAveragePooling2D(name=pool_names[0])(x)
        if pooling == "max":
            return layers.GlobalMaxPooling2D(name=pool_names[1])(x)
        return x
    x = layers.GlobalAveragePooling2D(name=gap_name)(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="top_dropout")(x)
    imagenet_utils.validate_activation(classifier_activation, weights)
    return layers.Dense(classes, activation=classifier_activation, name="predictions",
                        **dense_kwargs)(x)


def finish(inputs, outputs, name, weights, *, file_name=None, origin=None, file_hash=None):
    """The functional model, with `weights` loaded (`origin` serves `"imagenet"`)."""
    model = Functional(inputs, outputs, name=name)
    return load_application_weights(model, weights, file_name=file_name, origin=origin,
                                    file_hash=file_hash)


def finish_files(inputs, outputs, *, name, weights, include_top, files):
    """`finish` with `files = (top, notop)`, each `(file_name, origin, file_hash)`."""
    file_name, origin, file_hash = files[0] if include_top else files[1]
    return finish(inputs, outputs, name, weights, file_name=file_name, origin=origin,
                  file_hash=file_hash)


def tf_files(folder: str, stem: str, hashes: tuple[str, str]):
    """`(top, notop)` files named `<stem>.h5` / `<stem>_notop.h5` under Keras' `folder`."""
    return tuple((f"{stem}{suffix}.h5", f"{KERAS_APPS}{folder}/{stem}{suffix}.h5", digest)
                 for suffix, digest in zip(("", "_notop"), hashes))
