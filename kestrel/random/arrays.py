"""Random ops on existing tensors: `dropout` and `shuffle`."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel.ops.convert import convert_to_tensor
from kestrel.random.seed_generator import SeedGenerator, torch_generator


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Zero entries of `inputs` with probability `rate`, scaling the others by `1 / (1 - rate)`.

    Args:
        noise_shape: shape of the keep mask, broadcast over `inputs` (None entries follow
            `inputs`), e.g. `(batch, 1, features)` to drop the same features at every step.
    """
    inputs = convert_to_tensor(inputs)
    if not 0 <= rate <= 1:
        raise ValueError(f"kestrel.random.dropout: rate must be in [0, 1]. Received: rate={rate}")
    if rate == 1:
        return torch.zeros_like(inputs)
    if rate == 0:
        return inputs
    unseeded = seed is None or (isinstance(seed, SeedGenerator) and seed._initial_seed is None)
    if unseeded and noise_shape is None:  # torch's global RNG, as Keras' fast path
        return F.dropout(inputs, p=rate, training=True)
    shape = inputs.shape if noise_shape is None else [
        size if want is None else int(want) for size, want in zip(inputs.shape, noise_shape)]
    keep = 1.0 - rate
    mask = torch.bernoulli(torch.full(shape, keep, device=inputs.device),
                           generator=torch_generator(seed, inputs.device))
    if mask.numel() < inputs.numel() and inputs.dtype == torch.float32:
        # a mask broadcast by `noise_shape` (EfficientNet's drop-connect): one division each
        # way instead of a division, zeros and a select; the same numbers (`x / keep`, and
        # `x / inf` = 0 where dropped) unless `x` is infinite
        return inputs / mask.reciprocal_().mul_(keep)
    return torch.where(mask.bool(), inputs / keep, torch.zeros_like(inputs))


def shuffle(x, axis=0, seed=None):
    """`x` with its slices along `axis` in a random order. As in Keras' torch backend, each
    position along the axes before `axis` gets its own order."""
    x = convert_to_tensor(x)
    axis = axis % x.ndim
    order = torch.rand(x.shape[:axis + 1], device=x.device,
                       generator=torch_generator(seed, x.device)).argsort(axis)
    order = order.reshape(order.shape + (1,) * (x.ndim - axis - 1)).expand(x.shape)
    return x.gather(axis, order)
