"""Batch renormalization (Ioffe 2017) for BatchNormalization(renorm=True).

In training the batch-normalized values are corrected to `x_hat * r + d`, where
`r = batch_stddev / renorm_stddev` and `d = (batch_mean - renorm_mean) / renorm_stddev` are
clipped by `renorm_clipping` and carry no gradient. The correction folds into the affine
transform: `gamma' = r * gamma`, `beta' = d * gamma + beta`. Inference is plain batch norm.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_CLIPPING_KEYS = ("rmax", "rmin", "dmax")


def check_clipping(layer_name: str, clipping) -> dict:
    """`renorm_clipping` as a dict (`None` is `{}`), refusing unknown keys and bad bounds."""
    clipping = clipping or {}
    unknown = set(clipping) - set(_CLIPPING_KEYS)
    if unknown:
        raise ValueError(
            f"BatchNormalization '{layer_name}': received invalid keys for `renorm_clipping` "
            f"argument: {sorted(unknown)}. Supported values: {list(_CLIPPING_KEYS)}. "
            f"Received: renorm_clipping={clipping}")
    rmax, rmin, dmax = (clipping.get(key) for key in _CLIPPING_KEYS)
    if rmax is not None and rmin is not None and rmax < rmin:
        raise ValueError(
            f"BatchNormalization '{layer_name}': rmax should be greater than rmin in the "
            f"`renorm_clipping` argument. Received: rmax={rmax}, rmin={rmin}.")
    if dmax is not None and dmax < 0:
        raise ValueError(
            f"BatchNormalization '{layer_name}': dmax should be non-negative in the "
            f"`renorm_clipping` argument. Received: dmax={dmax}.")
    return clipping


def build_weights(layer, shape: tuple) -> None:
    """The three extra non-trainable weights, after moving_variance, in Keras' order."""
    def stddev_initializer(shape, dtype=None):
        return layer.moving_variance_initializer(shape, dtype=dtype).sqrt()

    layer.moving_stddev = layer.add_weight("moving_stddev", shape, stddev_initializer,
                                           trainable=False)
    layer.renorm_mean = layer.add_weight("renorm_mean", shape, layer.moving_mean_initializer,
                                         trainable=False)
    layer.renorm_stddev = layer.add_weight("renorm_stddev", shape, stddev_initializer,
                                           trainable=False)


def train_step(layer, x: torch.Tensor, mask) -> torch.Tensor:
    """The training forward pass with the (r, d) correction, updating all moving statistics."""
    if mask is not None:
        mean, variance = layer._masked_moments(x, mask)
        gamma, beta = _corrected_affine(layer, mean.flatten(), variance.flatten())
        with torch.no_grad():
            _update(layer, mean.flatten(), variance.flatten())
        return layer._affine(x, mean, variance, gamma, beta)
    flat, restore = layer._channels_at_1(x)
    with torch.no_grad():
        variance, mean = torch.var_mean(
            flat, dim=[d for d in range(flat.dim()) if d != 1], correction=0)
    gamma, beta = _corrected_affine(layer, mean, variance)
    out = F.batch_norm(flat, None, None, gamma, beta, True, 0.0, layer.epsilon)
    with torch.no_grad():
        _update(layer, mean, variance)
    return restore(out)


def _corrected_affine(layer, mean: torch.Tensor, variance: torch.Tensor):
    """`(r * gamma, d * gamma + beta)` from the batch moments (no gradient through r and d)."""
    with torch.no_grad():
        stddev = (variance + layer.epsilon).sqrt()
        renorm_stddev = layer.renorm_stddev.to(mean.dtype).clamp_min(math.sqrt(layer.epsilon))
        r = stddev / renorm_stddev
        d = (mean - layer.renorm_mean.to(mean.dtype)) / renorm_stddev
        clipping = layer.renorm_clipping
        if clipping.get("rmin") is not None:
            r = r.clamp_min(clipping["rmin"])
        if clipping.get("rmax") is not None:
            r = r.clamp_max(clipping["rmax"])
        if clipping.get("dmax") is not None:
            d = d.clamp(-clipping["dmax"], clipping["dmax"])
    gamma = r if layer.gamma is None else r * layer.gamma
    beta = d if layer.gamma is None else d * layer.gamma
    return gamma, beta if layer.beta is None else beta + layer.beta


def _update(layer, mean: torch.Tensor, variance: torch.Tensor) -> None:
    """Renorm and moving averages of mean and stddev; moving_variance follows the stddev."""
    stddev = (variance + layer.epsilon).sqrt()
    renorm_weight = 1.0 - float(layer.renorm_momentum)
    layer.renorm_mean.lerp_(mean.to(layer.renorm_mean.dtype), renorm_weight)
    layer.renorm_stddev.lerp_(stddev.to(layer.renorm_stddev.dtype), renorm_weight)
    weight = 1.0 - layer.momentum
    layer.moving_mean.lerp_(mean.to(layer.moving_mean.dtype), weight)
    layer.moving_stddev.lerp_(stddev.to(layer.moving_stddev.dtype), weight)
    layer.moving_variance.copy_((layer.moving_stddev.square() - layer.epsilon).clamp_min(0.0))
