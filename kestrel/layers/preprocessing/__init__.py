"""Stateful preprocessing layers: statistics, bins and vocabularies learned by `adapt()`."""
from kestrel.layers.preprocessing.category_encoding import CategoryEncoding
from kestrel.layers.preprocessing.discretization import Discretization
from kestrel.layers.preprocessing.hashed_crossing import HashedCrossing
from kestrel.layers.preprocessing.hashing import Hashing
from kestrel.layers.preprocessing.lookup import IntegerLookup, StringLookup
from kestrel.layers.preprocessing.normalization import Normalization
from kestrel.layers.preprocessing.spectrogram import STFTSpectrogram
from kestrel.layers.preprocessing.spectrogram_mel import MelSpectrogram
from kestrel.layers.preprocessing.text_vectorization import TextVectorization
from kestrel.layers.preprocessing.feature_space import FeatureSpace  # keras.utils, not layers

__all__ = ["CategoryEncoding", "Discretization", "HashedCrossing", "Hashing", "IntegerLookup",
           "MelSpectrogram", "Normalization", "STFTSpectrogram", "StringLookup",
           "TextVectorization"]
