"""Hashing: map strings or integers to `num_bins` bins with FarmHash (or salted SipHash)."""
from __future__ import annotations

import numpy as np
import torch

from kestrel.layers import shape_inference
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import shape_of
from kestrel.layers.preprocessing.adapt_data import AcceptsStrings
from kestrel.layers.preprocessing.category_encoding import encoded_shape
from kestrel.layers.preprocessing.string_hash import fingerprint64, siphash24
from kestrel.utils.numerical_utils import encode_categorical

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count")


def hash_to_bins(values, num_bins: int, salt=None) -> np.ndarray:
    """int64 bins of `values` (a NumPy array of str, or of ints: hashed as their decimal text),
    as TensorFlow's `to_hash_bucket_fast` (no salt) or `to_hash_bucket_strong` (salt) give."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        values = values.astype(np.int64)
    unique, inverse = np.unique(values.reshape(-1), return_inverse=True)
    if salt is None:
        hashed = [fingerprint64(str(v).encode("utf-8")) % num_bins for v in unique]
    else:
        key = (int(salt[0]), int(salt[1]))
        hashed = [siphash24(key, str(v).encode("utf-8")) % num_bins for v in unique]
    return np.asarray(hashed, dtype=np.int64)[inverse].reshape(values.shape)


@register_layer()
class Hashing(AcceptsStrings, Layer):
    """Hash each string or integer value into one of `num_bins` bins.

    Args:
        num_bins: number of bins (including the mask bin 0 when `mask_value` is set).
        mask_value: a value that maps to bin 0 (other values hash into `1..num_bins-1`).
        salt: an int or a pair of ints; when set, a keyed SipHash is used.
        output_mode: `"int"`, `"one_hot"`, `"multi_hot"` or `"count"`.
        sparse: must stay False (outputs are dense torch tensors).

    Strings arrive as NumPy arrays or lists of `str`; integers may be torch tensors. Integers
    hash as their decimal text, as in Keras (floats are truncated to ints first).

    Example:
        >>> Hashing(num_bins=3)([["A"], ["B"], ["C"]])
        tensor([[1],
                [0],
                [1]])
    """

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False,
                 **kwargs):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "int64" if output_mode == "int" else None
        super().__init__(**kwargs)
        if num_bins is None or num_bins <= 0:
            raise ValueError("Hashing: the `num_bins` for `Hashing` cannot be `None` or "
                             f"non-positive values. Received: num_bins={num_bins}.")
        if output_mode == "int" and self.dtype not in ("int32", "int64"):
            raise ValueError('Hashing: when `output_mode="int"`, `dtype` should be an integer '
                             f"type, 'int32' or 'int64'. Received: dtype={self._dtype_policy.name}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError("Hashing: invalid value for argument `output_mode`. Expected one "
                             f"of {OUTPUT_MODES}. Received: output_mode={output_mode}")
        if sparse:
            raise ValueError(f"Hashing: `sparse=True` is not supported by Kestrel (dense torch "
                             f"outputs). Received: sparse={sparse}")
        if salt is not None and not (isinstance(salt, int) or (
                isinstance(salt, (tuple, list)) and len(salt) == 2)):
            raise ValueError("Hashing: the `salt` argument can only be a tuple of size 2 "
                             f"integers, or a single integer. Received: salt={salt}.")
        self.num_bins = num_bins
        self.mask_value = mask_value
        self.salt = None if salt is None else [salt, salt] if isinstance(salt, int) \
            else list(salt)
        self.output_mode = output_mode
        self.sparse = sparse

    def call(self, inputs):
        device = inputs.device if isinstance(inputs, torch.Tensor) else None
        values = inputs.detach().cpu().numpy() if device is not None else np.asarray(inputs)
        if self.output_mode == "one_hot" and values.ndim and values.shape[-1] == 1:
            values = values.squeeze(-1)
        bins = self.num_bins
        mask = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            mask = values == self.mask_value
        indices = hash_to_bins(values, bins, self.salt)
        if mask is not None:
            indices = np.where(mask, 0, indices + 1)
        indices = torch.from_numpy(indices).to(device or "cpu")
        return encode_categorical(indices, self.output_mode, self.num_bins, self._variable_dtype)

    def compute_output_shape(self, input_shape):
        """As Keras: every encoding mode replaces the last axis by a `num_bins` axis."""
        shape = tuple(input_shape)
        return shape if self.output_mode == "int" else \
            encoded_shape(shape, "multi_hot", self.num_bins)

    def compute_output_spec(self, *args, **kwargs):
        shape = self.compute_output_shape(shape_of(args[0]))
        return shape_inference.shapes_to_keras_tensors(shape, self.dtype)

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins, "salt": self.salt,
                "mask_value": self.mask_value, "output_mode": self.output_mode,
                "sparse": self.sparse}
