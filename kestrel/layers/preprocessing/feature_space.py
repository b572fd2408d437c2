"""FeatureSpace (`keras.utils.FeatureSpace`): one object that preprocesses, crosses and encodes
a dict of tabular features.

Built on Kestrel's preprocessing layers (Normalization, Discretization, Rescaling,
StringLookup/IntegerLookup, Hashing, HashedCrossing, CategoryEncoding). Feature values are
NumPy arrays or torch tensors (strings as NumPy `str` arrays), so a FeatureSpace runs eagerly
on data, in a `DataLoader`'s `collate_fn` or a dataset transform, ahead of a model whose
inputs are `get_encoded_features()`; the same layers applied to `get_inputs()` make the graph
of a model that takes the raw features (strings included).
"""
from __future__ import annotations

import numpy as np
import torch

from kestrel.layers import naming
from kestrel.layers.core.input_layer import Input
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.preprocessing.category_encoding import CategoryEncoding
from kestrel.layers.preprocessing.discretization import Discretization
from kestrel.layers.preprocessing.hashed_crossing import HashedCrossing
from kestrel.layers.preprocessing.hashing import Hashing
from kestrel.layers.preprocessing.lookup import IntegerLookup, StringLookup
from kestrel.layers.preprocessing.normalization import Normalization
from kestrel.layers.preprocessing.text_vectorization import TextVectorization
from kestrel.ops.convert import from_numpy

_MODULE = "keras.src.layers.preprocessing.feature_space"


@register_layer("TFDIdentity")
class FloatIdentity(Layer):
    """The `"float"` feature's preprocessor: values as float32, unchanged."""

    keras_identity = (_MODULE, "TFDIdentity")  # the module and name Keras serializes it under

    def get_config(self):
        """Keras' keys (name, trainable, dtype), not every base constructor default."""
        return super().get_config()

    def call(self, inputs):
        return torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor)
                               else inputs).to(torch.float32)


