"""Keras 2's `K` functions for custom layers: convolution, pooling, padding, normalization,
CTC, control flow and a few array helpers, on `kestrel.ops`.

Keras 2 conventions kept here: `data_format=None` reads `K.image_data_format()`, CTC's blank
is the last class and it takes probabilities (not logits), `arange` is int32, and the
`training=None` of `in_train_phase` reads `K.learning_phase()`.
"""
from __future__ import annotations

import numpy as np
import torch

from kestrel import config
from kestrel import ops
from kestrel import random as krandom
from kestrel.ops.dispatch import keras_op

def registrars(names: list):
    """`(node, plain)` decorators for Keras 2 backend functions, each adding the function's
    name to `names`: `node` records one graph node per call on symbolic tensors; `plain` none
    (functions that take Python callables, create variables or only inspect)."""
    def node(fn):
        names.append(fn.__name__)
        return keras_op(fn, prefix="backend.")

    def plain(fn):
        names.append(fn.__name__)
        return fn
    return node, plain


__all__ = []
_k, _plain = registrars(__all__)


def _format(data_format):
    data_format = data_format or config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError("data_format must be 'channels_last' or 'channels_first'. "
                         f"Received: data_format={data_format!r}")
    return data_format


# ------------------------------------------------------------------ arrays
@_k
def arange(start, stop=None, step=1, dtype="int32"):
    """As Keras 2: a negative `start` alone gives an empty range, float bounds a float32
    range unless another `dtype` than the default "int32" is asked for."""
    if stop is None and start < 0:
        start = 0
    bounds = [v for v in (start, stop, step) if v is not None]
    floats = any(isinstance(v, (float, np.floating)) for v in bounds)
    return ops.arange(start, stop, step,
                      dtype="float32" if floats and dtype == "int32" else dtype)


@_k
def reverse(x, axes):
    return ops.flip(x, axis=tuple(axes) if isinstance(axes, (list, tuple)) else axes)


@_k
def logsumexp(x, axis=None, keepdims=False):
    return ops.logsumexp(x, axis=axis, keepdims=keepdims)


@_k
def identity(x, name=None):
    return ops.copy(x)


@_k
def slice(x, start, size):  # noqa: A001 - Keras 2's name
    return ops.slice(x, tuple(start), tuple(size))


@_k
def in_top_k(predictions, targets, k):
    return ops.in_top_k(targets, predictions, k)


@_plain
def cast_to_floatx(x):
    return np.asarray(x, dtype=config.floatx())


@_plain
def print_tensor(x, message="", summarize=3):
    """Print `message` and `x` (at most `summarize` items at each end of every axis)."""
    with np.printoptions(edgeitems=summarize, threshold=2 * summarize):
        print(message, ops.convert_to_numpy(x))
    return x


@_plain
def is_sparse(tensor):
    return isinstance(tensor, torch.Tensor) and tensor.is_sparse


@_plain
def to_dense(tensor):
    return tensor.to_dense() if is_sparse(tensor) else tensor


@_plain
def is_placeholder(x):
    """Whether `x` is a symbolic input (an `Input` / `K.placeholder`)."""
    from kestrel.layers.node import KerasTensor

    return isinstance(x, KerasTensor) and x._keras_history is not None and x.node.is_input


@_plain
def manual_variable_initialization(value):
    """Nothing to do: Kestrel initializes variables when they are created."""


@_plain
def random_uniform_variable(shape, low, high, dtype=None, name=None, seed=None):
    from kestrel.backend.keras2 import variable

    return variable(krandom.uniform(shape, minval=low, maxval=high, dtype=dtype, seed=seed),
                    dtype=dtype, name=name)


@_plain
def random_normal_variable(shape, mean, scale, dtype=None, name=None, seed=None):
    from kestrel.backend.keras2 import variable

    return variable(krandom.normal(shape, mean=mean, stddev=scale, dtype=dtype, seed=seed),
                    dtype=dtype, name=name)


@_plain
def moving_average_update(x, value, momentum):
    return x.assign(x * momentum + ops.convert_to_tensor(value) * (1.0 - momentum))


# ------------------------------------------------------------------ convolution and pooling
@_k
def bias_add(x, bias, data_format=None):
    if _format(data_format) == "channels_last" or ops.ndim(x) < 3 or ops.ndim(bias) > 1:
        return ops.add(x, bias)
    return ops.add(x, ops.reshape(bias, (1, -1) + (1,) * (ops.ndim(x) - 2)))


