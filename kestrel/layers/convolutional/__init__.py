"""Convolution layers: regular, transposed, depthwise and separable, in 1, 2 and 3 dims."""
from kestrel.layers.convolutional.conv import Conv1D, Conv2D, Conv3D
from kestrel.layers.convolutional.conv_transpose import (
    Conv1DTranspose,
    Conv2DTranspose,
    Conv3DTranspose,
)
from kestrel.layers.convolutional.depthwise_conv import DepthwiseConv1D, DepthwiseConv2D
from kestrel.layers.convolutional.separable_conv import SeparableConv1D, SeparableConv2D

# Keras' alternative spellings.
Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
Convolution1DTranspose, Convolution2DTranspose = Conv1DTranspose, Conv2DTranspose
Convolution3DTranspose = Conv3DTranspose
SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D
Deconvolution2D = Deconv2D = Conv2DTranspose  # Keras 2
Deconvolution3D = Deconv3D = Conv3DTranspose

__all__ = [
    "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose",
    "Convolution1D", "Convolution1DTranspose", "Convolution2D", "Convolution2DTranspose",
    "Convolution3D", "Convolution3DTranspose", "Deconv2D", "Deconv3D", "Deconvolution2D",
    "Deconvolution3D", "DepthwiseConv1D", "DepthwiseConv2D",
    "SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D",
]


# Keras 2's `keras.layers.convolutional` also held the padding, cropping and upsampling layers,
# and the (non-global) pooling layers (`from keras.layers.convolutional import MaxPooling2D`).
_KERAS2_RESHAPING = {f"{kind}{rank}D" for kind in ("Cropping", "UpSampling", "ZeroPadding")
                     for rank in (1, 2, 3)}
_KERAS2_POOLING = {f"{kind}Pooling{rank}D" for kind in ("Max", "Average") for rank in (1, 2, 3)}


def __getattr__(name):
    if name in _KERAS2_RESHAPING:
        from kestrel.layers import reshaping

        return getattr(reshaping, name)
    if name in _KERAS2_POOLING:
        from kestrel.layers import pooling

        return getattr(pooling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
