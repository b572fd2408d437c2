"""Reshaping layers: zero-padding, cropping and upsampling of spatial dimensions."""
from kestrel.layers.reshaping.cropping import Cropping1D, Cropping2D, Cropping3D
from kestrel.layers.reshaping.up_sampling import UpSampling1D, UpSampling2D, UpSampling3D
from kestrel.layers.reshaping.zero_padding import ZeroPadding1D, ZeroPadding2D, ZeroPadding3D

__all__ = [
    "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
]
