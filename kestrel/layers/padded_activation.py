"""An activation written straight into a zero-padded buffer (`Layer._padded_activation`).

MobileNet, MobileNetV2 and EfficientNet pad each stride-2 block's input after its activation,
asymmetrically (`ZeroPadding2D(((0, 1), (0, 1)))`), which torch's convolutions cannot do
themselves. Where a functional model's activation output is read only by such a padding, the
activation writes its result into the interior of the padded buffer, whose thin border alone
is zeroed: no padded copy either way, and the convolution reads a plain contiguous input.
"""
from __future__ import annotations

import torch

from kestrel.activations import activations
from kestrel.layers.convolutional import conv_utils as cu

aten = torch.ops.aten

# activation -> (forward writing into `out`, gradient from (grad, input, output), whether the
# gradient needs the input; ReLU's and ReLU6's read the output, which the next layer saves)
_FORMS = {
    activations.relu: (lambda x, out: torch.clamp_min(x, 0, out=out),
                       lambda g, x, y: aten.threshold_backward(g, y, 0), False),
    activations.relu6: (lambda x, out: aten.hardtanh.out(x, 0.0, 6.0, out=out),
                        lambda g, x, y: aten.hardtanh_backward(g, y, 0.0, 6.0), False),
    activations.silu: (lambda x, out: aten.silu.out(x, out=out),
                       lambda g, x, y: aten.silu_backward(g, x), True),
}


def supports(activation) -> bool:
    """Whether `activation` (a function of `kestrel.activations`) has a padded form here."""
    return activation in _FORMS


def applies(x) -> bool:
    """Whether `apply` serves this input: a floating tensor, outside functorch transforms."""
    return x.is_floating_point() and not torch._C._are_functorch_transforms_active()


def apply(activation, x: torch.Tensor, pads: tuple, first: int) -> torch.Tensor:
    """`pad(activation(x), pads)` along dims `first, ...` (`pads`: (before, after) each), the
    activation computed into the padded buffer."""
    return _PaddedActivation.apply(x, activation, pads, first)


class _PaddedActivation(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, activation, pads, first):
        forward, _, needs_input = _FORMS[activation]
        out, interior = cu.padded_buffer(x, pads, first)
        forward(x, interior)
        ctx.save_for_backward(x if needs_input else None, out)
        ctx.activation, ctx.pads, ctx.first = activation, pads, first
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        _, gradient, _ = _FORMS[ctx.activation]
        return gradient(_interior(grad, ctx.pads, ctx.first), x,
                        _interior(out, ctx.pads, ctx.first)), None, None, None


def _interior(t: torch.Tensor, pads: tuple, first: int) -> torch.Tensor:
    for dim, (before, after) in enumerate(pads, first):
        t = t.narrow(dim, before, t.shape[dim] - before - after)
    return t


def after_norm(activation_layer, padding_layer, norm, conv, x, pads):
    """`padding_layer(activation_layer(norm(conv(pad(x, pads)))))` for a model that fused the
    four (`conv` None: the normalization reads `x`; `pads` None: no padding before `conv`).
    A normalization in inference writes straight into the padded buffer, and the activation
    runs in place there, as torchvision's in-place activation after its normalization; a
    folding model folds the convolution and normalization first (`batch_norm_folding`)."""
    from kestrel.layers.normalization import batch_norm_folding, batch_norm_inference

    if conv is not None and batch_norm_folding.folds(conv, norm, x):
        return activation_layer._call_padding_output_in_graph(
            batch_norm_folding.call(conv, norm, x, pads), padding_layer)
    if conv is not None:
        x = batch_norm_folding.convolve(conv, x, pads)
    if not (norm._infers() and batch_norm_inference.applies(x) and norm._runs_plain(x) and
            activation_layer._runs_plain(x) and padding_layer._runs_plain(x) and
            x.ndim == padding_layer.rank + 2):
        return activation_layer._call_padding_output_in_graph(norm._call_in_graph(x),
                                                              padding_layer)
    out, interior = cu.padded_buffer(x, padding_layer.padding, padding_layer._first_spatial)
    batch_norm_inference.normalize(norm, x, out=interior)
    activations.in_place_form(activation_layer._padded_activation)(interior)
    return out