def _causal(x, kernel, padding, dilation_rate):
    """Keras 2's `padding="causal"` (1-D): pad the start of the time axis, then "valid"."""
    if padding != "causal":
        return x, padding
    rate = dilation_rate[0] if isinstance(dilation_rate, (list, tuple)) else dilation_rate
    left = rate * (kernel.shape[0] - 1)
    return ops.pad(x, ((0, 0), (left, 0), (0, 0))), "valid"


@_k
def conv1d(x, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    x, padding = _causal(x, kernel, padding, dilation_rate)
    return ops.conv(x, kernel, strides, padding, _format(data_format), dilation_rate)


@_k
def conv2d(x, kernel, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1)):
    return ops.conv(x, kernel, strides, padding, _format(data_format), dilation_rate)


@_k
def conv3d(x, kernel, strides=(1, 1, 1), padding="valid", data_format=None,
           dilation_rate=(1, 1, 1)):
    return ops.conv(x, kernel, strides, padding, _format(data_format), dilation_rate)


@_k
def conv2d_transpose(x, kernel, output_shape, strides=(1, 1), padding="valid",
                     data_format=None, dilation_rate=(1, 1)):
    """Transposed convolution to `output_shape` (batch included); kernel `(h, w, out, in)`."""
    data_format = _format(data_format)
    out = ops.conv_transpose(x, kernel, strides, padding, None, data_format, dilation_rate)
    first = 1 if data_format == "channels_last" else 2
    got, wanted = tuple(out.shape[first:first + 2]), tuple(output_shape)[first:first + 2]
    if got == wanted:
        return out
    extra = [w - g for g, w in zip(got, wanted)]
    return ops.conv_transpose(x, kernel, strides, padding, extra, data_format, dilation_rate)


@_k
def separable_conv2d(x, depthwise_kernel, pointwise_kernel, strides=(1, 1), padding="valid",
                     data_format=None, dilation_rate=(1, 1)):
    return ops.separable_conv(x, depthwise_kernel, pointwise_kernel, strides, padding,
                              _format(data_format), dilation_rate)


@_k
def depthwise_conv2d(x, depthwise_kernel, strides=(1, 1), padding="valid", data_format=None,
                     dilation_rate=(1, 1)):
    return ops.depthwise_conv(x, depthwise_kernel, strides, padding, _format(data_format),
                              dilation_rate)


def _pool(x, pool_size, strides, padding, data_format, pool_mode):
    if pool_mode not in ("max", "avg"):
        raise ValueError(f"pool_mode must be 'max' or 'avg'. Received: pool_mode={pool_mode!r}")
    pool = ops.max_pool if pool_mode == "max" else ops.average_pool
    return pool(x, pool_size, strides, padding, _format(data_format))


@_k
def pool2d(x, pool_size, strides=(1, 1), padding="valid", data_format=None, pool_mode="max"):
    return _pool(x, pool_size, strides, padding, data_format, pool_mode)


@_k
def pool3d(x, pool_size, strides=(1, 1, 1), padding="valid", data_format=None,
           pool_mode="max"):
    return _pool(x, pool_size, strides, padding, data_format, pool_mode)


def _local_conv(x, kernel, kernel_size, strides, data_format):
    """Unshared-weight convolution: patch `p` of `x` times `kernel[p]` `(patch size, out)`.

    A patch is flattened as Keras 2 does: `(k..., channels)` for channels_last,
    `(channels, k...)` for channels_first.
    """
    x, kernel = ops.convert_to_tensor(x), ops.convert_to_tensor(kernel)
    channels_last = _format(data_format) == "channels_last"
    if not channels_last:
        x = torch.movedim(x, 1, -1)
    spatial = len(kernel_size)
    for axis, (size, stride) in enumerate(zip(kernel_size, strides), start=1):
        x = x.unfold(axis, size, stride)  # (batch, out..., channels, k...)
    out_sizes = tuple(x.shape[1:1 + spatial])
    if channels_last:
        x = torch.movedim(x, 1 + spatial, -1)
    patches = x.reshape(x.shape[0], -1, kernel.shape[1])
    if patches.shape[1] != kernel.shape[0]:
        raise ValueError(f"local_conv: the kernel has {kernel.shape[0]} positions but the "
                         f"inputs give {patches.shape[1]} {out_sizes}. Received: "
                         f"kernel.shape={tuple(kernel.shape)}")
    out = torch.einsum("bpi,pio->bpo", patches, kernel).reshape(x.shape[0], *out_sizes, -1)
    return out if channels_last else torch.movedim(out, -1, 1)


