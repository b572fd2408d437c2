"""Kestrel layers: each one a `torch.nn.Module` with Keras' arguments, shapes and weights."""
from kestrel import _aliases
from kestrel.layers.convolutional import (
    Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose, Convolution1D,
    Convolution1DTranspose, Convolution2D, Convolution2DTranspose, Convolution3D,
    Convolution3DTranspose, Deconv2D, Deconv3D, Deconvolution2D, Deconvolution3D,
    DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D, SeparableConvolution1D,
    SeparableConvolution2D)
from kestrel.layers.convolutional.keras1_conv import AtrousConvolution1D, AtrousConvolution2D
from kestrel.layers.activations import *  # noqa: F401,F403 - ReLU, LeakyReLU, PReLU, ELU, Softmax
from kestrel.layers.attention import AdditiveAttention, Attention, MultiHeadAttention
from kestrel.layers.core.activation import Activation, Identity, Lambda
from kestrel.layers.core.dense import Dense
from kestrel.layers.core.highway import Highway
from kestrel.layers.core.embedding import Embedding
from kestrel.layers.core.input_layer import Input, InputLayer
from kestrel.layers.core.masking import Masking
from kestrel.layers.core.reshaping import Flatten, Permute, RepeatVector, Reshape
from kestrel.layers.core.torch_module_wrapper import TorchModuleWrapper
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer
from kestrel.layers.locally_connected import LocallyConnected1D, LocallyConnected2D
from kestrel.layers.merging import (
    Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average, concatenate,
    dot, maximum, minimum, multiply, subtract)
from kestrel.layers.merging.keras1_merge import Merge
from kestrel.layers.normalization import (
    BatchNormalization, GroupNormalization, LayerNormalization, UnitNormalization)
from kestrel.layers.ops_layer import TensorOp
from kestrel.layers.pooling import (
    AveragePooling1D, AveragePooling2D, AveragePooling3D, AvgPool1D, AvgPool2D, AvgPool3D,
    GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalAvgPool1D,
    GlobalAvgPool2D, GlobalAvgPool3D, GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D, MaxPool1D, MaxPool2D, MaxPool3D,
    MaxPooling1D, MaxPooling2D, MaxPooling3D)
from kestrel.layers.reshaping import (
    Cropping1D, Cropping2D, Cropping3D, UpSampling1D, UpSampling2D, UpSampling3D, ZeroPadding1D,
    ZeroPadding2D, ZeroPadding3D)
from kestrel.layers.regularization import (
    ActivityRegularization, AlphaDropout, Dropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
    SpatialDropout2D, SpatialDropout3D)
from kestrel.layers.rnn import (
    GRU, LSTM, RNN, Bidirectional, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, ConvLSTMCell, CuDNNGRU,
    CuDNNLSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell, StackedRNNCells, TimeDistributed)
from kestrel.layers.preprocessing import *  # noqa: F401,F403 - Normalization, StringLookup, ...
from kestrel.layers.image_preprocessing import *  # noqa: F401,F403 - Rescaling, RandomFlip, ...
from kestrel.layers.core.einsum_dense import EinsumDense
from kestrel.layers.core.wrapper import Wrapper
from kestrel.layers.core.reversible_embedding import ReversibleEmbedding
from kestrel.layers.attention.grouped_query_attention import GroupedQueryAttention
from kestrel.layers.normalization.rms_normalization import RMSNormalization
from kestrel.layers.normalization.spectral_normalization import SpectralNormalization
from kestrel.layers.pooling.adaptive_pooling import (
    AdaptiveAveragePooling1D, AdaptiveAveragePooling2D, AdaptiveAveragePooling3D,
    AdaptiveMaxPooling1D, AdaptiveMaxPooling2D, AdaptiveMaxPooling3D)
from kestrel.layers.serialization import deserialize, serialize
from kestrel.other_backends import FlaxLayer, JaxLayer, TFSMLayer

GroupQueryAttention = GroupedQueryAttention


def __getattr__(name):
    """Keras 2 module paths read as attributes (`layers.experimental.preprocessing.RandomFlip`,
    `keras.layers.advanced_activations.LeakyReLU`): the aliases of `kestrel._aliases`."""
    alias = _aliases.child_alias(__name__, name)
    if alias is None:
        raise AttributeError(f"module 'kestrel.layers' has no attribute {name!r}")
    return alias
