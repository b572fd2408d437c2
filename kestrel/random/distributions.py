"""Samplers of `kestrel.random`: normal, uniform, truncated normal, integers, gamma, beta,
binomial and categorical draws, each from the generator its `seed=` names.

Each draws exactly as Keras' torch backend does (the same torch calls on a generator seeded
the same way), so a seed gives the numbers Keras gives.
"""
from __future__ import annotations

import contextlib

import torch

from kestrel import config
from kestrel.backend.dtypes import is_float_dtype, is_int_dtype, standardize_dtype
from kestrel.ops.convert import convert_to_tensor, torch_dtype
from kestrel.random.seed_generator import torch_generator, torch_seed


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(d) for d in shape)


def _float_dtype(dtype, fn: str) -> torch.dtype:
    name = standardize_dtype(dtype)
    if not is_float_dtype(name):
        raise ValueError(f"`kestrel.random.{fn}` requires a floating point `dtype`. "
                         f"Received: dtype={name}")
    return torch_dtype(name)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Samples of a normal distribution.

    >>> normal((2, 3), mean=1.0, stddev=0.5, seed=7).shape
    torch.Size([2, 3])
    """
    dtype, device = _float_dtype(dtype, "normal"), config.device()
    generator = torch_generator(seed, device)
    if isinstance(mean, torch.Tensor) or isinstance(stddev, torch.Tensor):
        out = torch.randn(_shape(shape), dtype=dtype, device=device, generator=generator)
        return out * stddev + mean
    return torch.normal(float(mean), float(stddev), size=_shape(shape), generator=generator,
                        dtype=dtype, device=device)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Samples of a uniform distribution on `[minval, maxval)`."""
    dtype, device = _float_dtype(dtype, "uniform"), config.device()
    size = _shape(shape)
    out = torch.rand(size or (1,), dtype=dtype, device=device,
                     generator=torch_generator(seed, device))
    out = (maxval - minval) * out + minval
    return out if size else out[0]


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal samples within two standard deviations of the mean: of four draws per value,
    the first that falls inside."""
    dtype, device = _float_dtype(dtype, "truncated_normal"), config.device()
    size = _shape(shape)
    draws = torch.normal(0.0, 1.0, size=size + (4,), generator=torch_generator(seed, device),
                         dtype=dtype, device=device)
    first_inside = ((draws > -2) & (draws < 2)).max(-1, keepdim=True)[1]
    return draws.gather(-1, first_inside).squeeze(-1).reshape(size) * stddev + mean


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers drawn uniformly from `[minval, maxval)`."""
    name = standardize_dtype(dtype)
    if not is_int_dtype(name):
        raise ValueError("`kestrel.random.randint` requires an integer `dtype`. "
                         f"Received: dtype={name}")
    device = config.device()
    return torch.randint(int(minval), int(maxval), _shape(shape), dtype=torch_dtype(name),
                         device=device, generator=torch_generator(seed, device))


def categorical(logits, num_samples, dtype="int32", seed=None):
    """Class indices drawn from the rows of `logits` (batch, classes): (batch, num_samples)."""
    logits = convert_to_tensor(logits)
    if logits.ndim != 2:
        raise ValueError("`logits` should be a 2-D tensor with shape [batch_size, num_classes]."
                         f" Received: logits.shape={tuple(logits.shape)}")
    if not logits.is_floating_point():
        logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    out = torch.multinomial(probs, int(num_samples), replacement=True,
                            generator=torch_generator(seed, logits.device))
    return out.to(torch_dtype(dtype))


@contextlib.contextmanager
def _global_rng_seeded(seed, device: torch.device):
    """torch's global generator for `device`, seeded from `seed` as Keras seeds it for the
    samplers of `torch.distributions`; its former state is restored on exit."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        value = torch_seed(seed)
        torch.random.default_generator.manual_seed(value)
        if devices:
            torch.cuda.manual_seed(value)
        yield


def gamma(shape, alpha, dtype=None, seed=None):
    """Samples of a Gamma distribution with concentration `alpha` (scale 1)."""
    dtype, device = _float_dtype(dtype, "gamma"), config.device()
    size = _shape(shape)
    alpha = torch.broadcast_to(convert_to_tensor(alpha, device=device), size)
    rate = torch.ones(size, device=device)
    with _global_rng_seeded(seed, device):
        return torch.distributions.Gamma(alpha, rate).sample().to(dtype)


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Samples of a Beta(`alpha`, `beta`) distribution on [0, 1]."""
    dtype, device = _float_dtype(dtype, "beta"), config.device()
    size = _shape(shape)
    alpha = torch.broadcast_to(convert_to_tensor(alpha, device=device), size)
    beta = torch.broadcast_to(convert_to_tensor(beta, device=device), size)
    with _global_rng_seeded(seed, device):
        return torch.distributions.Beta(alpha, beta).sample().to(dtype)


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Number of successes in `counts` trials of probability `probabilities`."""
    dtype, device = _float_dtype(dtype, "binomial"), config.device()
    size = _shape(shape)
    counts = torch.broadcast_to(convert_to_tensor(counts, device=device), size)
    probabilities = torch.broadcast_to(convert_to_tensor(probabilities, device=device), size)
    with _global_rng_seeded(seed, device):
        return torch.distributions.Binomial(counts, probabilities).sample().to(dtype)