@_k
def local_conv1d(inputs, kernel, kernel_size, strides, data_format=None):
    """Locally-connected 1D convolution; kernel `(output_length, k * channels, filters)`."""
    return _local_conv(inputs, kernel, tuple(kernel_size), tuple(strides), data_format)


@_k
def local_conv2d(inputs, kernel, kernel_size, strides, output_shape, data_format=None):
    """Locally-connected 2D convolution; kernel `(rows * cols, kh * kw * channels, filters)`
    with `(rows, cols) = output_shape`."""
    return _local_conv(inputs, kernel, tuple(kernel_size), tuple(strides), data_format)


# ------------------------------------------------------------------ padding and resizing
def _spatial_pad(x, padding, data_format):
    pairs = [tuple(p) for p in padding]
    if _format(data_format) == "channels_last":
        return ops.pad(x, [(0, 0), *pairs, (0, 0)])
    return ops.pad(x, [(0, 0), (0, 0), *pairs])


@_k
def temporal_padding(x, padding=(1, 1)):
    return ops.pad(x, [(0, 0), tuple(padding), (0, 0)])


@_k
def spatial_2d_padding(x, padding=((1, 1), (1, 1)), data_format=None):
    return _spatial_pad(x, padding, data_format)


@_k
def spatial_3d_padding(x, padding=((1, 1), (1, 1), (1, 1)), data_format=None):
    return _spatial_pad(x, padding, data_format)


@_k
def resize_images(x, height_factor, width_factor, data_format, interpolation="nearest"):
    """Upsample the rows and columns of `x` by integer factors."""
    first = 1 if _format(data_format) == "channels_last" else 2
    if interpolation == "nearest":
        return ops.repeat(ops.repeat(x, height_factor, axis=first), width_factor, axis=first + 1)
    size = (x.shape[first] * height_factor, x.shape[first + 1] * width_factor)
    return ops.image.resize(x, size, interpolation=interpolation, data_format=data_format)


@_k
def resize_volumes(x, depth_factor, height_factor, width_factor, data_format):
    first = 1 if _format(data_format) == "channels_last" else 2
    for axis, factor in enumerate((depth_factor, height_factor, width_factor), first):
        x = ops.repeat(x, factor, axis=axis)
    return x


# ------------------------------------------------------------------ normalization
@_k
def batch_normalization(x, mean, var, beta, gamma, axis=-1, epsilon=1e-3):
    out = ops.divide(ops.subtract(x, mean), ops.sqrt(ops.add(var, epsilon)))
    out = out if gamma is None else ops.multiply(out, gamma)
    return out if beta is None else ops.add(out, beta)


@_plain
def normalize_batch_in_training(x, gamma, beta, reduction_axes, epsilon=1e-3):
    """`(normalized, mean, variance)` with the statistics over `reduction_axes`."""
    mean, var = ops.moments(x, axes=list(reduction_axes), keepdims=True)
    normed = batch_normalization(x, mean, var, beta, gamma, epsilon=epsilon)
    keep = [a for a in range(ops.ndim(x)) if a not in [r % ops.ndim(x) for r in reduction_axes]]
    shape = [ops.shape(x)[a] for a in keep]
    return normed, ops.reshape(mean, shape), ops.reshape(var, shape)


# ------------------------------------------------------------------ CTC (blank = last class)
def _log_probs(y_pred):
    return ops.log(ops.add(y_pred, config.epsilon()))


@_k
def ctc_batch_cost(y_true, y_pred, input_length, label_length):
    """Per-sample CTC loss `(batch, 1)` of softmax outputs `y_pred` `(batch, time, classes)`."""
    y_pred = ops.convert_to_tensor(y_pred)
    loss = ops.ctc_loss(ops.cast(y_true, "int32"), _log_probs(y_pred),
                        ops.cast(ops.reshape(label_length, (-1,)), "int32"),
                        ops.cast(ops.reshape(input_length, (-1,)), "int32"),
                        mask_index=y_pred.shape[-1] - 1)
    return ops.expand_dims(loss, 1)


