"""Regularization layers: dropout variants, noise and activity regularization."""
from kestrel.layers.regularization.activity_regularization import ActivityRegularization
from kestrel.layers.regularization.alpha_dropout import AlphaDropout
from kestrel.layers.regularization.dropout import Dropout
from kestrel.layers.regularization.gaussian_dropout import GaussianDropout
from kestrel.layers.regularization.gaussian_noise import GaussianNoise
from kestrel.layers.regularization.spatial_dropout import (
    SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)
