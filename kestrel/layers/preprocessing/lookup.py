"""StringLookup and IntegerLookup: map tokens to indices (or back) with a vocabulary."""
from __future__ import annotations

from kestrel.layers.layer import register_layer
from kestrel.layers.preprocessing.index_lookup import IndexLookup


@register_layer()
class StringLookup(IndexLookup):
    """Map strings to integer indices from a vocabulary given or learned by `adapt`.

    Args:
        max_tokens: maximum vocabulary size, mask and OOV indices included.
        num_oov_indices: indices for out-of-vocabulary tokens (hashed when more than one).
        mask_token: a token that maps to index 0 (None: no mask).
        oov_token: the token `invert=True` returns for OOV indices.
        vocabulary: a list/array of tokens or a text file path (one token a line).
        idf_weights: inverse document frequencies for `output_mode="tf_idf"`.
        invert: map indices back to strings.
        output_mode: `"int"`, `"one_hot"`, `"multi_hot"`, `"count"` or `"tf_idf"`.
        pad_to_max_tokens: encoded outputs have `max_tokens` columns.
        encoding: the text encoding of byte inputs (only UTF-8 is used).

    Inputs are NumPy string/object arrays or lists of `str`; outputs are torch tensors
    (NumPy string arrays when `invert=True`).

    Example:
        >>> StringLookup(vocabulary=["a", "b"])(["b", "z"])
        tensor([2, 0])
    """

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]",
                 vocabulary=None, idf_weights=None, invert=False, output_mode="int",
                 pad_to_max_tokens=False, sparse=False, encoding="utf-8", name=None, salt=None,
                 **kwargs):
        self.encoding = encoding
        kwargs.pop("vocabulary_dtype", None)
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=mask_token, oov_token=oov_token, vocabulary_dtype="string",
                         vocabulary=vocabulary, idf_weights=idf_weights, invert=invert,
                         output_mode=output_mode, sparse=sparse,
                         pad_to_max_tokens=pad_to_max_tokens, name=name, salt=salt, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["vocabulary_dtype"]
        return {**config, "encoding": self.encoding}


@register_layer()
class IntegerLookup(IndexLookup):
    """Map integers to contiguous indices from a vocabulary given or learned by `adapt`.

    Args as StringLookup, with `oov_token=-1`, `vocabulary_dtype="int64"` and `oov_method`
    (`"floormod"` or `"farmhash"`) choosing how several OOV indices are assigned.

    Example:
        >>> IntegerLookup(vocabulary=[12, 36])(torch.tensor([36, 7]))
        tensor([2, 0])
    """

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1,
                 vocabulary=None, vocabulary_dtype="int64", idf_weights=None, invert=False,
                 output_mode="int", sparse=False, pad_to_max_tokens=False,
                 oov_method="floormod", salt=None, name=None, **kwargs):
        if vocabulary_dtype != "int64":
            raise ValueError("IntegerLookup: only `vocabulary_dtype='int64'` is supported at "
                             f"this time. Received: vocabulary_dtype={vocabulary_dtype}")
        if salt is not None and oov_method != "farmhash":
            raise ValueError("IntegerLookup: `salt` can only be used when "
                             f"`oov_method='farmhash'`. Received: oov_method={oov_method}")
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=mask_token, oov_token=oov_token,
                         vocabulary_dtype="int64", vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         sparse=sparse, pad_to_max_tokens=pad_to_max_tokens,
                         oov_method=oov_method, name=name, salt=salt, **kwargs)

    def get_config(self):
        config = super().get_config()
        for key in ("oov_token", "mask_token"):
            if config[key] is not None:
                config[key] = int(config[key])
        if config["vocabulary"] is not None:
            config["vocabulary"] = [int(v) for v in config["vocabulary"]]
        return config