@_plain
def ctc_decode(y_pred, input_length, greedy=True, beam_width=100, top_paths=1):
    """`([paths (batch, time) padded with -1] * top_paths, log_prob (batch, top_paths))`."""
    y_pred = ops.convert_to_tensor(y_pred)
    paths, scores = ops.ctc_decode(
        _log_probs(y_pred), ops.cast(ops.reshape(input_length, (-1,)), "int32"),
        strategy="greedy" if greedy else "beam_search", beam_width=beam_width,
        top_paths=top_paths, mask_index=y_pred.shape[-1] - 1)
    return [ops.cast(p, "int64") for p in paths], scores


@_plain
def ctc_label_dense_to_sparse(labels, label_lengths):
    """The first `label_lengths[i]` labels of each row of `labels`, as a sparse COO tensor."""
    labels = ops.convert_to_tensor(labels)
    lengths = ops.reshape(ops.convert_to_tensor(label_lengths), (-1, 1))
    keep = torch.arange(labels.shape[1], device=labels.device)[None, :] < lengths
    return torch.sparse_coo_tensor(keep.nonzero().T, labels[keep], tuple(labels.shape),
                                   check_invariants=True)


# ------------------------------------------------------------------ control flow
@_plain
def in_train_phase(x, alt, training=None):
    """`x` in training (`training`, or `K.learning_phase()` when None), `alt` otherwise."""
    from kestrel.backend.keras2 import learning_phase

    training = learning_phase() if training is None else training
    if isinstance(training, torch.Tensor) and training.ndim == 0:
        training = bool(training)
    if isinstance(training, (bool, int)):
        chosen = x if training else alt
        return chosen() if callable(chosen) else chosen
    x, alt = (v() if callable(v) else v for v in (x, alt))
    return ops.where(training, x, alt)


@_plain
def in_test_phase(x, alt, training=None):
    return in_train_phase(alt, x, training=training)


@_plain
def map_fn(fn, elems, name=None, dtype=None):
    return ops.stack([fn(e) for e in ops.convert_to_tensor(elems)])


@_plain
def foldl(fn, elems, initializer=None, name=None):
    elems = ops.convert_to_tensor(elems)
    acc, rest = ((elems[0], elems[1:]) if initializer is None
                 else (ops.convert_to_tensor(initializer), elems))
    for e in rest:
        acc = fn(acc, e)
    return acc


@_plain
def foldr(fn, elems, initializer=None, name=None):
    return foldl(fn, ops.flip(ops.convert_to_tensor(elems), axis=0), initializer)


@_plain
def rnn(step_function, inputs, initial_states, go_backwards=False, mask=None, constants=None,
        unroll=False, input_length=None, time_major=False, zero_output_for_mask=False,
        return_all_outputs=True):
    """Iterate `step_function(input_t, states [+ constants])` over the time axis.

    Returns `(last_output, outputs, new_states)`, `outputs` stacked in the order the steps
    ran: `(batch, time, ...)`, or `(time, batch, ...)` with `time_major` (which also applies
    to `inputs` and `mask`); with `return_all_outputs=False` only the last step's, time 1.
    Where `mask` is False a step keeps the previous output and states, as Keras 2; with
    `zero_output_for_mask` the outputs reported there are zeros.
    """
    inputs = ops.convert_to_tensor(inputs)
    if not time_major:
        inputs = torch.movedim(inputs, 1, 0)
    if mask is not None:
        mask = ops.cast(ops.convert_to_tensor(mask), "bool")
        mask = mask.reshape(mask.shape[:2])
        mask = mask if time_major else mask.T
    steps = range(inputs.shape[0] - 1, -1, -1) if go_backwards else range(inputs.shape[0])
    states = [ops.convert_to_tensor(s) for s in initial_states]
    outputs, last = [], None
    for t in steps:
        output, new_states = step_function(inputs[t], states + list(constants or []))
        new_states = list(new_states)
        if mask is not None:
            keep = _along_batch(mask[t], output)
            previous = torch.zeros_like(output) if last is None else last
            last = ops.where(keep, output, previous)
            new_states = [ops.where(_along_batch(mask[t], s), s, old)
                          for s, old in zip(new_states, states)]
            output = ops.where(keep, last, torch.zeros_like(last)) if zero_output_for_mask \
                else last
        else:
            last = output
        outputs.append(output)
        states = new_states
    outputs = ops.stack(outputs if return_all_outputs else outputs[-1:], axis=0)
    return outputs[-1], outputs if time_major else torch.movedim(outputs, 0, 1), states


def _along_batch(mask_t, x):
    """A `(batch,)` mask reshaped to broadcast over `x` `(batch, ...)`."""
    return ops.reshape(mask_t, (-1, *([1] * (ops.ndim(x) - 1))))
