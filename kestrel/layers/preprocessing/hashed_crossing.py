"""HashedCrossing: hash the cross of categorical features into `num_bins` bins, as Keras
(TensorFlow's `sparse.cross_hashed`) does."""
from __future__ import annotations

import numpy as np
import torch

from kestrel.layers import shape_inference
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import KerasTensor, shape_of
from kestrel.layers.preprocessing.string_hash import fingerprint64
from kestrel.utils.numerical_utils import encode_categorical

_M = (1 << 64) - 1
_CROSS_KEY = 0xDECAFCAFFE  # TensorFlow's default key for hashed crosses
_CAT_MUL = 0xC6A4A7935BD1E995


def _shift_mix(v: int) -> int:
    return v ^ (v >> 47)


def fingerprint_cat64(fp1: int, fp2: int) -> int:
    """Combine two 64-bit fingerprints (order matters), as TensorFlow's FingerprintCat64."""
    result = fp1 ^ _CAT_MUL
    result ^= (_shift_mix((fp2 * _CAT_MUL) & _M) * _CAT_MUL) & _M
    result = (result * _CAT_MUL) & _M
    result = (_shift_mix(result) * _CAT_MUL) & _M
    return _shift_mix(result)


def _feature_hash(value) -> int:
    """Strings hash by Fingerprint64; integers enter the cross as their own 64-bit value."""
    if isinstance(value, (str, bytes)):
        return fingerprint64(value.encode("utf-8") if isinstance(value, str) else value)
    return int(value) & _M


def cross_hash(columns: list[np.ndarray], num_bins: int) -> np.ndarray:
    """int64 bins of the row-wise cross of equally shaped 1D `columns` (str or int)."""
    out = np.empty(len(columns[0]), dtype=np.int64)
    for row, values in enumerate(zip(*columns)):
        hashed = _CROSS_KEY
        for value in values:
            hashed = fingerprint_cat64(hashed, _feature_hash(value))
        out[row] = hashed % num_bins if num_bins > 0 else hashed % ((1 << 63) - 1)
    return out


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(str) if x.dtype.kind in "OSU" else x


@register_layer()
class HashedCrossing(Layer):
    """Cross two or more categorical features and hash each combination into a bin.

    Args:
        num_bins: number of hash bins.
        output_mode: `"int"` (bin indices) or `"one_hot"`.
        sparse: must stay False (outputs are dense torch tensors).

    Input: a tuple/list of equally shaped integer or string features, each `()`, `(batch,)`
    or `(batch, 1)`. Output: bins of the same shape (`"int"`), or one-hot rows.

    Example:
        >>> HashedCrossing(num_bins=5)((np.array(["A", "B"]), np.array([101, 102])))
        tensor([1, 1])
    """

    accepts_strings = True

    def __init__(self, num_bins, output_mode="int", sparse=False, name=None, dtype=None,
                 **kwargs):
        if output_mode == "int" and dtype is None:
            dtype = "int64"
        super().__init__(name=name, dtype=dtype, **kwargs)
        if sparse:
            raise ValueError("HashedCrossing: `sparse=True` is not supported by Kestrel (dense "
                             f"torch outputs). Received: sparse={sparse}")
        if output_mode not in ("int", "one_hot"):
            raise ValueError("HashedCrossing: invalid value for argument `output_mode`. "
                             "Expected one of ('int', 'one_hot'). Received: "
                             f"output_mode={output_mode}")
        self.num_bins = num_bins
        self.output_mode = output_mode
        self.sparse = sparse

    def __call__(self, inputs, **kwargs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError("HashedCrossing: should be called on a list or tuple of inputs. "
                             f"Received: inputs of type {type(inputs).__name__}")
        if len(inputs) < 2:
            raise ValueError("HashedCrossing: should be called on at least two inputs. "
                             f"Received: {len(inputs)} input(s)")
        if any(isinstance(x, KerasTensor) for x in inputs):
            return super().__call__(list(inputs), **kwargs)
        if not self.built:  # strings cannot become torch tensors: call directly
            self._build_from_shape([tuple(np.shape(x)) for x in inputs])
        return self.call(list(inputs))

    def call(self, inputs):
        device = next((x.device for x in inputs if isinstance(x, torch.Tensor)), None)
        arrays = [_to_numpy(x) for x in inputs]
        shape = arrays[0].shape
        if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
            raise ValueError("HashedCrossing: all inputs should have shape `()`, "
                             f"`(batch_size)` or `(batch_size, 1)`. Received: shape={shape}")
        if any(a.shape != shape for a in arrays[1:]):
            raise ValueError("HashedCrossing: all inputs should have equal shape. Received: "
                             f"shapes={[a.shape for a in arrays]}")
        if not all(a.dtype.kind in "iuU" for a in arrays):
            raise ValueError("HashedCrossing: all inputs should have an integer or string "
                             f"dtype. Received: dtypes={[str(a.dtype) for a in arrays]}")
        bins = cross_hash([a.reshape(-1) for a in arrays], self.num_bins).reshape(shape)
        bins = torch.from_numpy(bins).to(device or "cpu")
        if self.output_mode == "int":
            return bins.to(self._variable_dtype)
        if bins.ndim and bins.shape[-1] == 1:
            bins = bins.squeeze(-1)
        return encode_categorical(bins, "one_hot", self.num_bins, self._variable_dtype)

    def compute_output_shape(self, input_shape):
        """Keras' rule: equal feature shapes (Keras takes two, Kestrel two or more); one-hot
        replaces a last axis of 1 by `num_bins` and appends `num_bins` otherwise."""
        if len(input_shape) < 2 or not all(isinstance(s, (tuple, list)) for s in input_shape):
            raise ValueError("HashedCrossing: expected as input a list/tuple of 2 tensors. "
                             f"Received input_shape={input_shape}")
        first = tuple(input_shape[0])
        if any(tuple(s)[-1:] != first[-1:] for s in input_shape[1:]):
            raise ValueError("HashedCrossing: expected the input tensors to have identical "
                             f"shapes. Received input_shape={input_shape}")
        if self.output_mode == "int":
            return first
        if first[-1:] == (1,):
            return first[:-1] + (self.num_bins,)
        return first + (self.num_bins,)

    def compute_output_spec(self, *args, **kwargs):
        shape = self.compute_output_shape([shape_of(x) for x in args[0]])
        return shape_inference.shapes_to_keras_tensors(shape, self.dtype)

    def get_config(self):
        return {"num_bins": self.num_bins, "output_mode": self.output_mode,
                "sparse": self.sparse, "name": self.name, "dtype": self.dtype}
