"""IndexLookup: the vocabulary table behind StringLookup, IntegerLookup and TextVectorization.

Tokens map to `[mask] + [OOV] * num_oov_indices + vocabulary` indices in Python dicts (torch
has no string tensors); adapt counts tokens and keeps the most frequent, ties broken by the
larger token first, as Keras does.
"""
from __future__ import annotations

import collections
import os

import numpy as np
import torch

from kestrel.backend.scopes import in_symbolic_scope
from kestrel.layers import shape_inference
from kestrel.layers.layer import Layer
from kestrel.layers.node import shape_of
from kestrel.layers.preprocessing.adapt_data import (AcceptsStrings, is_whole, iter_batches,
                                                     rectangular)
from kestrel.layers.preprocessing.category_encoding import encoded_shape
from kestrel.layers.preprocessing.hashing import hash_to_bins
from kestrel.utils.numerical_utils import encode_categorical

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


class IndexLookup(AcceptsStrings, Layer):
    """Shared vocabulary logic; subclasses fix `vocabulary_dtype` ("string" or "int64")."""

    def __init__(self, max_tokens, num_oov_indices, mask_token, oov_token, vocabulary_dtype,
                 vocabulary=None, idf_weights=None, invert=False, output_mode="int",
                 sparse=False, pad_to_max_tokens=False, oov_method="floormod", name=None,
                 salt=None, vocabulary_size=None, has_input_vocabulary=None, **kwargs):
        kind = type(self).__name__
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(f"{kind}: if set, `max_tokens` must be greater than 1. Received: "
                             f"max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"{kind}: if pad_to_max_tokens is True, must set `max_tokens`. "
                             f"Received: max_tokens={max_tokens}")
        if num_oov_indices < 0:
            raise ValueError(f"{kind}: `num_oov_indices` must be greater than or equal to 0. "
                             f"Received: num_oov_indices={num_oov_indices}")
        if oov_method not in ("floormod", "farmhash"):
            raise ValueError(f"{kind}: invalid oov_method, expected 'floormod' or 'farmhash'. "
                             f"Received: oov_method={oov_method}")
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"{kind}: invalid value for argument output_mode. Expected one of "
                             f"{OUTPUT_MODES}. Received: output_mode={output_mode}")
        if invert and output_mode != "int":
            raise ValueError(f"{kind}: `output_mode` must be `'int'` when `invert` is true. "
                             f"Received: output_mode={output_mode}")
        if sparse:
            raise ValueError(f"{kind}: `sparse=True` can only be used with the TensorFlow "
                             "backend.")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError(f"{kind}: `idf_weights` should only be set if `output_mode` is "
                             f"`'tf_idf'`. Received: output_mode={output_mode}")
        if salt is not None:
            if not (isinstance(salt, int) or (isinstance(salt, (list, tuple)) and len(salt) == 2)):
                raise ValueError(f"{kind}: the `salt` argument can only be a tuple of 2 "
                                 f"integers, or a single integer. Received: salt={salt}.")
            salt = [salt, salt] if isinstance(salt, int) else list(salt)
        kwargs.pop("dtype", None)
        kwargs.pop("trainable", None)
        super().__init__(name=name, **kwargs)
        self.max_tokens, self.num_oov_indices = max_tokens, num_oov_indices
        self.mask_token, self.oov_token = mask_token, oov_token
        self.vocabulary_dtype = vocabulary_dtype
        self.invert, self.output_mode, self.sparse = invert, output_mode, sparse
        self.pad_to_max_tokens, self.oov_method, self.salt = pad_to_max_tokens, oov_method, salt
        self.input_vocabulary = None if isinstance(vocabulary, str) else vocabulary
        self.input_idf_weights = idf_weights
        self._has_input_vocabulary = vocabulary is not None if has_input_vocabulary is None \
            else has_input_vocabulary
        self._frozen_vocab_size = vocabulary_size
        self._tokens: list = []
        self._index: dict = {}
        self.idf_weights = None
        if output_mode == "tf_idf" and self._has_input_vocabulary and idf_weights is None:
            raise ValueError(f"{kind}: when specifying the `vocabulary` argument in TF-IDF "
                             "output mode, the `idf_weights` argument must also be provided.")
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)

    # ------------------------------------------------------------------ vocabulary
    def _oov_start(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start(self) -> int:
        return self._oov_start() + self.num_oov_indices

    def _cast_token(self, token):
        if self.vocabulary_dtype == "string":
            return str(token)
        try:
            return int(token)
        except (TypeError, ValueError):
            raise ValueError(f"{type(self).__name__}: expected integer values (vocabulary "
                             f"dtype {self.vocabulary_dtype}). Received: {token!r}") from None

    def vocabulary_size(self) -> int:
        """Size of the vocabulary, mask and OOV indices included."""
        return self._token_start() + len(self._tokens)

    def get_vocabulary(self, include_special_tokens=True) -> list:
        """The vocabulary in index order (with the mask and OOV tokens unless told not to);
        the table's tokens are NumPy scalars (`np.str_`, `np.int64`), as Keras returns them."""
        scalar = np.str_ if self.vocabulary_dtype == "string" else np.int64
        vocab = [self.mask_token] * self._oov_start() + \
            [self.oov_token] * self.num_oov_indices + [scalar(t) for t in self._tokens]
        return vocab if include_special_tokens else vocab[self._token_start():]

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Set the vocabulary (a list, array, tensor or a text file path, one token a line)."""
        kind = type(self).__name__
        if self.output_mode == "tf_idf" and idf_weights is None:
            raise ValueError(f"{kind}: `idf_weights` must be set if output_mode is 'tf_idf'.")
        if self.output_mode != "tf_idf" and idf_weights is not None:
            raise ValueError(f"{kind}: `idf_weights` should only be set if output_mode is "
                             f"`'tf_idf'`. Received: output_mode={self.output_mode}")
        if isinstance(vocabulary, (str, os.PathLike)):
            if not os.path.exists(vocabulary):
                raise ValueError(f"{kind}: vocabulary file {vocabulary} does not exist.")
            if self.output_mode == "tf_idf":
                raise ValueError(f"{kind}: output_mode `'tf_idf'` does not support loading a "
                                 "vocabulary from file.")
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = f.read().splitlines()
        if isinstance(vocabulary, torch.Tensor):
            vocabulary = vocabulary.tolist()
        vocabulary = [self._cast_token(v.decode("utf-8") if isinstance(v, bytes) else v)
                      for v in np.asarray(vocabulary, dtype=object).reshape(-1)]
        if not vocabulary:
            raise ValueError(f"{kind}: cannot set an empty vocabulary.")
        start = self._token_start()
        special = [self.mask_token] * self._oov_start() + [self.oov_token] * self.num_oov_indices
        found_special = vocabulary[:start] == special
        tokens = vocabulary[start:] if found_special else vocabulary
        repeated = [t for t, c in collections.Counter(tokens).items() if c > 1]
        if repeated:
            raise ValueError(f"{kind}: the passed vocabulary has at least one repeated term. "
                             f"Please uniquify your dataset. The repeated terms are: "
                             f"{repeated[:10]}")
        if self.mask_token is not None and self.mask_token in tokens:
            raise ValueError(f"{kind}: found reserved mask token at unexpected location in "
                             f"`vocabulary`. Either remove all mask and OOV tokens, or include "
                             f"them only at the start in precisely this order: {special}.")
        if self.invert and self.oov_token is not None and self.oov_token in tokens:
            raise ValueError(f"{kind}: found reserved OOV token at unexpected location in "
                             f"`vocabulary`; special tokens go first, in this order: {special}.")
        if self.max_tokens is not None and start + len(tokens) > self.max_tokens:
            raise ValueError(f"{kind}: attempted to set a vocabulary larger than the maximum "
                             f"vocab size. Received vocabulary size is {start + len(tokens)}; "
                             f"`max_tokens` is {self.max_tokens}.")
        self._set_tokens(tokens)
        if self.output_mode == "tf_idf" and idf_weights is not False:  # False: kept as is
            weights = np.asarray(idf_weights, dtype=np.float64).reshape(-1)
            if len(weights) != len(vocabulary):
                raise ValueError(f"{kind}: `idf_weights` must be the same length as "
                                 f"vocabulary. len(idf_weights) is {len(weights)}; "
                                 f"len(vocabulary) is {len(vocabulary)}")
            front = 0 if found_special else start
            self._set_idf(weights, front, np.average(weights))

    def _set_tokens(self, tokens):
        self._tokens = list(tokens)
        self._index = {t: i + self._token_start() for i, t in enumerate(self._tokens)}
        self._record_vocabulary_size()

    def _set_idf(self, weights, front: int, front_value: float):
        back = self.max_tokens - front - len(weights) \
            if self.pad_to_max_tokens and self.max_tokens is not None else 0
        padded = np.pad(weights, (front, back), "constant", constant_values=(front_value, 0))
        self.idf_weights = torch.as_tensor(padded, dtype=torch.float32)

    def _record_vocabulary_size(self):
        if self.output_mode == "int" or self.pad_to_max_tokens:
            self._frozen_vocab_size = self.vocabulary_size()
            return
        if self._frozen_vocab_size is not None and self.built and \
                self.vocabulary_size() != self._frozen_vocab_size:
            raise RuntimeError(f"When using `output_mode={self.output_mode}` and "
                               "`pad_to_max_tokens=False`, the vocabulary size cannot be "
                               f"changed after the layer is called. Old vocab size is "
                               f"{self._frozen_vocab_size}, new vocab size is "
                               f"{self.vocabulary_size()}")
        self._frozen_vocab_size = self.vocabulary_size()

    # ------------------------------------------------------------------ adapt
    def adapt(self, data, batch_size=None, steps=None):
        """Learn the vocabulary (and document frequencies for tf_idf) from `data`."""
        if self._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static "
                             "vocabulary via `vocabulary` argument or `set_vocabulary()` method.")
        whole = is_whole(data) or isinstance(data, (list, tuple)) and batch_size is None
        batches = [data] if whole else iter_batches(data, type(self).__name__,
                                                    batch_size=batch_size, steps=steps)
        self._learn(doc for batch in batches for doc in self._documents(batch, whole))

    def _learn(self, documents):
        """Count tokens over `documents` (lists of tokens) and keep the most frequent."""
        counts, doc_counts, num_docs = collections.Counter(), collections.Counter(), 0
        for doc in documents:
            counts.update(doc)
            if self.output_mode == "tf_idf":
                doc_counts.update(set(doc))
                num_docs += 1
        for special in (self.mask_token, self.oov_token):
            if special is not None:
                counts.pop(self._cast_token(special), None)
        if not counts:
            return
        tokens = np.array(list(counts.keys()), dtype=object if self.vocabulary_dtype ==
                          "string" else np.int64)
        order = np.lexsort((tokens, np.array(list(counts.values()))))[::-1]
        if self.max_tokens:
            order = order[:self.max_tokens - self._token_start()]
        learned = [self._cast_token(t) for t in tokens[order]]
        self._set_tokens(learned)
        if self.output_mode == "tf_idf":
            idf = np.log(1 + num_docs / (1 + np.array([doc_counts[t] for t in learned],
                                                      dtype=np.float64))).astype(np.float32)
            self._set_idf(idf, self._token_start(), float(np.mean(idf)))

    def _documents(self, batch, whole: bool) -> list[list]:
        """Rows of tokens: a whole rank-1 input is one token per row, a rank-1 batch one row."""
        values = self._to_numpy(batch)
        if values.ndim == 0:
            values = values.reshape(1, 1)
        elif values.ndim == 1:
            values = values.reshape(-1, 1) if whole else values.reshape(1, -1)
        return [[self._cast_token(v) for v in row.reshape(-1)] for row in values]

    def _to_numpy(self, values) -> np.ndarray:
        if isinstance(values, torch.Tensor):
            return values.detach().cpu().numpy()
        if isinstance(values, np.ndarray) and values.dtype.kind == "U":
            return values
        values = rectangular(values, type(self).__name__,
                             dtype=object if self.vocabulary_dtype == "string" else None)
        if values.dtype == object:
            flat = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values.reshape(-1)]
            values = np.array(flat, dtype=object).reshape(values.shape)
        return values

    # ------------------------------------------------------------------ call
    def call(self, inputs):
        if not self.invert and self.output_mode != "int" and not self.pad_to_max_tokens \
                and self._frozen_vocab_size is None:
            raise RuntimeError(f"When using `output_mode={self.output_mode}` and "
                               "`pad_to_max_tokens=False`, you must set the layer's vocabulary "
                               "before calling it. Either pass a `vocabulary` argument to the "
                               "layer, or call `adapt` with some sample data.")
        device = inputs.device if isinstance(inputs, torch.Tensor) else torch.device("cpu")
        values = self._to_numpy(inputs)
        if self.invert:
            return self._invert(values, device)
        indices = self._lookup(values)
        if self.output_mode == "int":
            return torch.from_numpy(indices).to(device)
        depth = self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size
        indices = np.where(indices < 0, depth, indices)  # masked: no column
        encoded = encode_categorical(torch.from_numpy(indices), "count" if self.output_mode ==
                                     "tf_idf" else self.output_mode, depth + 1, torch.int64)
        encoded = encoded[..., :depth]
        if self.output_mode == "tf_idf":
            encoded = encoded.to(torch.float32) * self.idf_weights
        return encoded.to(device)

    def _lookup(self, values: np.ndarray) -> np.ndarray:
        flat = values.reshape(-1)
        keys = [self._cast_token(v) for v in flat]
        found = np.array([self._index.get(k, -1) for k in keys], dtype=np.int64)
        missing = found == -1
        if missing.any() and in_symbolic_scope():  # placeholder strings: only shapes matter
            found[missing] = 0
        elif missing.any():
            if self.num_oov_indices == 0:
                oov = [k for k, m in zip(keys, missing) if m][:5]
                raise ValueError(f"When `num_oov_indices=0` all inputs should be in vocabulary, "
                                 f"found OOV values {oov}, consider setting "
                                 "`num_oov_indices=1`.")
            found[missing] = self._oov_indices([k for k, m in zip(keys, missing) if m])
        if self.mask_token is not None:
            masked = np.array([k == self.mask_token for k in keys], dtype=bool)
            found[masked] = 0 if self.output_mode == "int" else -1
        return found.reshape(values.shape)

    def _oov_indices(self, keys: list) -> np.ndarray:
        start, n = self._oov_start(), self.num_oov_indices
        if n == 1:
            return np.full(len(keys), start, dtype=np.int64)
        if self.vocabulary_dtype != "string" and self.oov_method != "farmhash":
            return np.mod(np.array(keys, dtype=np.int64), n) + start
        return hash_to_bins(np.array(keys, dtype=object), n, self.salt) + start

    def _invert(self, values: np.ndarray, device):
        table = self.get_vocabulary()
        lo = self._token_start()
        out = [table[int(i)] if lo <= int(i) < len(table) else
               (self.mask_token if self.mask_token is not None and int(i) == 0 else
                self.oov_token) for i in values.reshape(-1)]
        if self.vocabulary_dtype == "string":
            return np.array(out, dtype=object).reshape(values.shape).astype(str)
        return torch.tensor(out, dtype=torch.int64).reshape(values.shape).to(device)

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        depth = self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size
        mode = "one_hot" if self.output_mode == "one_hot" else "multi_hot"
        return encoded_shape(input_shape, mode, depth)

    def compute_output_spec(self, *args, **kwargs):
        shape = self.compute_output_shape(shape_of(args[0]))
        if self.output_mode == "int":
            return shape_inference.shapes_to_keras_tensors(
                shape, "int64" if not self.invert else self.vocabulary_dtype)
        return shape_inference.shapes_to_keras_tensors(
            shape, "float32" if self.output_mode == "tf_idf" else "int64")

    # ------------------------------------------------------------------ saving
    def get_config(self):
        """Keras' keys; only a vocabulary given to the constructor is written (a learned one
        is saved as an asset, its idf weights as variables)."""
        vocabulary, idf = self.input_vocabulary, self.input_idf_weights
        listify = (lambda v: v.tolist() if hasattr(v, "tolist") else
                   None if v is None else list(v))
        return {**super().get_config(), "invert": self.invert, "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices, "oov_token": self.oov_token,
                "mask_token": self.mask_token, "output_mode": self.output_mode,
                "sparse": self.sparse, "pad_to_max_tokens": self.pad_to_max_tokens,
                "vocabulary_dtype": self.vocabulary_dtype, "idf_weights": listify(idf),
                "vocabulary": listify(vocabulary), "vocabulary_size": self._frozen_vocab_size,
                "oov_method": self.oov_method, "salt": self.salt}

    def save_own_variables(self, store):
        """tf_idf mode: the idf weights, under Keras' key `idf_weights`."""
        if self.output_mode == "tf_idf":
            store["idf_weights"] = self.idf_weights.numpy()

    def load_own_variables(self, store):
        if self.output_mode == "tf_idf":
            self.idf_weights = torch.as_tensor(np.asarray(store["idf_weights"]),
                                               dtype=torch.float32)

    def save_assets(self, dir_path):
        """Write `vocabulary.txt` into `dir_path`, as Keras' `.keras` assets hold it."""
        if self.input_vocabulary is not None:
            return
        with open(os.path.join(dir_path, "vocabulary.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(str(w) for w in self.get_vocabulary()))

    def load_assets(self, dir_path):
        """Read the `vocabulary.txt` that Keras (or `save_assets`) wrote into `dir_path`."""
        if self.input_vocabulary is not None:
            return
        with open(os.path.join(dir_path, "vocabulary.txt"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        # tf_idf: the idf weights came with the variables, loaded before the assets
        self.set_vocabulary(lines, idf_weights=False if self.output_mode == "tf_idf" else None)
