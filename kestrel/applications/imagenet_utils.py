"""ImageNet helpers shared by the applications: preprocessing, decoding, input checks.

`preprocess_input` works on NumPy arrays (in place where the dtype allows, as Keras does),
torch tensors and symbolic tensors; `decode_predictions` fetches Keras' class index file once
into `~/.keras/models` (or `$KERAS_HOME/models`).
"""
from __future__ import annotations

import json
import warnings

import numpy as np

from kestrel import config, ops
from kestrel.layers.core.input_layer import Input
from kestrel.layers.node import KerasTensor
from kestrel.utils.file_utils import get_file
from kestrel.utils.graph_utils import get_source_inputs

CLASS_INDEX = None
CLASS_INDEX_PATH = ("https://storage.googleapis.com/download.tensorflow.org/"
                    "data/imagenet_class_index.json")
CLASS_INDEX_HASH = "c2c37ea517e94d9795004a39431a14cb"

# mode -> (flip RGB to BGR, scale applied first, per-channel mean, per-channel std)
_MODES = {
    "caffe": (True, 1.0, (103.939, 116.779, 123.68), None),
    "torch": (False, 1 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def preprocess_input(x, data_format=None, mode="caffe"):
    """Scale a batch (or one image) of RGB pixels in [0, 255] the way a model was trained.

    Args:
        x: NumPy array, torch tensor or symbolic tensor, 3D or 4D, 3 color channels.
        data_format: `"channels_last"` or `"channels_first"`; None uses the global setting.
        mode: `"caffe"` (RGB->BGR, minus the ImageNet mean), `"tf"` (to [-1, 1]) or
            `"torch"` (to [0, 1], then ImageNet mean/std per channel).

    Example:
        >>> preprocess_input(np.full((1, 2, 2, 3), 255.0), mode="tf")[0, 0, 0]
        array([1., 1., 1.])
    """
    if mode not in {"caffe", "tf", "torch"}:
        raise ValueError("Expected mode to be one of `caffe`, `tf` or `torch`. "
                         f"Received: mode={mode}")
    if data_format is None:
        data_format = config.image_data_format()
    elif data_format not in {"channels_first", "channels_last"}:
        raise ValueError("Expected data_format to be one of `channels_first` or "
                         f"`channels_last`. Received: data_format={data_format}")
    if isinstance(x, np.ndarray):
        return _preprocess_numpy(x, data_format, mode)
    return _preprocess_tensor(x, data_format, mode)


def _channel_axis(ndim: int, data_format: str) -> int:
    return -1 if data_format == "channels_last" else ndim - 3


def _preprocess_numpy(x: np.ndarray, data_format: str, mode: str) -> np.ndarray:
    if not issubclass(x.dtype.type, np.floating):
        x = x.astype(config.floatx(), copy=False)
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    flip, scale, mean, std = _MODES[mode]
    axis = _channel_axis(x.ndim, data_format)
    if scale != 1.0:
        x /= 1 / scale
    if flip:
        x = np.flip(x, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = 3
    x -= np.asarray(mean, x.dtype).reshape(shape)
    if std is not None:
        x /= np.asarray(std, x.dtype).reshape(shape)
    return x


def _preprocess_tensor(x, data_format: str, mode: str):
    """Out of place on torch and symbolic tensors, with Keras' ops (so a graph has its nodes)."""
    x = ops.convert_to_tensor(x) if not isinstance(x, KerasTensor) else x
    if "float" not in str(x.dtype):
        x = ops.cast(x, config.floatx())
    if mode == "tf":
        return ops.subtract(ops.true_divide(x, 127.5), 1.0)
    flip, scale, mean, std = _MODES[mode]
    ndim = len(x.shape)
    axis = _channel_axis(ndim, data_format) % ndim
    if scale != 1.0:
        x = ops.true_divide(x, 1 / scale)
    if flip:  # RGB -> BGR as a stack of the channel slices
        x = ops.stack([x[(slice(None),) * axis + (i,)] for i in (2, 1, 0)], axis=axis)
    shape = [1] * ndim
    shape[axis] = 3
    x = ops.add(x, ops.convert_to_tensor(-np.asarray(mean).reshape(shape), dtype=x.dtype))
    if std is not None:
        x = ops.true_divide(x, ops.convert_to_tensor(np.asarray(std).reshape(shape), dtype=x.dtype))
    return x


def decode_predictions(preds, top=5):
    """Top-`top` `(class_name, description, score)` tuples for each row of ImageNet scores.

    Args:
        preds: array of shape `(samples, 1000)`.
        top: how many guesses per sample.
    """
    global CLASS_INDEX
    if len(preds.shape) != 2 or preds.shape[1] != 1000:
        raise ValueError("`decode_predictions` expects a batch of predictions (i.e. a 2D array "
                         f"of shape (samples, 1000)). Received array with shape: {preds.shape}")
    if CLASS_INDEX is None:
        path = get_file("imagenet_class_index.json", CLASS_INDEX_PATH, cache_subdir="models",
                        file_hash=CLASS_INDEX_HASH)
        with open(path) as f:
            CLASS_INDEX = json.load(f)
    preds = ops.convert_to_numpy(preds)
    results = []
    for pred in preds:
        best = pred.argsort()[-top:][::-1]
        row = [tuple(CLASS_INDEX[str(i)]) + (pred[i],) for i in best]
        row.sort(key=lambda item: item[2], reverse=True)
        results.append(row)
    return results


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten,
                       weights=None):
    """Check a user's `input_shape` (or pick the default) for a model, with Keras' messages.

    Args:
        input_shape: None or a 3-tuple (None entries allowed without a flat top).
        default_size: the model's native image size.
        min_size: the smallest height/width the model accepts.
        data_format: `"channels_last"` or `"channels_first"`.
        require_flatten: whether the classifier top needs a static shape.
        weights: None, `"imagenet"` or a path.
    """
    last = data_format != "channels_first"
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        channels = input_shape[-1] if last else input_shape[0]
        if channels not in {1, 3}:
            warnings.warn("This model usually expects 1 or 3 input channels. However, it was "
                          f"passed an input_shape with {channels} input channels.",
                          stacklevel=3)
        default_shape = ((default_size, default_size, channels) if last
                         else (channels, default_size, default_size))
    else:
        default_shape = (default_size, default_size, 3) if last else (3, default_size,
                                                                      default_size)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and tuple(input_shape) != default_shape:
            raise ValueError("When setting `include_top=True` and loading `imagenet` weights, "
                             f"`input_shape` should be {default_shape}.  "
                             f"Received: input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        channels, spatial = ((input_shape[-1], input_shape[:2]) if last
                             else (input_shape[0], input_shape[1:]))
        if channels != 3 and weights == "imagenet":
            raise ValueError("The input must have 3 channels; Received "
                             f"`input_shape={input_shape}`")
        if any(d is not None and d < min_size for d in spatial):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: "
                             f"input_shape={input_shape}")
    elif require_flatten:
        input_shape = default_shape
    else:
        input_shape = (None, None, 3) if last else (3, None, None)
    if require_flatten and None in input_shape:
        raise ValueError("If `include_top` is True, you should specify a static `input_shape`. "
                         f"Received: input_shape={input_shape}")
    return tuple(input_shape)


def correct_pad(inputs, kernel_size):
    """The `((top, bottom), (left, right))` zero padding before a strided 'valid' conv."""
    first = 2 if config.image_data_format() == "channels_first" else 1
    size = inputs.shape[first:first + 2]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if size[0] is None else (1 - size[0] % 2, 1 - size[1] % 2)
    half = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((half[0] - adjust[0], half[0]), (half[1] - adjust[1], half[1]))


def validate_activation(classifier_activation, weights) -> None:
    """Pretrained tops allow only `None` or `"softmax"` as `classifier_activation`."""
    if weights is None:
        return
    from kestrel import activations

    allowed = (activations.get("softmax"), activations.get(None))
    if activations.get(classifier_activation) not in allowed:
        raise ValueError("Only `None` and `softmax` activations are allowed for the "
                         "`classifier_activation` argument when using pretrained weights, with "
                         "`include_top=True`; Received: "
                         f"classifier_activation={classifier_activation}")


def image_input(input_tensor, input_shape):
    """(tensor to build on, model inputs): a fresh `Input`, or `input_tensor` and its sources."""
    if input_tensor is None:
        tensor = Input(shape=input_shape)
        return tensor, tensor
    if not isinstance(input_tensor, KerasTensor):  # a value: the input reads it unless fed
        tensor = Input(tensor=input_tensor)
        return tensor, tensor
    return input_tensor, source_inputs(input_tensor)


def source_inputs(tensor: KerasTensor):
    """The `Input` tensors a symbolic tensor was computed from (itself if it is one)."""
    found = get_source_inputs(tensor)
    return found[0] if len(found) == 1 else found


def preprocessor(mode: str | None):
    """A model module's `preprocess_input(x, data_format=None)`: Keras' `mode` ("caffe", "tf",
    "torch"), or the identity (None) for models that normalize their input themselves."""
    def module_preprocess_input(x, data_format=None):
        return x if mode is None else preprocess_input(x, data_format=data_format, mode=mode)

    module_preprocess_input.__name__ = "preprocess_input"
    return module_preprocess_input
