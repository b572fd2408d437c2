"""`kestrel.ops.nn`: Keras' neural-network ops (activations, convolution and pooling,
losses and encodings, normalizations and attention), each family in its own module."""
from kestrel.ops.nn_activations import *  # noqa: F401,F403
from kestrel.ops.nn_activations import __all__ as _activation_names
from kestrel.ops.nn_conv import *  # noqa: F401,F403
from kestrel.ops.nn_conv import __all__ as _conv_names
from kestrel.ops.nn_losses import *  # noqa: F401,F403
from kestrel.ops.nn_losses import __all__ as _loss_names
from kestrel.ops.nn_norm import *  # noqa: F401,F403
from kestrel.ops.nn_norm import __all__ as _norm_names

__all__ = [*_activation_names, *_conv_names, *_loss_names, *_norm_names]
