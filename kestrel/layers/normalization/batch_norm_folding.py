"""A convolution and the BatchNormalization after it as one convolution, in inference.

In inference BatchNormalization is an affine map per channel, `y * scale + shift` with
`scale = gamma / sqrt(moving_variance + epsilon)` and `shift = beta - moving_mean * scale`; a
convolution before it can absorb that map into its kernel (`kernel * scale` per output
channel) and bias (`bias * scale + shift`). A functional model whose convolution's output only
a BatchNormalization reads (`functional._fuse_batch_norms`), and a Sequential model with the
two in a row (`pair_up`), run the pair through `call`: one pass over the activations
instead of two, where no gradient is wanted and the
normalization uses its moving statistics (`predict`, `evaluate`, a frozen base called
without gradients). Elsewhere the two layers run as they are. The result differs from the
two-step one by float rounding only, which is why it is opt-in
(`kestrel.config.enable_batch_norm_folding()`): a deep network with random weights can
amplify that rounding until its outputs disagree with Keras' completely.
"""
from __future__ import annotations

import torch

from kestrel import activations
from kestrel.config import _FLAGS
from kestrel.layers.normalization import batch_norm_inference

_FLOATS = (torch.float32, torch.float64)


def foldable(conv, norm) -> bool:
    """Whether a model may run `norm(conv(x))` through `call`: a plain convolution
    (`_fusable_padding`) without activation, and a plain BatchNormalization over its
    channel axis, neither with a `training` default of its own."""
    from kestrel.layers.convolutional.base_conv import ConvLayerBase
    from kestrel.layers.normalization.batch_normalization import BatchNormalization

    return isinstance(conv, ConvLayerBase) and isinstance(norm, BatchNormalization) and \
        conv._fusable_padding() and conv.activation is activations.linear and \
        type(norm).call is BatchNormalization.call and not norm.renorm and norm.built and \
        norm._axis == (conv.rank + 1 if conv._channels_last else 1) and \
        conv._keras_training_default is None and norm._keras_training_default is None


def pair_up(layers: list) -> list:
    """A stack of layers as steps: `(layer, None)`, or `(convolution, normalization)` for a
    foldable pair in a row."""
    steps, position = [], 0
    while position < len(layers):
        layer = layers[position]
        norm = layers[position + 1] if position + 1 < len(layers) else None
        if norm is not None and foldable(layer, norm):
            steps.append((layer, norm))
            position += 2
        else:
            steps.append((layer, None))
            position += 1
    return steps


def call(conv, norm, x, pads):
    """`norm(conv(pad(x, pads)))` (`pads` None: no padding), folded where it may be."""
    if folds(conv, norm, x):
        weights = folded_weights(conv, norm)
        return conv._call_plain(lambda t: conv._padded_call(t, pads, weights), x)
    return norm._call_in_graph(convolve(conv, x, pads))


def convolve(conv, x, pads):
    """`conv(pad(x, pads))` alone, as the model would call it (`pads` None: no padding)."""
    return conv._call_in_graph(x) if pads is None else conv._call_padded_in_graph(x, pads)


def folds(conv, norm, x) -> bool:
    """Whether this call folds: folding enabled, no gradient wanted, the normalization in
    inference, both layers plain, float32/float64 throughout and no autocast."""
    return _FLAGS["batch_norm_folding"] and not torch.is_grad_enabled() and \
        norm._infers() and \
        x.dtype in _FLOATS and conv._output_weights()[0].dtype is x.dtype and \
        norm.moving_mean.dtype is x.dtype and not torch.is_autocast_enabled(x.device.type) \
        and conv._runs_plain(x) and norm._runs_plain(x)


def folded_weights(conv, norm) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel (torch's layout, output channels first) and bias of `norm(conv(x))`."""
    scale = batch_norm_inference.scale(norm.moving_variance, norm.gamma, norm.epsilon)
    shift = -norm.moving_mean * scale
    if norm.beta is not None:
        shift = shift + norm.beta
    kernel, bias = conv._output_weights()
    if bias is not None:
        shift = shift + bias * scale
    return kernel * scale.view(-1, *[1] * (kernel.dim() - 1)), shift
