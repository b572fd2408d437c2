"""TextVectorization: standardize, split and n-gram strings, then look the tokens up."""
from __future__ import annotations

import re

import numpy as np
import torch

from kestrel.layers import shape_inference
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import shape_of
from kestrel.layers.preprocessing.adapt_data import (AcceptsStrings, is_whole, iter_batches,
                                                     rectangular)
from kestrel.layers.preprocessing.lookup import StringLookup

_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")  # TensorFlow's `strings.split`
_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")


@register_layer()
class TextVectorization(AcceptsStrings, Layer):
    """Turn strings into token indices (or multi-hot / count / tf-idf rows).

    Args:
        max_tokens: maximum vocabulary size (mask `""` and OOV `"[UNK]"` included in int mode).
        standardize: `"lower_and_strip_punctuation"` (default), `"lower"`,
            `"strip_punctuation"`, None, or a callable on the batch as a NumPy `str` array
            (what Keras hands it off TensorFlow; one on a single string gets each string).
        split: `"whitespace"` (default), `"character"`, None, or a callable (str -> list).
        ngrams: None, an int n (all 1..n-grams) or a tuple of widths.
        output_mode: `"int"`, `"multi_hot"`, `"count"` or `"tf_idf"`.
        output_sequence_length: int mode: pad (with 0) or cut every row to this length.
        pad_to_max_tokens: encoded outputs have `max_tokens` columns.
        vocabulary / idf_weights: a fixed vocabulary (list or file) and its idf weights.

    Lowercasing is ASCII-only, as TensorFlow's `strings.lower`. Inputs are NumPy string
    arrays or lists of `str`, shape `(batch,)` or `(batch, 1)`.

    Example:
        >>> layer = TextVectorization()
        >>> layer.adapt(["the cat", "the dog"])
        >>> layer(["the bird"])
        tensor([[2, 1]])
    """

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation",
                 split="whitespace", ngrams=None, output_mode="int",
                 output_sequence_length=None, pad_to_max_tokens=False, vocabulary=None,
                 idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None,
                 vocabulary_size=None, has_input_vocabulary=None, **kwargs):
        if not (standardize is None or callable(standardize) or standardize in _STANDARDIZE):
            raise ValueError(f"TextVectorization: invalid standardize, expected one of "
                             f"{_STANDARDIZE}, None or a callable. Received: "
                             f"standardize={standardize}")
        if not (split is None or callable(split) or split in _SPLIT):
            raise ValueError(f"TextVectorization: invalid split, expected one of {_SPLIT}, "
                             f"None or a callable. Received: split={split}")
        if output_mode not in ("int", "multi_hot", "count", "tf_idf", "binary", "tf-idf"):
            raise ValueError("TextVectorization: invalid output_mode, expected one of ('int', "
                             f"'multi_hot', 'count', 'tf_idf'). Received: "
                             f"output_mode={output_mode}")
        if not (ngrams is None or isinstance(ngrams, int) or isinstance(ngrams, (tuple, list))
                and all(isinstance(n, int) for n in ngrams)):
            raise ValueError("TextVectorization: `ngrams` must be None, an integer, or a tuple "
                             f"of integers. Received: ngrams={ngrams}")
        if output_mode == "int" and not (output_sequence_length is None or
                                         isinstance(output_sequence_length, int)):
            raise ValueError("TextVectorization: `output_sequence_length` must be either None "
                             "or an integer when `output_mode` is 'int'. Received: "
                             f"output_sequence_length={output_sequence_length}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError("TextVectorization: `output_sequence_length` must not be set if "
                             f"`output_mode` is not 'int'. Received: "
                             f"output_sequence_length={output_sequence_length}.")
        if ragged:
            raise ValueError("TextVectorization: `ragged=True` is not supported (torch has no "
                             "ragged tensors). Received: ragged=True")
        kwargs.pop("dtype", None)
        super().__init__(name=name, **kwargs)
        self._standardize, self._split = standardize, split
        self._ngrams_arg = ngrams
        self._ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else \
            (tuple(ngrams) if ngrams is not None else None)
        self._ragged = ragged
        self._output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode,
                                                                            output_mode)
        self._output_sequence_length = output_sequence_length
        self._encoding = encoding
        self._lookup_layer = StringLookup(
            max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
            pad_to_max_tokens=pad_to_max_tokens, mask_token="", output_mode=self._output_mode,
            sparse=sparse, encoding=encoding, vocabulary_size=vocabulary_size,
            has_input_vocabulary=has_input_vocabulary)

    # ------------------------------------------------------------------ text processing
    def _standardize_one(self, text: str) -> str:
        if self._standardize in ("lower", "lower_and_strip_punctuation"):
            text = text.translate(_ASCII_LOWER)
        if self._standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = _PUNCTUATION.sub("", text)
        return text

    def _custom_standardized(self, values: np.ndarray) -> np.ndarray:
        """A callable `standardize` on the whole batch (a NumPy `str` array), as Keras hands
        it the batch; one written for a single Python string (`str.lower`, Kestrel's earlier
        contract) gets the strings one by one."""
        try:
            return np.asarray(self._standardize(values)).astype(str)
        except AttributeError:  # e.g. `text.lower()`: ndarray has no string methods
            return np.array([self._standardize(v) for v in values.reshape(-1)],
                            dtype=str).reshape(values.shape)

    def _tokens(self, text: str) -> list[str]:
        text = self._standardize_one(text)
        if self._split == "whitespace":
            tokens = [t for t in _ASCII_WHITESPACE.split(text) if t]
        elif self._split == "character":
            tokens = list(text)
        elif callable(self._split):
            tokens = list(self._split(text))
        else:
            tokens = [text]
        if self._ngrams is None:
            return tokens
        return [" ".join(tokens[i:i + n]) for n in self._ngrams
                for i in range(len(tokens) - n + 1)]

    def _rows(self, inputs) -> list[list[str]]:
        """Token lists, one per input string (a `(batch, 1)` input is squeezed)."""
        values = rectangular(inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor)
                             else inputs, "TextVectorization", dtype=object)
        if values.ndim == 0:
            values = values.reshape(1)
        values = np.array([v.decode(self._encoding) if isinstance(v, bytes) else str(v)
                           for v in values.reshape(-1)], dtype=str).reshape(values.shape)
        if callable(self._standardize):
            values = self._custom_standardized(values)
        if values.ndim > 1:
            if values.shape[-1] != 1:
                raise ValueError("TextVectorization: when tokenizing strings, the input rank "
                                 "must be 1 or the last shape dimension must be 1. Received: "
                                 f"inputs.shape={values.shape}")
            values = values.reshape(values.shape[:-1])
        return [self._tokens(str(v)) for v in values.reshape(-1)]

    # ------------------------------------------------------------------ vocabulary
    def adapt(self, data, batch_size=None, steps=None):
        """Learn the vocabulary from strings (an array, a list, or an iterable of batches)."""
        lookup = self._lookup_layer
        if lookup._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static "
                             "vocabulary via `vocabulary` argument or `set_vocabulary()` method.")
        whole = is_whole(data) or isinstance(data, (list, tuple)) and batch_size is None
        batches = [data] if whole else iter_batches(data, "TextVectorization",
                                                    batch_size=batch_size, steps=steps)
        lookup._learn(row for batch in batches for row in self._rows(batch))

    def get_vocabulary(self, include_special_tokens=True):
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        return self._lookup_layer.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None):
        self._lookup_layer.set_vocabulary(vocabulary, idf_weights=idf_weights)

    # ------------------------------------------------------------------ call
    def call(self, inputs):
        rows = self._rows(inputs)
        width = self._output_sequence_length if self._output_sequence_length is not None \
            else max([len(r) for r in rows] + [0])
        if self._output_mode != "int":
            width = max([len(r) for r in rows] + [1])
        padded = np.array([r[:width] + [""] * (width - len(r[:width])) for r in rows],
                          dtype=object).reshape(len(rows), width).astype(str)
        outputs = self._lookup_layer.call(padded)
        return outputs[0] if np.ndim(inputs) == 0 else outputs  # one string: one row

    def compute_output_shape(self, input_shape):
        """`(batch, output_sequence_length)` in int mode, else `(batch, depth)`: the shape
        `call` returns (Keras' formula adds an axis for a `(batch, 1)` input that its call
        squeezes away)."""
        batch = tuple(input_shape)[0] if len(input_shape) else None
        if self._output_mode == "int":
            return (batch, self._output_sequence_length)
        lookup = self._lookup_layer
        depth = lookup.max_tokens if lookup.pad_to_max_tokens else lookup._frozen_vocab_size
        return (batch, depth)

    def compute_output_spec(self, *args, **kwargs):
        shape = self.compute_output_shape(shape_of(args[0]))
        dtype = "int64" if self._output_mode != "tf_idf" else "float32"
        return shape_inference.shapes_to_keras_tensors(shape, dtype)

    def get_config(self):
        lookup = self._lookup_layer
        inner = lookup.get_config()
        return {**super().get_config(), "max_tokens": lookup.max_tokens,
                "standardize": self._standardize, "split": self._split,
                "ngrams": self._ngrams_arg, "output_mode": self._output_mode,
                "output_sequence_length": self._output_sequence_length,
                "pad_to_max_tokens": lookup.pad_to_max_tokens, "sparse": lookup.sparse,
                "ragged": self._ragged, "vocabulary": inner["vocabulary"],
                "idf_weights": inner["idf_weights"], "encoding": self._encoding,
                "vocabulary_size": self.vocabulary_size()}

    def save_own_variables(self, store):
        self._lookup_layer.save_own_variables(store)

    def load_own_variables(self, store):
        self._lookup_layer.load_own_variables(store)

    def save_assets(self, dir_path):
        self._lookup_layer.save_assets(dir_path)

    def load_assets(self, dir_path):
        self._lookup_layer.load_assets(dir_path)
