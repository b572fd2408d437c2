"""Normalization layers."""
from kestrel.layers.normalization.batch_normalization import BatchNormalization
from kestrel.layers.normalization.group_normalization import GroupNormalization
from kestrel.layers.normalization.layer_normalization import LayerNormalization
from kestrel.layers.normalization.unit_normalization import UnitNormalization
