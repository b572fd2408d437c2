"""Encodings, cross-entropies, CTC and PSNR of `kestrel.ops.nn`.

The cross-entropies keep every sample's value (no reduction) and reuse the math of
`kestrel.losses.functions`; probabilities are clipped to `[epsilon, 1 - epsilon]`.

>>> one_hot([0, 2], 3)
tensor([[1., 0., 0.],
        [0., 0., 1.]])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel.backend.dtypes import result_type
from kestrel.losses import functions as losses
from kestrel.ops import ctc_beam
from kestrel.ops.convert import dtype_of, float_result, promote, to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all


def _no_sparse(sparse, op):
    if sparse:
        raise ValueError(f"ops.{op}: Kestrel has no sparse tensors. Received: sparse=True")


@keras_op
def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """One-hot encoding of integer `x` along a new `axis`; negative or out-of-range values
    give all-zero vectors. `dtype` defaults to floatx."""
    _no_sparse(sparse, "one_hot")
    (x,) = to_tensors(x)
    x = x.long()
    valid = (x >= 0) & (x < num_classes)
    out = F.one_hot(torch.where(valid, x, 0), num_classes) * valid.unsqueeze(-1)
    return out.to(torch_dtype(dtype)).movedim(-1, axis)


@keras_op
def multi_hot(inputs, num_classes=None, axis=-1, dtype=None, sparse=False, **kwargs):
    """Multi-hot encoding: 1 at every class present in each row of integer `inputs`
    (a rank-1 input is one row). `num_tokens` is accepted for `num_classes`."""
    if num_classes is None:
        num_classes = kwargs.pop("num_tokens", None)
    if num_classes is None:
        raise ValueError("ops.multi_hot: argument `num_classes` must be specified.")
    if kwargs:
        raise TypeError(f"ops.multi_hot: unexpected arguments {sorted(kwargs)}")
    encoded = one_hot.raw(inputs, num_classes, axis=axis, dtype=dtype, sparse=sparse)
    return torch.amax(encoded, dim=1 if encoded.ndim > 2 else 0)


def _float_pair(target, output):
    """Both as one float dtype: float64 when either is (torch's promotion, as Keras' torch
    backend), else Keras' result type moved to floatx."""
    wide = "float64" in (dtype_of(target), dtype_of(output))
    return promote(target, output, dtype="float64" if wide else float_result(target, output))


def _same_shape(target, output, op):
    if target.shape != output.shape:
        raise ValueError("Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={tuple(target.shape)}, "
                         f"output.shape={tuple(output.shape)} (in ops.{op})")


@keras_op
def binary_crossentropy(target, output, from_logits=False):
    """Element-wise binary cross-entropy between `target` and probabilities (or logits)."""
    target, output = _float_pair(target, output)
    _same_shape(target, output, "binary_crossentropy")
    if from_logits:
        return F.binary_cross_entropy_with_logits(output, target, reduction="none")
    return losses._binary_crossentropy(target, output)


@keras_op
def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Cross-entropy of one-hot (or soft) `target` and `output` over the class `axis`."""
    target, output = _float_pair(target, output)
    _same_shape(target, output, "categorical_crossentropy")
    if output.ndim < 1:
        raise ValueError("ops.categorical_crossentropy: arguments must be at least rank 1.")
    return losses.categorical_crossentropy(target, output, from_logits, axis=axis)


@keras_op
def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Cross-entropy of integer `target` (without the class axis, or with it of size 1)."""
    target, output = to_tensors(target, output)
    if not output.is_floating_point():
        output = output.to(torch_dtype(float_result(output)))
    return losses.sparse_categorical_crossentropy(target, output, from_logits, axis=axis)


@keras_op
def ctc_loss(target, output, target_length, output_length, mask_index=0):
    """Per-sample CTC loss of padded labels `target` `(batch, max_label)` under logits
    `output` `(batch, time, classes)`; `mask_index` is the blank class."""
    target, output, target_length, output_length = to_tensors(
        target, output, target_length, output_length)
    output = output.to(torch_dtype(result_type(dtype_of(output), "float32")))
    log_probs = torch.log_softmax(output.transpose(0, 1), dim=-1)
    return F.ctc_loss(log_probs, target.long(), output_length.long(), target_length.long(),
                      blank=mask_index, reduction="none")


@keras_op
def ctc_decode(inputs, sequence_lengths, strategy="greedy", beam_width=100, top_paths=1,
               merge_repeated=True, mask_index=0):
    """CTC decoding of `inputs` `(batch, time, classes)`; `mask_index` is the blank (None: the
    last class).

    `"greedy"`: the best class per step, repeats merged when `merge_repeated`; returns
    `(paths (1, batch, time), scores (batch, 1))`, the score being minus the sum of the best
    values per step. `"beam_search"`: a prefix beam search of `beam_width` beams on the
    log-softmax of `inputs` (repeats always merged, as in Keras); returns the `top_paths` best
    `(paths (top_paths, batch, time), log probabilities (batch, top_paths))`. Paths are int32,
    padded with -1.
    """
    if strategy not in ("greedy", "beam_search"):
        raise ValueError(f"ops.ctc_decode: invalid strategy {strategy!r}. Supported values "
                         "are 'greedy' and 'beam_search'.")
    inputs, lengths = to_tensors(inputs, sequence_lengths)
    inputs = inputs.to(torch_dtype(result_type(dtype_of(inputs), "float32")))
    if inputs.ndim != 3:
        raise ValueError("ops.ctc_decode: inputs must be (batch, time, classes). "
                         f"Received: inputs.shape={tuple(inputs.shape)}")
    batch, steps, classes = inputs.shape
    blank = classes - 1 if mask_index is None else int(mask_index)
    if not 0 <= blank < classes:
        raise ValueError(f"ops.ctc_decode: mask_index must be a class index below {classes}. "
                         f"Received: mask_index={mask_index}")
    if strategy == "beam_search":
        for name, value in (("beam_width", beam_width), ("top_paths", top_paths)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ops.ctc_decode: {name} must be a positive int. "
                                 f"Received: {name}={value!r}")
        return ctc_beam.beam_search(torch.log_softmax(inputs, dim=-1), lengths.reshape(-1),
                                    beam_width, top_paths, blank)
    scores, indices = inputs.max(dim=-1)
    past_end = torch.arange(steps, device=inputs.device) >= lengths.reshape(-1, 1)
    indices = torch.where(past_end, blank, indices.int())
    scores = torch.where(past_end, 0.0, scores)
    if merge_repeated:
        repeat = F.pad(indices[:, 1:] == indices[:, :-1], (1, 0))
        indices = torch.where(repeat, blank, indices)
    dropped = indices == blank
    order = torch.argsort(dropped.int(), dim=-1, stable=True)  # kept labels first, in order
    paths = torch.where(dropped, -1, indices).gather(1, order)
    return paths.unsqueeze(0), -scores.sum(dim=1, keepdim=True)


@keras_op
def psnr(x1, x2, max_val):
    """Peak signal-to-noise ratio `20 log10(max_val) - 10 log10(mse)` over all elements."""
    x1, x2 = to_tensors(x1, x2)
    if x1.shape != x2.shape:
        raise ValueError(f"ops.psnr: x1 and x2 must have the same shape. Received: "
                         f"x1.shape={tuple(x1.shape)}, x2.shape={tuple(x2.shape)}")
    max_val = torch.as_tensor(max_val, dtype=x1.dtype, device=x1.device)
    mse = torch.mean((x1 - x2) ** 2)
    return 20 * torch.log10(max_val) - 10 * torch.log10(mse)


__all__ = module_all()
