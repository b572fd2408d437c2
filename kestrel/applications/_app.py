"""The steps every application builder shares: argument checks, the input, the top, weights."""
from __future__ import annotations

from kestrel import config, layers
from kestrel.applications import imagenet_utils

KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"


def image_input(*, weights, include_top, classes, input_tensor, input_shape, default_size,
                min_size):
    """Check the common arguments and return `(x, model_inputs, input_shape)`.

    Args:
        weights, include_top, classes, input_tensor, input_shape: as in every application.
        default_size: the model's native image size; min_size: the smallest it accepts.
    """
    from kestrel.applications.weights import validate_weights_args

    validate_weights_args(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=min_size,
        data_format=config.image_data_format(), require_flatten=include_top, weights=weights)
    x, inputs = imagenet_utils.image_input(input_tensor, input_shape)
    return x, inputs, input_shape


def top(x, *, include_top, pooling, classes, classifier_activation, weights,
        gap_name="avg_pool", pool_names=(None, None), dropout=0.0, **dense_kwargs):
    """The classifier (global average pool, optional dropout, `predictions` Dense) or, without
    it, the optional `pooling` ("avg" or "max", layers named by `pool_names`)."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name=gap_name)(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        return layers.Dense(classes, activation=classifier_activation, name="predictions",
                            **dense_kwargs)(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=pool_names[0])(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=pool_names[1])(x)
    return x


def finish(inputs, outputs, *, name, weights, include_top, files):
    """The functional model, with `weights` loaded.

    Args:
        files: `(top, notop)`, each `(file_name, origin, file_hash)` of the published file.
    """
    from kestrel.applications.weights import load_application_weights
    from kestrel.models.functional import Functional

    model = Functional(inputs, outputs, name=name)
    file_name, origin, file_hash = files[0] if include_top else files[1]
    load_application_weights(model, weights, file_name=file_name, origin=origin,
                             file_hash=file_hash)
    return model


def tf_files(folder: str, stem: str, hashes: tuple[str, str]):
    """`(top, notop)` files named `<stem>.h5` / `<stem>_notop.h5` under Keras' `folder`."""
    return tuple((f"{stem}{suffix}.h5", f"{KERAS_APPS}{folder}/{stem}{suffix}.h5", digest)
                 for suffix, digest in zip(("", "_notop"), hashes))