@register_layer("TFDConcat")
class Concat(Layer):
    """The `"concat"` merge: encoded features as one float32 tensor, joined on `axis`."""

    keras_identity = (_MODULE, "TFDConcat")

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs):
        return torch.cat([x.float() for x in inputs], dim=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _serialize(kind: str, config: dict) -> dict:
    return {"module": _MODULE, "class_name": kind, "config": config, "registered_name": kind}


class Cross:
    """A crossing of features hashed into `crossing_dim` bins (`output_mode` int/one_hot)."""

    def __init__(self, feature_names, crossing_dim, output_mode="one_hot"):
        if output_mode not in ("int", "one_hot"):
            raise ValueError("FeatureSpace.cross: invalid value for argument `output_mode`. "
                             "Expected one of {'int', 'one_hot'}. Received: "
                             f"output_mode={output_mode}")
        self.feature_names = tuple(feature_names)
        self.crossing_dim = crossing_dim
        self.output_mode = output_mode

    @property
    def name(self) -> str:
        return "_X_".join(self.feature_names)

    def get_config(self) -> dict:
        return {"feature_names": list(self.feature_names), "crossing_dim": self.crossing_dim,
                "output_mode": self.output_mode}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Feature:
    """A raw feature's `dtype`, its `preprocessor` layer and its `output_mode`
    (`"int"`, `"one_hot"` or `"float"`)."""

    def __init__(self, dtype, preprocessor, output_mode):
        from kestrel.layers.serialization import deserialize

        if output_mode not in ("int", "one_hot", "float"):
            raise ValueError("FeatureSpace.feature: invalid value for argument `output_mode`. "
                             "Expected one of {'int', 'one_hot', 'float'}. Received: "
                             f"output_mode={output_mode}")
        self.dtype = dtype
        self.preprocessor = deserialize(preprocessor) if isinstance(preprocessor, dict) \
            else preprocessor
        self.output_mode = output_mode

    def get_config(self) -> dict:
        from kestrel.layers.serialization import serialize

        return {"dtype": self.dtype, "preprocessor": serialize(self.preprocessor),
                "output_mode": self.output_mode}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _from_dict(entry: dict, kinds: tuple):
    classes = {"Feature": Feature, "Cross": Cross}
    if entry.get("class_name") not in kinds:
        raise ValueError(f"FeatureSpace: expected a serialized {' or '.join(kinds)}. Received: "
                         f"class_name={entry.get('class_name')!r}")
    return classes[entry["class_name"]].from_config(entry["config"])


class _Constructors:
    """The `FeatureSpace.float(...)`, `.string_categorical(...)`, ... feature factories."""

    @classmethod
    def cross(cls, feature_names, crossing_dim, output_mode="one_hot"):
        return Cross(feature_names, crossing_dim, output_mode=output_mode)

    @classmethod
    def feature(cls, dtype, preprocessor, output_mode):
        return Feature(dtype, preprocessor, output_mode)

    @classmethod
    def float(cls, name=None):
        return Feature("float32", FloatIdentity(name=_pre(name, "float")), "float")

    @classmethod
    def float_rescaled(cls, scale=1.0, offset=0.0, name=None):
        from kestrel.layers.image_preprocessing.rescaling import Rescaling

        return Feature("float32", Rescaling(scale=scale, offset=offset,
                                            name=_pre(name, "float_rescaled")), "float")

    @classmethod
    def float_normalized(cls, name=None):
        return Feature("float32", Normalization(axis=-1, name=_pre(name, "float_normalized")),
                       "float")

    @classmethod
    def float_discretized(cls, num_bins, bin_boundaries=None, output_mode="one_hot",
                          name=None):
        layer = Discretization(num_bins=None if bin_boundaries else num_bins,
                               bin_boundaries=bin_boundaries,
                               name=_pre(name, "float_discretized"))
        return Feature("float32", layer, output_mode)

    @classmethod
    def integer_categorical(cls, max_tokens=None, num_oov_indices=1, output_mode="one_hot",
                            name=None):
        return Feature("int32", IntegerLookup(max_tokens=max_tokens,
                                              num_oov_indices=num_oov_indices,
                                              name=_pre(name, "integer_categorical")),
                       output_mode)

    @classmethod
    def string_categorical(cls, max_tokens=None, num_oov_indices=1, output_mode="one_hot",
                           name=None):
        return Feature("string", StringLookup(max_tokens=max_tokens,
                                              num_oov_indices=num_oov_indices,
                                              name=_pre(name, "string_categorical")),
                       output_mode)

    @classmethod
    def string_hashed(cls, num_bins, output_mode="one_hot", name=None):
        return Feature("string", Hashing(num_bins=num_bins, name=_pre(name, "string_hashed")),
                       output_mode)

    @classmethod
    def integer_hashed(cls, num_bins, output_mode="one_hot", name=None):
        return Feature("int32", Hashing(num_bins=num_bins, name=_pre(name, "integer_hashed")),
                       output_mode)


def _pre(name, kind: str) -> str:
    """Keras' preprocessor name: `<feature name>_preprocessor` (an automatic name if none)."""
    return f"{name or naming.unique_name(kind)}_preprocessor"


def _cardinality(layer) -> int | None:
    if isinstance(layer, (IntegerLookup, StringLookup)):
        return layer.vocabulary_size()
    if isinstance(layer, CategoryEncoding):
        return layer.num_tokens
    if isinstance(layer, Discretization):
        return layer.num_bins or len(layer.bin_boundaries) + 1
    if isinstance(layer, (Hashing, HashedCrossing)):
        return layer.num_bins
    return None


def _is_adaptable(layer) -> bool:
    if isinstance(layer, Normalization):
        return layer.input_mean is None
    if isinstance(layer, (IntegerLookup, StringLookup, TextVectorization)):
        return not layer._has_input_vocabulary
    if isinstance(layer, Discretization):
        return not layer.bin_boundaries
    return hasattr(layer, "adapt")


def _column(x, dtype: str):
    """A feature batch as `(batch, 1)`-or-wider: NumPy `str` for strings, else a tensor."""
    if isinstance(x, torch.Tensor):
        values = x
    else:
        values = np.asarray(x)
        if dtype == "string" or values.dtype.kind in "OSU":
            values = values.astype(str)
        else:
            values = from_numpy(values)
    return values.reshape(-1, 1) if values.ndim == 1 else values


@register_layer()
class FeatureSpace(_Constructors, Layer):
    """Preprocess, cross and encode a dict of features into one float tensor or a dict.

    Args:
        features: `{name: feature}`; a feature is a string (`"float"`, `"float_normalized"`,
            `"float_rescaled"`, `"float_discretized"`, `"integer_categorical"`,
            `"string_categorical"`, `"integer_hashed"`, `"string_hashed"`) or a `Feature`
            from `FeatureSpace.float_normalized()`, `.string_categorical(max_tokens=...)`, ...
        output_mode: `"concat"` (one float32 `(batch, dim)` tensor, features in sorted name
            order, then crosses) or `"dict"`.
        crosses: feature-name tuples to cross, or `FeatureSpace.cross(...)` objects.
        crossing_dim: bins of crosses given as tuples.
        hashing_dim: bins of features given as `"*_hashed"` strings.
        num_discretization_bins: bins of `"float_discretized"` features.

    Call `adapt(data)` (a dict of arrays, or an iterable of such dicts) before use; then
    `fs(dict_of_arrays)` encodes. `get_inputs()` gives one `Input` per raw feature and
    `get_encoded_features()` the encoding computed from them, as in Keras: a model from the
    encodings trains on `fs(data)`; one from `get_inputs()` to the same outputs takes raw data.

    Example:
        >>> fs = FeatureSpace({"age": "float_normalized", "color": "string_categorical"})
        >>> fs.adapt({"age": np.array([20.0, 40.0]), "color": np.array(["red", "blue"])})
        >>> fs({"age": np.array([30.0]), "color": np.array(["red"])}).shape
        torch.Size([1, 4])
    """

    accepts_strings = True

    def __init__(self, features, output_mode="concat", crosses=None, crossing_dim=32,
                 hashing_dim=32, num_discretization_bins=32, name=None):
        super().__init__(name=name)
        if not features:
            raise ValueError("FeatureSpace: the `features` argument cannot be None or empty.")
        if output_mode not in ("dict", "concat"):
            raise ValueError("FeatureSpace: invalid value for argument `output_mode`. Expected "
                             f"one of {{'dict', 'concat'}}. Received: output_mode={output_mode}")
        self.output_mode = output_mode
        self.crossing_dim = crossing_dim
        self.hashing_dim = hashing_dim
        self.num_discretization_bins = num_discretization_bins
        self.features = {name: self._standardize(name, f) for name, f in features.items()}
        self.crosses = [self._standardize_cross(c, set(self.features)) for c in crosses or []]
        self.preprocessors = {name: f.preprocessor for name, f in self.features.items()}
        self.crossers = {c.name: HashedCrossing(c.crossing_dim, name=c.name)
                         for c in self.crosses}
        for layer in [*self.preprocessors.values(), *self.crossers.values()]:
            self.add_module(layer.name.replace(".", "_"), layer)
        self._is_adapted = not any(_is_adaptable(p) for p in self.preprocessors.values())
        self._encoders = None
        self._concat = None
        self._inputs = None
        self._encoded = None

    def _standardize(self, name, feature) -> Feature:
        if isinstance(feature, Feature):
            return feature
        if isinstance(feature, dict):
            return _from_dict(feature, ("Feature",))
        makers = {"float": lambda: self.float(name=name),
                  "float_normalized": lambda: self.float_normalized(name=name),
                  "float_rescaled": lambda: self.float_rescaled(name=name),
                  "float_discretized": lambda: self.float_discretized(
                      self.num_discretization_bins, name=name),
                  "integer_categorical": lambda: self.integer_categorical(name=name),
                  "string_categorical": lambda: self.string_categorical(name=name),
                  "integer_hashed": lambda: self.integer_hashed(self.hashing_dim, name=name),
                  "string_hashed": lambda: self.string_hashed(self.hashing_dim, name=name)}
        if feature not in makers:
            raise ValueError(f"FeatureSpace: invalid feature type for feature '{name}'. "
                             f"Expected one of {sorted(makers)}. Received: {feature!r}")
        return makers[feature]()

    def _standardize_cross(self, cross, names: set) -> Cross:
        if isinstance(cross, dict):
            cross = _from_dict(cross, ("Cross",))
        if not isinstance(cross, Cross):
            if not self.crossing_dim:
                raise ValueError("FeatureSpace: when specifying `crosses`, the argument "
                                 "`crossing_dim` (dimensionality of the crossing space) should "
                                 f"be specified as well. Received: crossing_dim="
                                 f"{self.crossing_dim}")
            cross = Cross(cross, crossing_dim=self.crossing_dim)
        unknown = [n for n in cross.feature_names if n not in names]
        if unknown:
            raise ValueError("FeatureSpace: all features referenced in the `crosses` argument "
                             f"should be present in the `features` dict. Received unknown "
                             f"features: {unknown}")
        return cross

    # ------------------------------------------------------------------ adapt
    def adapt(self, dataset):
        """Learn vocabularies, statistics and bins from a dict of arrays (one entry per
        feature) or an iterable of such dicts (a list, a `BatchDataset`, a `DataLoader`)."""
        batches = [dataset] if isinstance(dataset, dict) else list(dataset)
        if not batches or not all(isinstance(b, dict) for b in batches):
            raise ValueError("FeatureSpace: `adapt()` can only be called on a dict of "
                             "arrays/lists or an iterable of such dicts. Received: "
                             f"{type(dataset).__name__}")
        for name, feature in self.features.items():
            if not _is_adaptable(feature.preprocessor):
                continue
            parts = [_column(b[name], feature.dtype) for b in batches]
            values = np.concatenate(parts) if isinstance(parts[0], np.ndarray) \
                else torch.cat(parts)
            if feature.dtype == "float32" and isinstance(values, torch.Tensor):
                values = values.float()
            feature.preprocessor.adapt(values)
        self._is_adapted = True
        self.built = True
        self._encoders = self._encoded = None

    def _check_adapted(self):
        if not self._is_adapted:
            raise ValueError("FeatureSpace: you need to call `.adapt(dataset)` on the "
                             "FeatureSpace before you can start using it.")

    # ------------------------------------------------------------------ encoding
    def _output_specs(self) -> list[tuple[str, object, Layer]]:
        """(name, Feature or Cross, layer) in output order: sorted features, sorted crosses."""
        specs = [(n, self.features[n], self.preprocessors[n]) for n in sorted(self.features)]
        crosses = {c.name: c for c in self.crosses}
        return specs + [(n, crosses[n], self.crossers[n]) for n in sorted(crosses)]

    def _one_hot_encoders(self) -> dict:
        if self._encoders is None:
            self._encoders = {}
            for name, spec, layer in self._output_specs():
                if spec.output_mode != "one_hot":
                    continue
                size = _cardinality(layer)
                if size is None:
                    raise ValueError(f"FeatureSpace: feature '{name}' has "
                                     "`output_mode='one_hot'`, but the dimensionality of its "
                                     "preprocessor's output is not known. Try using "
                                     "`output_mode='int'`.")
                self._encoders[name] = CategoryEncoding(num_tokens=size,
                                                        output_mode="multi_hot")
        return self._encoders

    def __call__(self, data):
        self._check_adapted()
        if not isinstance(data, dict):
            raise ValueError("FeatureSpace: a FeatureSpace can only be called with a dict. "
                             f"Received: data of type {type(data).__name__}")
        missing = [n for n in self.features if n not in data]
        if missing:
            raise ValueError(f"FeatureSpace: missing features {missing}. Received keys: "
                             f"{sorted(data)}")
        scalar = all(np.ndim(data[n]) == 0 for n in self.features)
        columns = {n: _column(np.reshape(data[n], (1,)) if scalar else data[n], f.dtype)
                   for n, f in self.features.items()}
        out = self.call(columns)
        if scalar:
            out = out[0] if isinstance(out, torch.Tensor) else {
                k: v[0] if v.ndim == 2 and v.shape[0] == 1 else v for k, v in out.items()}
        return out

    def call(self, columns: dict):
        return self._encode(columns)

    def _encode(self, columns: dict):
        """Preprocess, cross, one-hot encode and merge `columns`: tensors and arrays, or the
        symbolic inputs (then each layer call is recorded in the graph)."""
        pre = {n: self.preprocessors[n](columns[n]) for n in self.features}
        encoded = {}
        encoders = self._one_hot_encoders()
        for name, spec, layer in self._output_specs():
            value = pre[name] if name in pre else layer(
                [pre[f] for f in spec.feature_names])
            if name in encoders:
                value = encoders[name](value)
            encoded[name] = value
        if self.output_mode == "dict":
            return encoded
        for name, value in encoded.items():
            dtype = str(value.dtype).replace("torch.", "")
            if not dtype.startswith(("float", "bfloat")):
                raise ValueError(f"FeatureSpace: cannot concatenate features because feature "
                                 f"'{name}' has not been encoded (it has dtype {dtype}). "
                                 "Consider using `output_mode='dict'`.")
        if self._concat is None:
            self._concat = Concat(axis=-1, name=naming.unique_name("tfd_concat"))
        return self._concat(list(encoded.values()))

    # ------------------------------------------------------------------ symbolic faces
    def get_inputs(self) -> dict:
        """One `Input(shape=(1,))` per raw feature, of the feature's dtype (`"string"` for
        string features): the inputs of the model that takes raw data."""
        if self._inputs is None:
            self._inputs = {name: Input(shape=(1,), dtype=f.dtype, name=name)
                            for name, f in self.features.items()}
        return self._inputs

    def get_encoded_features(self):
        """This FeatureSpace applied to `get_inputs()`: one float32 `(None, dim)` tensor for
        `"concat"`, a dict per output feature for `"dict"`.

        Example:
            >>> fs = FeatureSpace({"age": "float_normalized", "color": "string_categorical"})
            >>> fs.adapt({"age": np.array([20.0, 40.0]), "color": np.array(["red", "blue"])})
            >>> fs.get_encoded_features().shape
            (None, 4)
        """
        self._check_adapted()
        if self._encoded is None:
            self._encoded = self._encode(self.get_inputs())
        return self._encoded

    # ------------------------------------------------------------------ saving
    def get_config(self):
        return {"name": self.name, "features": {n: _serialize("Feature", f.get_config())
                                                for n, f in self.features.items()},
                "output_mode": self.output_mode,
                "crosses": [_serialize("Cross", c.get_config()) for c in self.crosses],
                "crossing_dim": self.crossing_dim, "hashing_dim": self.hashing_dim,
                "num_discretization_bins": self.num_discretization_bins}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {name: f.preprocessor.get_build_config() for name, f in self.features.items()}

    def build_from_config(self, build_config):
        for name, config in (build_config or {}).items():
            layer = self.features[name].preprocessor
            if config and not layer.built:
                layer.build_from_config(config)
        self._is_adapted = True
        self.built = True

    def save(self, filepath):
        """Save to a `.keras` file; `kestrel.saving.load_model(filepath)` reloads it adapted."""
        from kestrel.saving.keras_zip import save_model

        save_model(self, filepath)
